//! `pods/portforward`: connections to a pod's ports, in the three forms clients speak.
//!
//! - SPDY/3.1 tunnelled over WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`, what
//!   kubectl uses first) and plain SPDY/3.1 after an HTTP upgrade (`Upgrade: SPDY/3.1`,
//!   kubectl's fallback): per connection the client opens an `error` and a `data` stream,
//!   paired by their `requestid` header and naming the `port`; an error is written on the
//!   error stream, and both streams end (FIN) when the pod's side does.
//! - The WebSocket channel protocol (`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, or
//!   none: kube-rs, the Python client): the `ports` of the query, one connection each; port
//!   i's data on channel 2i and its errors on 2i+1, each channel's first frame from the server
//!   holding the port as 2 bytes little-endian; the WebSocket closes once every pod connection
//!   has ended.
//!
//! Each stream dials the pod's port as the container runtime does (`Kubelet::dial`), on the
//! pod's own network. The `portforwardDropAfterBytes` fault cuts a connection mid-stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::authn;
use crate::error::ApiError;
use crate::kubelet::Kubelet;
use crate::rbac;
use crate::resources;
use crate::routing::ResourcePath;
use crate::spdy::{self, Frame, HeaderDecoder, HeaderEncoder};
use crate::state::Cluster;

const PROTOCOL: &str = "portforward.k8s.io";
const SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
const CHANNEL_BINARY: &str = "v4.channel.k8s.io";
const CHANNEL_BASE64: &str = "v4.base64.channel.k8s.io";
/// Bytes read from the pod per frame.
const CHUNK: usize = 32 * 1024;

/// The pod a connection forwards to.
#[derive(Clone)]
struct PodTarget {
    kubelet: Arc<Kubelet>,
    uid: String,
}

impl PodTarget {
    /// A connection to the port, or the kubelet's message for the error stream.
    async fn dial(&self, port: u16) -> Result<TcpStream, String> {
        self.kubelet.dial(&self.uid, port).await.map_err(|e| {
            let cause = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                _ => e.to_string(),
            };
            format!("error forwarding port {port} to pod {uid}, uid : failed to connect to localhost:{port} inside namespace \"{uid}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: {cause} ", uid = self.uid)
        })
    }
}

/// What a connection has carried from the pod, against the drop fault's limit (read as each
/// chunk goes, so setting the fault cuts connections already open).
struct Budget {
    limit: Box<dyn Fn() -> Option<usize> + Send + Sync>,
    sent: AtomicUsize,
}

impl Budget {
    fn new(limit: impl Fn() -> Option<usize> + Send + Sync + 'static) -> Arc<Budget> {
        Arc::new(Budget {
            limit: Box::new(limit),
            sent: AtomicUsize::new(0),
        })
    }

    /// Of `n` bytes from the pod, how many go out, and whether the connection is cut after.
    fn take(&self, n: usize) -> (usize, bool) {
        let Some(limit) = (self.limit)() else {
            self.sent.fetch_add(n, Ordering::SeqCst);
            return (n, false);
        };
        let before = self.sent.fetch_add(n, Ordering::SeqCst);
        let allowed = limit.saturating_sub(before).min(n);
        (allowed, before + n >= limit)
    }
}

