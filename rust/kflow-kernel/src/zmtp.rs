//! The part of ZeroMQ a Jupyter kernel serves — ZMTP 3.0 with the NULL mechanism, as ROUTER
//! (shell, control, stdin), PUB (iopub) and an echoing REP (heartbeat) — written here rather
//! than taken from a ZeroMQ library because the kernel's ports are open to every local process
//! and must survive any bytes: a frame's announced size is checked against [`Limits`] before
//! anything is allocated for it, buffers grow only as bytes really arrive, a peer that breaks
//! the protocol or says nothing loses its connection, and the socket goes on serving the rest.
//! (A general ZeroMQ codec reserves the announced frame size up front, so one 73-byte header
//! announcing 2^62 bytes aborts the process.)
//!
//! Wire format (<https://rfc.zeromq.org/spec/23/>): a 64-byte greeting each way, then each side
//! sends a READY command with its socket type (and a ROUTER peer's identity), then frames of
//! `flags, size (1 or 8 bytes), body`. Peers speaking 3.1 are served too: they fall back to 3.0
//! when our greeting says 3.0 (so they send no PING heartbeats), and SUBSCRIBE/CANCEL commands
//! are understood anyway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Bounds on what one peer may make the kernel hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest message (all frames together), like libzmq's `ZMQ_MAXMSGSIZE`. Larger ones
    /// close the connection before their body is read.
    pub max_message_bytes: u64,
    /// Frames in one message; Jupyter messages have 6 plus identities and buffers.
    pub max_frames: usize,
    /// Connections one socket serves at once; later ones are closed at once.
    pub max_peers: usize,
    /// How long a new connection may take to greet and send READY.
    pub handshake_timeout: Duration,
    /// Messages queued for one slow peer before further ones to it are dropped (ZeroMQ's
    /// high-water mark).
    pub send_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024 * 1024,
            max_frames: 4096,
            max_peers: 256,
            handshake_timeout: Duration::from_secs(10),
            send_queue: 100_000,
        }
    }
}

/// Commands (READY, SUBSCRIBE…) are small; one this large is an attack or a bug.
const MAX_COMMAND_BYTES: u64 = 64 * 1024;
const FLAG_MORE: u8 = 0b001;
const FLAG_LONG: u8 = 0b010;
const FLAG_COMMAND: u8 = 0b100;

/// Why a peer's connection was closed. Never ends the socket.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a ZMTP 3 peer: {0}")]
    Greeting(&'static str),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("frame with reserved flag bits {0:#04x}")]
    ReservedFlags(u8),
    #[error("message of more than {limit} bytes announced")]
    MessageTooLarge { limit: u64 },
    #[error("command of {size} bytes announced (limit {MAX_COMMAND_BYTES})")]
    CommandTooLarge { size: u64 },
    #[error("message of more than {0} frames")]
    TooManyFrames(usize),
    #[error("no greeting and READY within {0:?}")]
    HandshakeTimeout(Duration),
}

/// The three socket roles a kernel binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketType {
    Router,
    Pub,
    Rep,
}

impl SocketType {
    fn wire_name(self) -> &'static [u8] {
        match self {
            SocketType::Router => b"ROUTER",
            SocketType::Pub => b"PUB",
            SocketType::Rep => b"REP",
        }
    }
}

/// What a peer reads as one unit: a whole message, a command, or a message over the limit
/// that was read past without being kept.
#[derive(Debug)]
enum Unit {
    Message(Vec<Bytes>),
    Command { name: Bytes, data: Bytes },
    Discarded { bytes: u64 },
}

/// A message over the limit but under this is read past (and dropped) so a client that sent
/// one large output keeps its connection; one announcing more closes the connection at once.
const DISCARD_LIMIT: u64 = 1 << 30;

/// Binds `ip:port`. `*` and an empty host mean every IPv4 address, as in ZeroMQ endpoints.
pub async fn bind(ip: &str, port: u16) -> std::io::Result<TcpListener> {
    let host = match ip {
        "" | "*" => "0.0.0.0",
        other => other.trim_start_matches('[').trim_end_matches(']'),
    };
    TcpListener::bind((host, port)).await
}

