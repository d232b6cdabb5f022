//! Container logs: the kubelet appends `<RFC3339Nano> <line>` to one file per container start;
//! `pods/log` reads them back with the kubelet's options (follow, previous, timestamps,
//! sinceTime, sinceSeconds, tailLines, limitBytes, container).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::resources;
use crate::store::Store;

pub fn log_file(state_dir: &Path, ns: &str, pod: &str, container: &str, restart: i64) -> PathBuf {
    state_dir
        .join("logs")
        .join(ns)
        .join(pod)
        .join(container)
        .join(format!("{restart}.log"))
}

#[derive(Debug, Default, Clone)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub since_seconds: Option<i64>,
    pub since_time: Option<String>,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    /// Fault injection: end the stream after this many lines.
    pub drop_after: Option<usize>,
}

fn container_status<'a>(pod: &'a Value, container: &str) -> Option<&'a Value> {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .chain(pod["status"]["initContainerStatuses"].as_array())
        .flatten()
        .find(|c| c["name"].as_str() == Some(container))
}

/// Picks the container, checks it has started, and returns (container, restart instance).
fn resolve(pod: &Value, opts: &LogOptions) -> ApiResult<(String, i64)> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let names: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .chain(pod["spec"]["initContainers"].as_array())
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let container = match &opts.container {
        Some(c) => {
            if !names.contains(c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {pod_name}"
                )));
            }
            c.clone()
        }
        None => {
            let main: Vec<&str> = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            if main.len() != 1 {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    main.join(" ")
                )));
            }
            main[0].to_string()
        }
    };
    let status = container_status(pod, &container);
    let restarts = status.and_then(|s| s["restartCount"].as_i64()).unwrap_or(0);
    if opts.previous {
        if restarts == 0 {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            )));
        }
        return Ok((container, restarts - 1));
    }
    let started = status.is_some_and(|s| {
        !s["state"]["running"].is_null()
            || !s["state"]["terminated"].is_null()
            || !s["lastState"]["terminated"].is_null()
    });
    if !started {
        let reason = status
            .and_then(|s| s["state"]["waiting"]["reason"].as_str())
            .unwrap_or("ContainerCreating");
        let reason = if reason == "ImagePullBackOff" || reason == "ErrImagePull" {
            "trying and failing to pull image"
        } else {
            reason
        };
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {reason}"
        )));
    }
    // A container in CrashLoopBackOff shows the log of its last run, as the kubelet does.
    let running_instance = status
        .is_some_and(|s| !s["state"]["running"].is_null() || !s["state"]["terminated"].is_null());
    Ok((
        container,
        if running_instance {
            restarts
        } else {
            (restarts - 1).max(0)
        },
    ))
}

/// Whether the container instance `restart` can still write more output.
fn still_running(
    store: &Store,
    ns: &str,
    pod: &str,
    uid: &str,
    container: &str,
    restart: i64,
) -> bool {
    let Some(p) = store.get(resources::pods(), ns, pod) else {
        return false;
    };
    if p["metadata"]["uid"].as_str() != Some(uid) {
        return false;
    }
    let Some(s) = container_status(&p, container) else {
        return true;
    };
    let count = s["restartCount"].as_i64().unwrap_or(0);
    // Waiting after a previous run means this instance ended and a restart is backing off.
    let backing_off = s["state"]["waiting"].is_object() && !s["lastState"]["terminated"].is_null();
    count == restart && s["state"]["terminated"].is_null() && !backing_off
}

struct Filter {
    since: Option<chrono::DateTime<chrono::Utc>>,
    timestamps: bool,
}

impl Filter {
    /// One stored line in, the line to send out (None when filtered by since*).
    fn apply(&self, stored: &str) -> Option<String> {
        let (ts, text) = stored.split_once(' ').unwrap_or(("", stored));
        if let Some(since) = self.since {
            let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
            if t.with_timezone(&chrono::Utc) < since {
                return None;
            }
        }
        Some(if self.timestamps {
            format!("{stored}\n")
        } else {
            format!("{text}\n")
        })
    }
}

