//! `pods/exec` over WebSocket (the `v5.channel.k8s.io` and `v4.channel.k8s.io` subprotocols
//! kubectl, client-go and the Python client speak): the command runs in the container's sandbox
//! (same mounts, /tmp and env); binary frames carry a channel byte (0 stdin, 1 stdout, 2 stderr,
//! 3 status, 4 resize, 255 close in v5); the exit status ends the stream as a `metav1.Status`.

use std::process::Stdio;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::authn;
use crate::error::ApiError;
use crate::kubelet::ExecContext;
use crate::rbac;
use crate::resources;
use crate::routing::ResourcePath;
use crate::state::Cluster;

struct ExecRequest {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
}

fn parse(uri: &Uri) -> ExecRequest {
    let mut r = ExecRequest {
        command: Vec::new(),
        container: None,
        stdin: false,
    };
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "command" => r.command.push(v.into_owned()),
            "container" if !v.is_empty() => r.container = Some(v.into_owned()),
            "stdin" => r.stdin = v.eq_ignore_ascii_case("true") || v == "1",
            _ => {}
        }
    }
    r
}

fn status_for(code: i64, command: &[String]) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({"metadata": {}, "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
        "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
}

pub async fn exec(
    State(c): State<Arc<Cluster>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(id) = authn::authenticate(&c, &headers) else {
        return ApiError::unauthorized().into_response();
    };
    let rp = ResourcePath {
        res: resources::pods(),
        namespace: Some(ns.clone()),
        name: Some(name.clone()),
        sub: Some("exec".into()),
    };
    if let Err(e) = rbac::authorize(&id, &axum::http::Method::POST, &rp, false) {
        return e.into_response();
    }
    let req = parse(&uri);
    let Some(pod) = c.store.get(resources::pods(), &ns, &name) else {
        return ApiError::not_found("pods", "", &name).into_response();
    };
    if req.command.is_empty() {
        return ApiError::bad_request("you must specify at least 1 command").into_response();
    }
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match (&req.container, containers.as_slice()) {
        (Some(c), _) => c.clone(),
        (None, [only]) => only.to_string(),
        (None, many) => {
            return ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                many.join(" ")
            ))
            .into_response()
        }
    };
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        return ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        ))
        .into_response();
    }
    let running = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["name"] == json!(container) && !s["state"]["running"].is_null());
    let ctx = c
        .kubelet
        .exec_context(pod["metadata"]["uid"].as_str().unwrap_or(""), &container);
    let (Some(ctx), true) = (ctx, running) else {
        return ApiError::bad_request(format!(
            "unable to upgrade connection: container not found (\"{container}\")"
        ))
        .into_response();
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => return ApiError::bad_request(
            "pods/exec is served over WebSocket only (v5/v4.channel.k8s.io); SPDY is not supported",
        )
        .into_response(),
    };
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| run(socket, ctx, req))
}

async fn run(socket: WebSocket, ctx: Arc<ExecContext>, req: ExecRequest) {
    let (mut sink, mut stream) = socket.split();
    let mut cmd = ctx.command(&req.command);
    cmd.stdin(if req.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd.kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": format!("failed to exec in container: {}: {e}", req.command[0])});
            let _ = sink
                .send(Message::Binary(frame(3, status.to_string().as_bytes())))
                .await;
            close(&mut sink).await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<(u8, Vec<u8>)>(64);
    for (ch, pipe) in [
        (
            1u8,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
        (
            2u8,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 || tx.send((ch, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut stdin = child.stdin.take();
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => match b.first() {
                    Some(0) => {
                        if let Some(w) = stdin.as_mut() {
                            let _ = w.write_all(&b[1..]).await;
                        }
                    }
                    // v5: the client closed a stream; closing stdin gives the command EOF.
                    Some(255) if b.get(1) == Some(&0) => drop(stdin.take()),
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = child.kill().await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some((ch, data)) => {
                    if sink.send(Message::Binary(frame(ch, &data))).await.is_err() {
                        let _ = child.kill().await;
                        return;
                    }
                }
                None => break,
            },
        }
    }
    drop(stdin);
    let code = match child.wait().await {
        Ok(s) => s.code().map(i64::from).unwrap_or(137),
        Err(_) => 255,
    };
    let _ = sink
        .send(Message::Binary(frame(
            3,
            status_for(code, &req.command).to_string().as_bytes(),
        )))
        .await;
    close(&mut sink).await;
}

/// A normal closure (1000): clients treat a close without status as a broken stream.
async fn close(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>) {
    let frame = axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

fn frame(channel: u8, data: &[u8]) -> axum::body::Bytes {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    v.into()
}