fn greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    // Signature as libzmq writes it (its padding doubles as a ZMTP 1.0 length prefix).
    g[0] = 0xFF;
    g[8] = 0x01;
    g[9] = 0x7F;
    g[10] = 3; // major
    g[11] = 0; // minor: 3.0, so peers send subscriptions as messages and no heartbeats
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// The first 10 bytes: checked before reading on, so a peer that is not speaking ZMTP is
/// dropped at once instead of at the handshake timeout.
fn check_signature(signature: &[u8]) -> Result<(), ProtocolError> {
    if signature[0] != 0xFF || signature[9] & 0x01 != 0x01 {
        return Err(ProtocolError::Greeting("bad signature"));
    }
    Ok(())
}

fn check_greeting(g: &[u8; 64]) -> Result<(), ProtocolError> {
    check_signature(&g[..10])?;
    if g[10] < 3 {
        return Err(ProtocolError::Greeting("ZMTP version below 3.0"));
    }
    let mechanism = &g[12..32];
    let end = mechanism
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(mechanism.len());
    if &mechanism[..end] != b"NULL" || mechanism[end..].iter().any(|&b| b != 0) {
        return Err(ProtocolError::Greeting(
            "only the NULL security mechanism is served",
        ));
    }
    Ok(())
}

fn ready_command(kind: SocketType) -> Vec<u8> {
    let mut body = Vec::with_capacity(40);
    body.push(5);
    body.extend_from_slice(b"READY");
    let mut property = |name: &[u8], value: &[u8]| {
        body.push(name.len() as u8);
        body.extend_from_slice(name);
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    };
    property(b"Socket-Type", kind.wire_name());
    if kind == SocketType::Router {
        property(b"Identity", b"");
    }
    body
}

/// READY's properties as (name, value) pairs, every length checked against the body.
fn parse_properties(mut data: &[u8]) -> Result<Vec<(Bytes, Bytes)>, ProtocolError> {
    let bad = |what: &str| ProtocolError::Handshake(format!("malformed READY: {what}"));
    let mut properties = Vec::new();
    while !data.is_empty() {
        let name_len = data[0] as usize;
        let name = data
            .get(1..1 + name_len)
            .ok_or_else(|| bad("property name"))?;
        data = &data[1 + name_len..];
        let len_bytes: [u8; 4] = data
            .get(..4)
            .ok_or_else(|| bad("value length"))?
            .try_into()
            .unwrap_or_default();
        let value_len = u32::from_be_bytes(len_bytes) as usize;
        let value = data
            .get(4..4 + value_len)
            .ok_or_else(|| bad("property value"))?;
        properties.push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)));
        data = &data[4 + value_len..];
    }
    Ok(properties)
}

