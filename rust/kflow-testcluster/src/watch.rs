//! Watch streams: newline-delimited JSON events over a chunked response, resumable from a
//! resourceVersion, with the apiserver's in-stream 410 ERROR event when it is too old.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::error::ApiError;
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Change, Store};
use crate::table;

pub struct WatchRequest {
    pub res: &'static ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// None: start with the current objects as ADDED events.
    pub resource_version: Option<u64>,
    pub timeout: Option<Duration>,
    pub as_table: bool,
    pub include_object: String,
    pub bookmarks: bool,
    /// Fault injection: end the stream after this many events.
    pub drop_after: Option<usize>,
}

fn matches(req: &WatchRequest, c: &Change) -> bool {
    c.resource == req.res.storage()
        && req
            .namespace
            .as_deref()
            .is_none_or(|ns| c.namespace() == ns)
        && req.labels.matches(&c.object)
        && req.fields.matches(&c.object)
}

fn encode(req: &WatchRequest, c: &Change) -> Bytes {
    let object = if req.as_table {
        table::table(
            req.res,
            std::slice::from_ref(&*c.object),
            &req.include_object,
            json!({"resourceVersion": c.rv.to_string()}),
        )
    } else {
        req.res.served_as((*c.object).clone())
    };
    line(&json!({"type": c.kind.as_str(), "object": object}))
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

pub fn start(store: Arc<Store>, req: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let initial = match req.resource_version {
        Some(rv) if rv > 0 => store
            .watch_from(req.res, rv)
            .map(|(past, live)| (past, live, rv)),
        _ => Ok(store.watch_now(req.res)),
    };
    tokio::spawn(async move {
        let (past, mut live, mut last_rv) = match initial {
            Ok(v) => v,
            Err(floor) => {
                let status = ApiError::gone(format!(
                    "too old resource version: {} ({floor})",
                    req.resource_version.unwrap_or(0)
                ))
                .status_json();
                let _ = tx
                    .send(Ok(line(&json!({"type": "ERROR", "object": status}))))
                    .await;
                return;
            }
        };
        let mut sent = 0usize;
        for c in past.iter().filter(|c| matches(&req, c)) {
            if req.drop_after.is_some_and(|n| sent >= n) {
                return;
            }
            if tx.send(Ok(encode(&req, c))).await.is_err() {
                return;
            }
            sent += 1;
        }
        let deadline = req.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut bookmark = tokio::time::interval(Duration::from_secs(1));
        loop {
            if req.drop_after.is_some_and(|n| sent >= n) {
                return;
            }
            let sleep_until =
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => return,
                _ = tx.closed() => return,
                _ = bookmark.tick(), if req.bookmarks => {
                    let obj = json!({"kind": req.res.kind, "apiVersion": req.res.api_version(),
                        "metadata": {"resourceVersion": last_rv.to_string(),
                                     "annotations": {"k8s.io/initial-events-end": "true"}}});
                    if tx.send(Ok(line(&json!({"type": "BOOKMARK", "object": obj})))).await.is_err() { return; }
                }
                msg = live.recv() => match msg {
                    // The receiver was subscribed under the store lock that collected `past`, so
                    // live events are all newer than the replayed ones: no duplicates.
                    Ok(c) => {
                        last_rv = last_rv.max(c.rv);
                        if matches(&req, &c) {
                            if tx.send(Ok(encode(&req, &c))).await.is_err() { return; }
                            sent += 1;
                        }
                    }
                    // A watcher that fell behind is closed; clients re-watch from their last rv.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