pub async fn portforward(
    State(c): State<Arc<Cluster>>,
    Path((ns, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let method = req.method().as_str().to_string();
    if let Some(resp) = c.faults.before_request(&method, req.uri().path()).await {
        return resp;
    }
    let Some(id) = authn::authenticate(&c, req.headers()) else {
        return ApiError::unauthorized().into_response();
    };
    let rp = ResourcePath {
        res: resources::pods(),
        namespace: Some(ns.clone()),
        name: Some(name.clone()),
        sub: Some("portforward".into()),
    };
    if let Err(e) = rbac::authorize(&id, &axum::http::Method::POST, &rp, false) {
        return e.into_response();
    }
    let Some(pod) = c.store.get(resources::pods(), &ns, &name) else {
        return ApiError::not_found("pods", "", &name).into_response();
    };
    if pod["status"]["phase"] != "Running" {
        return ApiError::bad_request(format!(
            "unable to upgrade connection: pod not found (\"{name}_{ns}\")"
        ))
        .into_response();
    }
    let target = PodTarget {
        kubelet: c.kubelet.clone(),
        uid: pod["metadata"]["uid"].as_str().unwrap_or("").to_string(),
    };
    let faults = c.clone();
    let budget = Budget::new(move || faults.faults.portforward_drop_after_bytes());
    let upgrade = header(req.headers(), "upgrade").to_ascii_lowercase();
    if upgrade.contains("websocket") {
        let offered: Vec<String> = header(req.headers(), "sec-websocket-protocol")
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let supported = [SPDY_TUNNEL, CHANNEL_BINARY, CHANNEL_BASE64];
        let chosen = offered
            .iter()
            .find(|p| supported.contains(&p.as_str()))
            .cloned();
        // The channel protocols name their ports in the query; SPDY streams in their headers.
        let ports = match chosen.as_deref() {
            Some(SPDY_TUNNEL) => Vec::new(),
            _ => match query_ports(req.uri().query().unwrap_or("")) {
                Ok(p) => p,
                Err(msg) => return ApiError::bad_request(msg).into_response(),
            },
        };
        if chosen.is_none() && !offered.is_empty() {
            return ApiError::bad_request(format!("unable to upgrade websocket connection: requested protocol(s) are not supported: {offered:?}; supports {supported:?}")).into_response();
        }
        let (mut parts, _) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws,
            Err(e) => return e.into_response(),
        };
        return match chosen.as_deref() {
            Some(SPDY_TUNNEL) => ws
                .protocols([SPDY_TUNNEL])
                .on_upgrade(move |socket| tunnel(socket, target, budget)),
            Some(p) => {
                let base64 = p == CHANNEL_BASE64;
                ws.protocols([CHANNEL_BINARY, CHANNEL_BASE64])
                    .on_upgrade(move |socket| channels(socket, target, ports, base64, budget))
            }
            None => ws.on_upgrade(move |socket| channels(socket, target, ports, false, budget)),
        };
    }
    if upgrade.contains("spdy/3.1") {
        return spdy_upgrade(req, target, budget);
    }
    ApiError::bad_request("Upgrade request required").into_response()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The `ports` query parameter (repeated or comma-separated), as the kubelet parses `port`.
fn query_ports(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "ports" {
            continue;
        }
        if v.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in v.split(',') {
            match p.parse::<u16>() {
                Ok(0) => return Err(format!("port \"{v}\" must be > 0")),
                Ok(n) => ports.push(n),
                Err(e) => return Err(format!("unable to parse \"{v}\" as a port: {e}")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(ports)
}

/// The plain SPDY upgrade: 101 now, the session on the upgraded connection.
fn spdy_upgrade(mut req: Request, target: PodTarget, budget: Arc<Budget>) -> Response {
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let io = hyper_util::rt::TokioIo::new(upgraded);
            let _ = session(io, target, budget).await;
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    h.insert("upgrade", HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(PROTOCOL),
    );
    resp
}

/// SPDY carried in binary WebSocket messages: a pipe between the two, the session on one end.
async fn tunnel(socket: WebSocket, target: PodTarget, budget: Arc<Budget>) {
    let (session_end, pump_end) = tokio::io::duplex(256 * 1024);
    let mut spdy = tokio::spawn(session(session_end, target, budget));
    let (mut sink, mut stream) = socket.split();
    let (mut from_session, mut to_session) = tokio::io::split(pump_end);
    let mut buf = vec![0u8; CHUNK + 64];
    loop {
        tokio::select! {
            n = from_session.read(&mut buf) => match n {
                Ok(n) if n > 0 => {
                    if sink.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        return;
                    }
                }
                // The session ended: a cut connection just goes away, a finished one closes.
                _ => {
                    if !matches!((&mut spdy).await, Ok(Ok(Ended::Cut))) {
                        let _ = sink.send(Message::Close(None)).await;
                    }
                    return;
                }
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if to_session.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// How a session ended.
enum Ended {
    Closed,
    /// The drop fault cut it.
    Cut,
}

enum Out {
    Frame(Frame),
    /// Everything before this is written; then the connection goes.
    Cut,
}

/// A stream the client opened: its `streamtype` and `port`.
struct ClientStream {
    kind: String,
    port: u16,
}

/// What a data stream's forwarder listens to: bytes for the pod (None: the client's FIN).
struct DataStream {
    to_pod: Option<mpsc::Sender<Vec<u8>>>,
    reset: watch::Sender<bool>,
}

/// One SPDY connection: streams opened by the client, answered and paired into forwards.
async fn session<IO>(io: IO, target: PodTarget, budget: Arc<Budget>) -> std::io::Result<Ended>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(256);
    let write = tokio::spawn(async move {
        let mut enc = HeaderEncoder::default();
        while let Some(out) = out_rx.recv().await {
            match out {
                Out::Frame(f) => {
                    if writer.write_all(&enc.frame(&f)).await.is_err() {
                        return Ended::Closed;
                    }
                }
                Out::Cut => {
                    let _ = writer.flush().await;
                    return Ended::Cut;
                }
            }
            if out_rx.is_empty() && writer.flush().await.is_err() {
                return Ended::Closed;
            }
        }
        Ended::Closed
    });
    let read = async move {
        let mut data: HashMap<u32, DataStream> = HashMap::new();
        let result = read_streams(&mut reader, &target, &budget, &out_tx, &mut data).await;
        // The client went: every forward stops with it.
        for d in data.values() {
            let _ = d.reset.send(true);
        }
        result
    };
    tokio::select! {
        r = read => r.map(|_| Ended::Closed),
        ended = write => Ok(ended.unwrap_or(Ended::Closed)),
    }
}

/// The client's frames until it goes away: new streams answered and paired, data passed to
/// the forwards, pings answered.
async fn read_streams<R: AsyncRead + Unpin>(
    reader: &mut R,
    target: &PodTarget,
    budget: &Arc<Budget>,
    out_tx: &mpsc::Sender<Out>,
    data: &mut HashMap<u32, DataStream>,
) -> std::io::Result<()> {
    let mut dec = HeaderDecoder::default();
    let mut opened: HashMap<u32, ClientStream> = HashMap::new();
    // requestid -> the error stream waiting for its data stream (or the other way round).
    let mut unpaired: HashMap<String, u32> = HashMap::new();
    while let Some(frame) = spdy::read_frame(reader, &mut dec).await? {
        match frame {
            Frame::SynStream {
                stream_id, headers, ..
            } => {
                let get = |k: &str| {
                    headers
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let kind = get("streamtype");
                // Without a requestid, kubelets pair an error stream with the data stream
                // opened right after it.
                let request = match get("requestid") {
                    r if !r.is_empty() => r,
                    _ if kind == "data" => stream_id.saturating_sub(2).to_string(),
                    _ => stream_id.to_string(),
                };
                let port = get("port").parse::<u16>().unwrap_or(0);
                let reply = Frame::SynReply {
                    stream_id,
                    headers: vec![],
                    fin: false,
                };
                if out_tx.send(Out::Frame(reply)).await.is_err() {
                    break;
                }
                opened.insert(stream_id, ClientStream { kind, port });
                let Some(other) = unpaired.remove(&request) else {
                    unpaired.insert(request, stream_id);
                    continue;
                };
                let (error_id, data_id) = if opened[&stream_id].kind == "error" {
                    (stream_id, other)
                } else {
                    (other, stream_id)
                };
                let (to_pod, from_client) = mpsc::channel(64);
                let (reset, reset_rx) = watch::channel(false);
                data.insert(
                    data_id,
                    DataStream {
                        to_pod: Some(to_pod),
                        reset,
                    },
                );
                tokio::spawn(forward_spdy(
                    target.clone(),
                    opened[&data_id].port,
                    data_id,
                    error_id,
                    from_client,
                    reset_rx,
                    out_tx.clone(),
                    budget.clone(),
                ));
            }
            Frame::Data {
                stream_id,
                fin,
                data: bytes,
            } => {
                if let Some(d) = data.get_mut(&stream_id) {
                    if let (false, Some(tx)) = (bytes.is_empty(), &d.to_pod) {
                        let _ = tx.send(bytes).await;
                    }
                    if fin {
                        d.to_pod = None;
                    }
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(d) = data.remove(&stream_id) {
                    let _ = d.reset.send(true);
                }
                opened.remove(&stream_id);
            }
            Frame::Ping(id) => {
                if out_tx.send(Out::Frame(Frame::Ping(id))).await.is_err() {
                    break;
                }
            }
            Frame::GoAway { .. } => break,
            Frame::SynReply { .. } | Frame::Other(_) => {}
        }
    }
    Ok(())
}

/// One forwarded connection over a SPDY stream pair, as the kubelet and the container runtime
/// run it: until one direction ends, then at most a second more for the other.
#[allow(clippy::too_many_arguments)]
async fn forward_spdy(
    target: PodTarget,
    port: u16,
    data_id: u32,
    error_id: u32,
    mut from_client: mpsc::Receiver<Vec<u8>>,
    mut reset: watch::Receiver<bool>,
    out: mpsc::Sender<Out>,
    budget: Arc<Budget>,
) {
    let fin = |stream_id| {
        Out::Frame(Frame::Data {
            stream_id,
            fin: true,
            data: Vec::new(),
        })
    };
    let conn = tokio::select! {
        c = target.dial(port) => c,
        _ = reset.changed() => return,
    };
    let conn = match conn {
        Ok(c) => c,
        Err(msg) => {
            let _ = out
                .send(Out::Frame(Frame::Data {
                    stream_id: error_id,
                    fin: false,
                    data: msg.into_bytes(),
                }))
                .await;
            let _ = out.send(fin(data_id)).await;
            let _ = out.send(fin(error_id)).await;
            return;
        }
    };
    let (mut pod_r, mut pod_w) = conn.into_split();
    let to_pod = async {
        while let Some(bytes) = from_client.recv().await {
            if pod_w.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = pod_w.shutdown().await;
    };
    let from_pod = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match pod_r.read(&mut buf).await {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            let (allowed, cut) = budget.take(n);
            if allowed > 0 {
                let frame = Frame::Data {
                    stream_id: data_id,
                    fin: false,
                    data: buf[..allowed].to_vec(),
                };
                if out.send(Out::Frame(frame)).await.is_err() {
                    return;
                }
            }
            if cut {
                let _ = out.send(Out::Cut).await;
                return;
            }
        }
    };
    tokio::pin!(to_pod, from_pod);
    tokio::select! {
        _ = &mut to_pod => {
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut from_pod).await;
        }
        _ = &mut from_pod => {
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut to_pod).await;
        }
        _ = reset.changed() => return,
    }
    let _ = out.send(fin(data_id)).await;
    let _ = out.send(fin(error_id)).await;
}

/// What the channel protocol's writer sends.
enum ChannelOut {
    Frame(u8, Vec<u8>),
    /// Port i's connection ended.
    Done,
    Cut,
}

/// The WebSocket channel protocol: one pod connection per requested port.
async fn channels(
    socket: WebSocket,
    target: PodTarget,
    ports: Vec<u16>,
    base64: bool,
    budget: Arc<Budget>,
) {
    let (mut sink, mut stream) = socket.split();
    let encode = |ch: u8, data: &[u8]| -> Message {
        if base64 {
            let text = format!(
                "{}{}",
                char::from(b'0' + ch),
                base64::engine::general_purpose::STANDARD.encode(data)
            );
            Message::Text(text.into())
        } else {
            let mut v = Vec::with_capacity(data.len() + 1);
            v.push(ch);
            v.extend_from_slice(data);
            Message::Binary(v.into())
        }
    };
    for (i, port) in ports.iter().enumerate() {
        for ch in [2 * i as u8, 2 * i as u8 + 1] {
            if sink.send(encode(ch, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
    }
    let (out_tx, mut out_rx) = mpsc::channel::<ChannelOut>(256);
    let mut to_pods = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
        to_pods.push(tx);
        tokio::spawn(forward_channel(
            target.clone(),
            *port,
            i as u8,
            rx,
            out_tx.clone(),
            budget.clone(),
        ));
    }
    drop(out_tx);
    let mut done = 0;
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(ChannelOut::Frame(ch, data)) => {
                    if sink.send(encode(ch, &data)).await.is_err() {
                        return;
                    }
                }
                Some(ChannelOut::Done) => {
                    done += 1;
                    if done == ports.len() {
                        let _ = sink.send(Message::Close(None)).await;
                        return;
                    }
                }
                Some(ChannelOut::Cut) | None => return,
            },
            msg = stream.next() => {
                let frame = match msg {
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Text(t))) if base64 => {
                        let t = t.as_bytes();
                        let Some(ch) = t.first().map(|c| c.wrapping_sub(b'0')) else { continue };
                        let Ok(data) = base64::engine::general_purpose::STANDARD.decode(&t[1..]) else { continue };
                        [vec![ch], data].concat()
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                // Data for port i comes on channel 2i; anything else from the client is ignored.
                if let Some((ch, data)) = frame.split_first() {
                    if ch % 2 == 0 && !data.is_empty() {
                        if let Some(tx) = to_pods.get(usize::from(ch / 2)) {
                            let _ = tx.send(data.to_vec()).await;
                        }
                    }
                }
            }
        }
    }
}

async fn forward_channel(
    target: PodTarget,
    port: u16,
    index: u8,
    mut from_client: mpsc::Receiver<Vec<u8>>,
    out: mpsc::Sender<ChannelOut>,
    budget: Arc<Budget>,
) {
    let (data_ch, error_ch) = (2 * index, 2 * index + 1);
    let conn = match target.dial(port).await {
        Ok(c) => c,
        Err(msg) => {
            let _ = out
                .send(ChannelOut::Frame(error_ch, msg.into_bytes()))
                .await;
            let _ = out.send(ChannelOut::Done).await;
            return;
        }
    };
    let (mut pod_r, mut pod_w) = conn.into_split();
    let to_pod = async {
        while let Some(bytes) = from_client.recv().await {
            if pod_w.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    let from_pod = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match pod_r.read(&mut buf).await {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            let (allowed, cut) = budget.take(n);
            if allowed > 0
                && out
                    .send(ChannelOut::Frame(data_ch, buf[..allowed].to_vec()))
                    .await
                    .is_err()
            {
                return;
            }
            if cut {
                let _ = out.send(ChannelOut::Cut).await;
                return;
            }
        }
    };
    tokio::pin!(to_pod, from_pod);
    tokio::select! {
        _ = &mut to_pod => {
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut from_pod).await;
        }
        _ = &mut from_pod => {
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut to_pod).await;
        }
    }
    let _ = out.send(ChannelOut::Done).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_the_query() {
        assert_eq!(query_ports("ports=8888"), Ok(vec![8888]));
        assert_eq!(
            query_ports("ports=80,443&ports=9000"),
            Ok(vec![80, 443, 9000])
        );
        assert_eq!(
            query_ports(""),
            Err("query parameter \"port\" is required".to_string())
        );
        assert!(query_ports("ports=0").unwrap_err().contains("must be > 0"));
        assert!(query_ports("ports=x")
            .unwrap_err()
            .contains("unable to parse"));
    }

    #[test]
    fn budget_cuts_at_the_limit() {
        let b = Budget::new(|| Some(10));
        assert_eq!(b.take(4), (4, false));
        assert_eq!(b.take(8), (6, true));
        let unlimited = Budget::new(|| None);
        assert_eq!(unlimited.take(1 << 20), (1 << 20, false));
    }
}