/// Reads one message or command, allocating no more than the bytes that have arrived.
async fn read_unit<R: AsyncRead + Unpin>(
    r: &mut R,
    limits: &Limits,
) -> Result<Unit, ProtocolError> {
    let mut frames: Vec<Bytes> = Vec::new();
    let mut total: u64 = 0;
    loop {
        let flags = r.read_u8().await?;
        if flags & !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND) != 0 {
            return Err(ProtocolError::ReservedFlags(flags));
        }
        let size = if flags & FLAG_LONG != 0 {
            r.read_u64().await?
        } else {
            u64::from(r.read_u8().await?)
        };
        let command = flags & FLAG_COMMAND != 0;
        if command {
            if !frames.is_empty() || flags & FLAG_MORE != 0 {
                return Err(ProtocolError::Handshake(
                    "a command inside a multipart message".into(),
                ));
            }
            if size > MAX_COMMAND_BYTES {
                return Err(ProtocolError::CommandTooLarge { size });
            }
        } else {
            total = total.saturating_add(size);
            if total > limits.max_message_bytes {
                if total > DISCARD_LIMIT {
                    return Err(ProtocolError::MessageTooLarge {
                        limit: limits.max_message_bytes,
                    });
                }
                return discard_rest(r, size, flags & FLAG_MORE != 0, total).await;
            }
            if frames.len() >= limits.max_frames {
                return Err(ProtocolError::TooManyFrames(limits.max_frames));
            }
        }
        // `size` is within the limits now, but the peer may still never send it: start small
        // and let the buffer grow with the bytes that really come.
        let mut body = Vec::with_capacity(size.min(64 * 1024) as usize);
        let read = (&mut *r).take(size).read_to_end(&mut body).await?;
        if read as u64 != size {
            return Err(ProtocolError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if command {
            let body = Bytes::from(body);
            let name_len = *body.first().unwrap_or(&0) as usize;
            if body.len() < 1 + name_len {
                return Err(ProtocolError::Handshake("malformed command".into()));
            }
            return Ok(Unit::Command {
                name: body.slice(1..1 + name_len),
                data: body.slice(1 + name_len..),
            });
        }
        frames.push(Bytes::from(body));
        if flags & FLAG_MORE == 0 {
            return Ok(Unit::Message(frames));
        }
    }
}

/// Reads past the rest of an oversized message without keeping it: this frame's `size`
/// bytes, then any further frames, as long as the total stays under [`DISCARD_LIMIT`].
async fn discard_rest<R: AsyncRead + Unpin>(
    r: &mut R,
    size: u64,
    mut more: bool,
    mut total: u64,
) -> Result<Unit, ProtocolError> {
    let mut skip = size;
    loop {
        let skipped = tokio::io::copy(&mut (&mut *r).take(skip), &mut tokio::io::sink()).await?;
        if skipped != skip {
            return Err(ProtocolError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if !more {
            return Ok(Unit::Discarded { bytes: total });
        }
        let flags = r.read_u8().await?;
        if flags & !(FLAG_MORE | FLAG_LONG) != 0 {
            return Err(ProtocolError::ReservedFlags(flags));
        }
        skip = if flags & FLAG_LONG != 0 {
            r.read_u64().await?
        } else {
            u64::from(r.read_u8().await?)
        };
        more = flags & FLAG_MORE != 0;
        total = total.saturating_add(skip);
        if total > DISCARD_LIMIT {
            return Err(ProtocolError::MessageTooLarge {
                limit: DISCARD_LIMIT,
            });
        }
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    flags: u8,
    body: &[u8],
) -> std::io::Result<()> {
    if body.len() > 255 {
        w.write_u8(flags | FLAG_LONG).await?;
        w.write_u64(body.len() as u64).await?;
    } else {
        w.write_u8(flags).await?;
        w.write_u8(body.len() as u8).await?;
    }
    w.write_all(body).await
}

async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, frames: &[Bytes]) -> std::io::Result<()> {
    let last = frames.len().saturating_sub(1);
    for (i, frame) in frames.iter().enumerate() {
        write_frame(w, if i < last { FLAG_MORE } else { 0 }, frame).await?;
    }
    w.flush().await
}

type Reader = BufReader<tokio::net::tcp::OwnedReadHalf>;
type Writer = BufWriter<tokio::net::tcp::OwnedWriteHalf>;

/// A connection after the handshake: its halves and the peer's READY properties.
type Handshaken = (Reader, Writer, Vec<(Bytes, Bytes)>);

/// Greets, exchanges READY and returns the peer's properties.
async fn handshake(
    stream: TcpStream,
    kind: SocketType,
    limits: &Limits,
) -> Result<Handshaken, ProtocolError> {
    let (r, w) = stream.into_split();
    let (mut r, mut w) = (
        BufReader::with_capacity(64 * 1024, r),
        BufWriter::with_capacity(64 * 1024, w),
    );
    w.write_all(&greeting()).await?;
    w.flush().await?;
    let mut peer = [0u8; 64];
    r.read_exact(&mut peer[..10]).await?;
    check_signature(&peer[..10])?;
    r.read_exact(&mut peer[10..]).await?;
    check_greeting(&peer)?;
    write_frame(&mut w, FLAG_COMMAND, &ready_command(kind)).await?;
    w.flush().await?;
    match read_unit(&mut r, limits).await? {
        Unit::Command { name, data } if &name[..] == b"READY" => {
            Ok((r, w, parse_properties(&data)?))
        }
        Unit::Command { name, .. } if &name[..] == b"ERROR" => {
            Err(ProtocolError::Handshake("the peer sent ERROR".into()))
        }
        _ => Err(ProtocolError::Handshake("expected READY".into())),
    }
}

async fn handshake_within(
    stream: TcpStream,
    kind: SocketType,
    limits: &Limits,
) -> Result<Handshaken, ProtocolError> {
    tokio::time::timeout(limits.handshake_timeout, handshake(stream, kind, limits))
        .await
        .map_err(|_| ProtocolError::HandshakeTimeout(limits.handshake_timeout))?
}

/// Writes what the socket queues for one peer until the queue or the connection closes.
fn spawn_writer(mut w: Writer, mut queue: mpsc::Receiver<Vec<Bytes>>) {
    tokio::spawn(async move {
        while let Some(frames) = queue.recv().await {
            if write_message(&mut w, &frames).await.is_err() {
                break;
            }
        }
    });
}

/// Counts a socket's live connections and refuses those beyond the limit.
struct PeerSlots {
    live: AtomicU64,
    max: u64,
}

impl PeerSlots {
    fn take(self: &Arc<Self>) -> Option<PeerSlot> {
        let now = self.live.fetch_add(1, Ordering::SeqCst);
        if now >= self.max {
            self.live.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(PeerSlot(self.clone()))
    }
}

struct PeerSlot(Arc<PeerSlots>);

impl Drop for PeerSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts connections forever, handing each (with a slot) to `serve_peer` on its own task.
fn spawn_acceptor<F, Fut>(listener: TcpListener, limits: Limits, name: &'static str, serve_peer: F)
where
    F: Fn(TcpStream, SocketAddr, PeerSlot) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), ProtocolError>> + Send + 'static,
{
    let slots = Arc::new(PeerSlots {
        live: AtomicU64::new(0),
        max: limits.max_peers as u64,
    });
    tokio::spawn(async move {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    log(name, &format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = slots.take() else {
                log(
                    name,
                    &format!("refused {addr}: already {} connections", limits.max_peers),
                );
                continue;
            };
            let _ = stream.set_nodelay(true);
            let task = serve_peer(stream, addr, slot);
            tokio::spawn(async move {
                if let Err(e) = task.await {
                    log(name, &format!("closed {addr}: {e}"));
                }
            });
        }
    });
}

fn log(name: &str, msg: &str) {
    eprintln!("[kflow-kernel] {name}: {msg}");
}

/// A ROUTER: every received message starts with the sending peer's identity frame, and a sent
/// message's first frame names the peer it goes to (messages to unknown peers are dropped, as
/// ZeroMQ's ROUTER does).
pub struct Router {
    incoming: mpsc::Receiver<Vec<Bytes>>,
    sender: RouterSender,
}

/// Each connected peer by identity: its connection number (so a handed-over identity is not
/// removed by the old connection's end) and its send queue.
type Peers = Arc<Mutex<HashMap<Bytes, (u64, mpsc::Sender<Vec<Bytes>>)>>>;

/// The sending half of a [`Router`]; cheap to clone.
#[derive(Clone)]
pub struct RouterSender {
    peers: Peers,
}

impl RouterSender {
    /// Queues `frames[1..]` for the peer named by `frames[0]`; false when it is gone or its
    /// queue is full.
    pub fn send(&self, mut frames: Vec<Bytes>) -> bool {
        if frames.is_empty() {
            return false;
        }
        let identity = frames.remove(0);
        let queue = self
            .peers
            .lock()
            .ok()
            .and_then(|p| p.get(&identity).map(|(_, q)| q.clone()));
        queue.is_some_and(|q| q.try_send(frames).is_ok())
    }
}

impl Router {
    pub async fn bind(
        ip: &str,
        port: u16,
        limits: Limits,
        name: &'static str,
    ) -> std::io::Result<Router> {
        let listener = bind(ip, port).await?;
        let (incoming_tx, incoming) = mpsc::channel(1024);
        let sender = RouterSender {
            peers: Arc::new(Mutex::new(HashMap::new())),
        };
        let peers = sender.peers.clone();
        let next_id = Arc::new(AtomicU64::new(1));
        spawn_acceptor(listener, limits, name, move |stream, _addr, slot| {
            let (peers, incoming_tx, next_id) =
                (peers.clone(), incoming_tx.clone(), next_id.clone());
            async move {
                let _slot = slot;
                let (mut r, w, properties) =
                    handshake_within(stream, SocketType::Router, &limits).await?;
                let conn = next_id.fetch_add(1, Ordering::SeqCst);
                // Like libzmq: the peer's own identity unless empty or starting with 0 (the
                // prefix of generated ones), else a generated one.
                let identity = properties
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(b"Identity"))
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.is_empty() && v[0] != 0)
                    .unwrap_or_else(|| {
                        let mut id = vec![0u8];
                        id.extend_from_slice(&(conn as u32).to_be_bytes());
                        Bytes::from(id)
                    });
                let (queue_tx, queue_rx) = mpsc::channel(limits.send_queue);
                spawn_writer(w, queue_rx);
                // A reconnecting client takes its identity over (ZMQ_ROUTER_HANDOVER).
                if let Ok(mut p) = peers.lock() {
                    p.insert(identity.clone(), (conn, queue_tx));
                }
                let result = async {
                    loop {
                        match read_unit(&mut r, &limits).await? {
                            Unit::Message(mut frames) => {
                                frames.insert(0, identity.clone());
                                if incoming_tx.send(frames).await.is_err() {
                                    return Ok(());
                                }
                            }
                            Unit::Command { .. } => {}
                            Unit::Discarded { bytes } => log(
                                name,
                                &format!("dropped a message of {bytes} bytes (over the limit)"),
                            ),
                        }
                    }
                }
                .await;
                if let Ok(mut p) = peers.lock() {
                    if p.get(&identity).is_some_and(|(c, _)| *c == conn) {
                        p.remove(&identity);
                    }
                }
                result
            }
        });
        Ok(Router { incoming, sender })
    }

    /// The next message from any peer, identity first; None once the socket is gone.
    pub async fn recv(&mut self) -> Option<Vec<Bytes>> {
        self.incoming.recv().await
    }

    pub fn sender(&self) -> RouterSender {
        self.sender.clone()
    }
}

struct Subscriber {
    prefixes: Vec<Bytes>,
    queue: mpsc::Sender<Vec<Bytes>>,
}

/// A PUB: each message goes to every peer subscribed to a prefix of its first frame.
#[derive(Clone)]
pub struct Publisher {
    subscribers: Arc<Mutex<HashMap<u64, Subscriber>>>,
}

/// A subscriber may not make the kernel keep an unbounded list of topics.
const MAX_SUBSCRIPTIONS: usize = 1024;

impl Publisher {
    pub async fn bind(
        ip: &str,
        port: u16,
        limits: Limits,
        name: &'static str,
    ) -> std::io::Result<Publisher> {
        let listener = bind(ip, port).await?;
        let publisher = Publisher {
            subscribers: Arc::new(Mutex::new(HashMap::new())),
        };
        let subscribers = publisher.subscribers.clone();
        let next_id = Arc::new(AtomicU64::new(1));
        spawn_acceptor(listener, limits, name, move |stream, _addr, slot| {
            let (subscribers, next_id) = (subscribers.clone(), next_id.clone());
            async move {
                let _slot = slot;
                let (mut r, w, _) = handshake_within(stream, SocketType::Pub, &limits).await?;
                let conn = next_id.fetch_add(1, Ordering::SeqCst);
                let (queue_tx, queue_rx) = mpsc::channel(limits.send_queue);
                spawn_writer(w, queue_rx);
                if let Ok(mut s) = subscribers.lock() {
                    s.insert(
                        conn,
                        Subscriber {
                            prefixes: Vec::new(),
                            queue: queue_tx,
                        },
                    );
                }
                let subscription = |subscribe: bool, topic: Bytes| {
                    if let Ok(mut s) = subscribers.lock() {
                        if let Some(sub) = s.get_mut(&conn) {
                            if subscribe {
                                if sub.prefixes.len() < MAX_SUBSCRIPTIONS {
                                    sub.prefixes.push(topic);
                                }
                            } else if let Some(i) = sub.prefixes.iter().position(|p| *p == topic) {
                                sub.prefixes.remove(i);
                            }
                        }
                    }
                };
                let result = async {
                    loop {
                        match read_unit(&mut r, &limits).await? {
                            // 3.0: a one-frame message, 1 = subscribe, 0 = cancel, then the topic.
                            Unit::Message(frames) => {
                                if let [frame] = &frames[..] {
                                    match frame.first() {
                                        Some(1) => subscription(true, frame.slice(1..)),
                                        Some(0) => subscription(false, frame.slice(1..)),
                                        _ => {}
                                    }
                                }
                            }
                            Unit::Command { name, data } => match &name[..] {
                                b"SUBSCRIBE" => subscription(true, data),
                                b"CANCEL" => subscription(false, data),
                                _ => {}
                            },
                            Unit::Discarded { .. } => {}
                        }
                    }
                }
                .await;
                if let Ok(mut s) = subscribers.lock() {
                    s.remove(&conn);
                }
                result
            }
        });
        Ok(publisher)
    }

    /// Queues the message for every matching subscriber; a subscriber whose queue is full
    /// misses it (ZeroMQ's PUB drops at the high-water mark too).
    pub fn send(&self, frames: Vec<Bytes>) {
        let topic = frames.first().cloned().unwrap_or_default();
        let Ok(subscribers) = self.subscribers.lock() else {
            return;
        };
        for sub in subscribers.values() {
            if sub.prefixes.iter().any(|p| topic.starts_with(p)) {
                let _ = sub.queue.try_send(frames.clone());
            }
        }
    }
}

/// The heartbeat: a REP that echoes each message, envelope and all, to the peer that sent it.
pub async fn bind_echo(
    ip: &str,
    port: u16,
    limits: Limits,
    name: &'static str,
) -> std::io::Result<()> {
    let listener = bind(ip, port).await?;
    // Pings are tiny; there is no reason to accept large ones.
    let limits = Limits {
        max_message_bytes: 64 * 1024,
        ..limits
    };
    spawn_acceptor(
        listener,
        limits,
        name,
        move |stream, _addr, slot| async move {
            let _slot = slot;
            let (mut r, mut w, _) = handshake_within(stream, SocketType::Rep, &limits).await?;
            loop {
                match read_unit(&mut r, &limits).await? {
                    Unit::Message(frames) => write_message(&mut w, &frames).await?,
                    Unit::Command { .. } | Unit::Discarded { .. } => {}
                }
            }
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn connect_and_greet(port: u16, kind: &[u8]) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&greeting()).await.unwrap();
        let mut peer = [0u8; 64];
        s.read_exact(&mut peer).await.unwrap();
        check_greeting(&peer).unwrap();
        let mut ready = vec![5];
        ready.extend_from_slice(b"READY");
        ready.push(11);
        ready.extend_from_slice(b"Socket-Type");
        ready.extend_from_slice(&(kind.len() as u32).to_be_bytes());
        ready.extend_from_slice(kind);
        write_frame(&mut s, FLAG_COMMAND, &ready).await.unwrap();
        // Their READY.
        match read_unit(&mut s, &Limits::default()).await.unwrap() {
            Unit::Command { name, .. } => assert_eq!(&name[..], b"READY"),
            other => panic!("expected READY, got {other:?}"),
        }
        s
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn a_huge_announced_frame_closes_only_that_connection() {
        let port = free_port();
        let mut router = Router::bind("127.0.0.1", port, Limits::default(), "test")
            .await
            .unwrap();
        let mut evil = connect_and_greet(port, b"DEALER").await;
        // One frame header announcing 2^62 bytes.
        let mut header = vec![FLAG_LONG];
        header.extend_from_slice(&(1u64 << 62).to_be_bytes());
        evil.write_all(&header).await.unwrap();
        let mut buf = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), evil.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(closed, Ok(0) | Err(_)), "the connection is closed");

        let mut good = connect_and_greet(port, b"DEALER").await;
        write_message(&mut good, &[Bytes::from_static(b"hello")])
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), router.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got[1][..], b"hello");
        let sender = router.sender();
        assert!(sender.send(vec![got[0].clone(), Bytes::from_static(b"reply")]));
        match read_unit(&mut good, &Limits::default()).await.unwrap() {
            Unit::Message(frames) => assert_eq!(frames, vec![Bytes::from_static(b"reply")]),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn limits_are_enforced_before_reading_bodies() {
        let limits = Limits {
            max_message_bytes: 1000,
            max_frames: 3,
            ..Limits::default()
        };
        let mut r: &[u8] = &[FLAG_LONG, 0x40, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            read_unit(&mut r, &limits).await,
            Err(ProtocolError::MessageTooLarge { .. })
        ));
        // Over the limit but plausible: read past, and the next message is intact.
        let mut bytes = vec![FLAG_MORE | FLAG_LONG, 0, 0, 0, 0, 0, 0, 0x08, 0];
        bytes.extend(vec![b'x'; 0x800]);
        bytes.extend([0, 3, b'e', b'n', b'd', 0, 2, b'o', b'k']);
        let mut r: &[u8] = &bytes;
        assert!(matches!(
            read_unit(&mut r, &limits).await,
            Ok(Unit::Discarded { bytes: 2051 })
        ));
        assert!(
            matches!(read_unit(&mut r, &limits).await, Ok(Unit::Message(f)) if f == [Bytes::from_static(b"ok")])
        );
        let mut r: &[u8] = &[FLAG_MORE, 0, FLAG_MORE, 0, FLAG_MORE, 0, 0, 0];
        assert!(matches!(
            read_unit(&mut r, &limits).await,
            Err(ProtocolError::TooManyFrames(3))
        ));
        let mut r: &[u8] = &[0x80, 0];
        assert!(matches!(
            read_unit(&mut r, &limits).await,
            Err(ProtocolError::ReservedFlags(0x80))
        ));
        let mut r: &[u8] = &[FLAG_COMMAND | FLAG_LONG, 0, 0, 0, 0, 0, 2, 0, 0];
        assert!(matches!(
            read_unit(&mut r, &limits).await,
            Err(ProtocolError::CommandTooLarge { .. })
        ));
        // A truncated body is an error, not a short frame.
        let mut r: &[u8] = &[0, 5, b'a'];
        assert!(read_unit(&mut r, &limits).await.is_err());
        assert!(parse_properties(&[3, b'a']).is_err());
        assert!(parse_properties(&[1, b'a', 0, 0, 0, 9, b'x']).is_err());
    }

    #[tokio::test]
    async fn garbage_and_silence_do_not_hold_a_slot() {
        let port = free_port();
        let limits = Limits {
            max_peers: 2,
            handshake_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let publisher = Publisher::bind("127.0.0.1", port, limits, "test")
            .await
            .unwrap();
        let mut junk = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        junk.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let _silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut sub = connect_and_greet(port, b"SUB").await;
        write_message(&mut sub, &[Bytes::from_static(b"\x01")])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        publisher.send(vec![
            Bytes::from_static(b"topic"),
            Bytes::from_static(b"body"),
        ]);
        match tokio::time::timeout(
            Duration::from_secs(5),
            read_unit(&mut sub, &Limits::default()),
        )
        .await
        .unwrap()
        {
            Ok(Unit::Message(frames)) => assert_eq!(&frames[1][..], b"body"),
            other => panic!("{other:?}"),
        }
    }
}