/// The response body of one log read. Lines are coalesced into chunks of up to `CHUNK` bytes,
/// sent when full or when no more lines are at hand, as the real API server's 32 KiB copy
/// buffer does when it proxies the kubelet's stream; a chunk per line would make clients pay
/// for framing the real server never sends.
struct LineSink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    /// limitBytes left.
    budget: usize,
    /// Fault injection: lines left before the stream is cut.
    drop_budget: usize,
    buf: Vec<u8>,
}

const CHUNK: usize = 32 << 10;

impl LineSink {
    /// Adds a line; false when the stream ends here (limitBytes spent, injected cut, client gone).
    async fn push(&mut self, mut line: String) -> bool {
        let mut done = false;
        if line.len() >= self.budget {
            line.truncate(self.budget);
            done = true;
        }
        self.budget -= line.len();
        // Fault injection: the line that uses up the budget is the last one sent.
        self.drop_budget = self.drop_budget.saturating_sub(1);
        if self.drop_budget == 0 {
            done = true;
        }
        self.buf.extend_from_slice(line.as_bytes());
        if done {
            self.flush().await;
            return false;
        }
        self.buf.len() < CHUNK || self.flush().await
    }

    /// Sends what is buffered; false when the client has gone.
    async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.send(Ok(chunk)).await.is_ok()
    }
}

pub async fn serve(
    store: Arc<Store>,
    state_dir: PathBuf,
    ns: String,
    pod_name: String,
    opts: LogOptions,
) -> ApiResult<Response> {
    let pod = store
        .get(resources::pods(), &ns, &pod_name)
        .ok_or_else(|| ApiError::not_found("pods", "", &pod_name))?;
    let (container, restart) = resolve(&pod, &opts)?;
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let path = log_file(&state_dir, &ns, &pod_name, &container, restart);
    let since = match (&opts.since_time, opts.since_seconds) {
        (Some(t), _) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| ApiError::bad_request(format!("sinceTime: {e}")))?
                .with_timezone(&chrono::Utc),
        ),
        (None, Some(s)) => Some(chrono::Utc::now() - chrono::Duration::seconds(s)),
        _ => None,
    };
    let filter = Filter {
        since,
        timestamps: opts.timestamps,
    };

    // The existing content, cut to tailLines.
    let existing = tokio::fs::read(&path).await.unwrap_or_default();
    let complete_len = existing
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&existing[..complete_len]).into_owned();
    let mut lines: Vec<String> = text.lines().filter_map(|l| filter.apply(l)).collect();
    if let Some(n) = opts.tail_lines {
        let cut = lines.len().saturating_sub(n);
        lines.drain(..cut);
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let mut sink = LineSink {
        tx,
        budget: opts.limit_bytes.unwrap_or(usize::MAX),
        drop_budget: opts.drop_after.unwrap_or(usize::MAX).max(1),
        buf: Vec::new(),
    };
    tokio::spawn(async move {
        for l in lines {
            if !sink.push(l).await {
                return;
            }
        }
        if !sink.flush().await || !opts.follow {
            return;
        }
        let mut offset = complete_len as u64;
        let mut partial = String::new();
        loop {
            let running = still_running(&store, &ns, &pod_name, &uid, &container, restart);
            let mut chunk = Vec::new();
            if let Ok(mut f) = tokio::fs::File::open(&path).await {
                if f.seek(std::io::SeekFrom::Start(offset)).await.is_ok() {
                    let _ = f.read_to_end(&mut chunk).await;
                }
            }
            offset += chunk.len() as u64;
            partial.push_str(&String::from_utf8_lossy(&chunk));
            let complete = partial.rfind('\n').map_or(0, |i| i + 1);
            for l in partial[..complete].split_terminator('\n') {
                if let Some(out) = filter.apply(l) {
                    if !sink.push(out).await {
                        return;
                    }
                }
            }
            partial.drain(..complete);
            if !sink.flush().await {
                return;
            }
            // Checked before reading, so output written just before the exit is never lost.
            if !running {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = sink.tx.closed() => return,
            }
        }
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap_or_else(|_| Response::new(Body::empty())))
}
