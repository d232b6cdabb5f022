//! The client end of the session agent's stream (see `agent.py` for the frame): numbered
//! frames kept until the agent acknowledges them, so a stream that drops mid-cell is dialled
//! again and neither side loses or repeats a frame.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const MSG: u8 = 3;
const OP: u8 = 4;
const EVENT: u8 = 5;
const ACK: u8 = 6;
const MAX_FRAME: usize = 256 * 1024 * 1024;
/// How long the session may stay unreachable before the link gives up on it.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// A byte stream to the agent: a port-forward stream, or a Unix socket on this machine.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

pub(crate) type Dialed = std::io::Result<Box<dyn Stream>>;
/// Opens a fresh stream to the agent.
pub(crate) type Dialer = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Dialed> + Send>> + Send>;
/// Asked when the agent cannot be reached: `Some(why)` when the session has ended (its pod
/// failed or is gone), so the link stops retrying. Runs on a blocking thread.
pub(crate) type EndCheck = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// What the session sends that is not an answer to a call.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A Jupyter message from the remote kernel: `channel` is `shell`, `control`, `stdin` or
    /// `iopub`; `parts` are header, parent header, metadata, content and any buffers, as JSON
    /// bytes, unsigned.
    Message {
        /// The kernel socket it came from.
        channel: String,
        /// The message's frames after the signature.
        parts: Vec<Vec<u8>>,
    },
    /// The remote Python exited on its own (a crash, `os._exit`); its state is gone.
    KernelDied {
        /// Its exit code.
        exit_code: Option<i64>,
    },
    /// A fresh remote Python is ready after `KernelDied`.
    KernelRestarted,
    /// The session ended itself after this long without use.
    Culled {
        /// Seconds without a cell.
        idle_seconds: u64,
    },
    /// The stream dropped and a new one carries on; nothing was lost.
    Reconnected,
    /// The session cannot be reached any more; the link has stopped.
    Ended {
        /// Why, in words (the pod's failure reason when there is one).
        reason: String,
    },
}

enum Outbound {
    Frame { kind: u8, parts: Vec<Vec<u8>> },
    Close,
}

/// The sending half of a connection to a session; clones share the connection.
#[derive(Clone)]
pub struct SessionLink {
    outbound: mpsc::UnboundedSender<Outbound>,
    calls: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    next_call: Arc<AtomicU64>,
}

impl std::fmt::Debug for SessionLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionLink")
    }
}

impl SessionLink {
    /// Sends a Jupyter message to the remote kernel's `channel` (`shell`, `control`, `stdin`):
    /// header, parent header, metadata, content and buffers, as JSON bytes.
    pub fn send(&self, channel: &str, parts: Vec<Vec<u8>>) {
        let mut frame = vec![channel.as_bytes().to_vec()];
        frame.extend(parts);
        let _ = self.outbound.send(Outbound::Frame {
            kind: MSG,
            parts: frame,
        });
    }

    /// Asks the agent to do `op` and waits for its answer (`None` when the link ended first).
    pub async fn call(&self, mut op: Value, data: Vec<Vec<u8>>) -> Option<Value> {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed) + 1;
        op["id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        self.calls.lock().ok()?.insert(id, tx);
        let mut parts = vec![serde_json::to_vec(&op).unwrap_or_default()];
        parts.extend(data);
        self.outbound
            .send(Outbound::Frame { kind: OP, parts })
            .ok()?;
        rx.await.ok()
    }

    /// Closes the stream; the session itself lives on (reattach with `Session::connect`).
    pub fn close(&self) {
        let _ = self.outbound.send(Outbound::Close);
    }
}

/// Starts the link on `runtime`; events arrive on the returned receiver until `Ended`.
pub(crate) fn start(
    runtime: &tokio::runtime::Handle,
    dial: Dialer,
    ended: EndCheck,
) -> (SessionLink, mpsc::UnboundedReceiver<SessionEvent>) {
    let (outbound, outbound_rx) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    let link = SessionLink {
        outbound,
        calls: Default::default(),
        next_call: Default::default(),
    };
    let driver = Driver {
        dial,
        ended,
        events,
        calls: link.calls.clone(),
        outbound: outbound_rx,
        out_seq: 0,
        unacked: VecDeque::new(),
        in_seq: 0,
        client: crate::spec::random_id(16),
    };
    runtime.spawn(driver.run());
    (link, events_rx)
}

struct Driver {
    dial: Dialer,
    ended: EndCheck,
    events: mpsc::UnboundedSender<SessionEvent>,
    calls: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    outbound: mpsc::UnboundedReceiver<Outbound>,
    out_seq: u64,
    /// Frames written but not yet acknowledged, resent on a new stream.
    unacked: VecDeque<(u64, Vec<u8>)>,
    /// The last numbered frame received from the agent.
    in_seq: u64,
    /// This link's id: the agent tells a reconnect (same id) from a new client.
    client: String,
}

enum StreamEnd {
    /// The local side closed the link.
    Closed,
    Broken(String),
}

impl Driver {
    async fn run(mut self) {
        let mut connected_before = false;
        let mut unreachable_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            let failure = match (self.dial)().await {
                Ok(stream) => match self.serve(stream, connected_before).await {
                    StreamEnd::Closed => return,
                    StreamEnd::Broken(why) => {
                        connected_before = true;
                        unreachable_since.get_or_insert_with(Instant::now);
                        why
                    }
                },
                Err(e) => e.to_string(),
            };
            let since = *unreachable_since.get_or_insert_with(Instant::now);
            let check = self.ended.clone();
            let ended = tokio::task::spawn_blocking(move || check())
                .await
                .ok()
                .flatten();
            let reason = match ended {
                Some(reason) => Some(reason),
                None if since.elapsed() > GIVE_UP_AFTER => Some(format!(
                    "the session could not be reached for {} s ({failure})",
                    GIVE_UP_AFTER.as_secs()
                )),
                None => None,
            };
            if let Some(reason) = reason {
                let _ = self.events.send(SessionEvent::Ended { reason });
                // Calls still waiting get no answer: dropping their senders wakes them.
                if let Ok(mut calls) = self.calls.lock() {
                    calls.clear();
                }
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// One stream, until it breaks or the link is closed.
    async fn serve(&mut self, stream: Box<dyn Stream>, reconnect: bool) -> StreamEnd {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let hello = json!({"received": self.in_seq, "client": self.client})
            .to_string()
            .into_bytes();
        if let Err(e) = writer.write_all(&encode(HELLO, 0, &[hello])).await {
            return StreamEnd::Broken(e.to_string());
        }
        let welcome =
            match tokio::time::timeout(Duration::from_secs(30), read_frame(&mut reader)).await {
                Ok(Ok((WELCOME, _, parts))) => parts,
                Ok(Ok(_)) => return StreamEnd::Broken("the agent did not welcome us".into()),
                Ok(Err(e)) => return StreamEnd::Broken(e.to_string()),
                Err(_) => return StreamEnd::Broken("no welcome within 30 s".into()),
            };
        let agent_has = parse(welcome.first())["received"].as_u64().unwrap_or(0);
        self.acked(agent_has);
        for (_, frame) in &self.unacked {
            if let Err(e) = writer.write_all(frame).await {
                return StreamEnd::Broken(e.to_string());
            }
        }
        if reconnect {
            let _ = self.events.send(SessionEvent::Reconnected);
        }
        // Reading in its own task: a frame half-read when the select below picks another
        // branch would otherwise be lost.
        let (frames_tx, mut frames) = mpsc::channel(64);
        let read_task = tokio::spawn(async move {
            loop {
                let frame = read_frame(&mut reader).await;
                let stop = frame.is_err();
                if frames_tx.send(frame).await.is_err() || stop {
                    return;
                }
            }
        });
        let mut ack_tick = tokio::time::interval(Duration::from_millis(200));
        let mut acked_in = self.in_seq;
        let end = loop {
            tokio::select! {
                out = self.outbound.recv() => match out {
                    None | Some(Outbound::Close) => break StreamEnd::Closed,
                    Some(Outbound::Frame { kind, parts }) => {
                        self.out_seq += 1;
                        let frame = encode(kind, self.out_seq, &parts);
                        let written = writer.write_all(&frame).await;
                        self.unacked.push_back((self.out_seq, frame));
                        if let Err(e) = written {
                            break StreamEnd::Broken(e.to_string());
                        }
                    }
                },
                frame = frames.recv() => match frame {
                    None => break StreamEnd::Broken("the stream ended".into()),
                    Some(Err(e)) => break StreamEnd::Broken(e.to_string()),
                    Some(Ok((kind, seq, parts))) => {
                        if seq != 0 {
                            if seq <= self.in_seq {
                                continue;
                            }
                            self.in_seq = seq;
                        }
                        self.received(kind, parts);
                    }
                },
                _ = ack_tick.tick() => {
                    if self.in_seq != acked_in {
                        let ack = json!({"received": self.in_seq}).to_string().into_bytes();
                        if let Err(e) = writer.write_all(&encode(ACK, 0, &[ack])).await {
                            break StreamEnd::Broken(e.to_string());
                        }
                        acked_in = self.in_seq;
                    }
                }
            }
        };
        read_task.abort();
        if matches!(end, StreamEnd::Closed) {
            let _ = writer.shutdown().await;
        }
        end
    }

    fn acked(&mut self, upto: u64) {
        while self.unacked.front().is_some_and(|(seq, _)| *seq <= upto) {
            self.unacked.pop_front();
        }
    }

    fn received(&mut self, kind: u8, mut parts: Vec<Vec<u8>>) {
        match kind {
            ACK => {
                let upto = parse(parts.first())["received"].as_u64().unwrap_or(0);
                self.acked(upto);
            }
            MSG if !parts.is_empty() => {
                let channel = String::from_utf8_lossy(&parts.remove(0)).into_owned();
                let _ = self.events.send(SessionEvent::Message { channel, parts });
            }
            EVENT => {
                let body = parse(parts.first());
                if let Some(id) = body["id"].as_u64() {
                    if let Some(tx) = self.calls.lock().ok().and_then(|mut c| c.remove(&id)) {
                        let _ = tx.send(body);
                    }
                    return;
                }
                let event = match body["event"].as_str() {
                    Some("kernel_died") => SessionEvent::KernelDied {
                        exit_code: body["exit_code"].as_i64(),
                    },
                    Some("kernel_restarted") => SessionEvent::KernelRestarted,
                    Some("culled") => SessionEvent::Culled {
                        idle_seconds: body["idle_seconds"].as_u64().unwrap_or(0),
                    },
                    _ => return,
                };
                let _ = self.events.send(event);
            }
            _ => {}
        }
    }
}

fn parse(part: Option<&Vec<u8>>) -> Value {
    part.and_then(|p| serde_json::from_slice(p).ok())
        .unwrap_or(Value::Null)
}

pub(crate) fn encode(kind: u8, seq: u64, parts: &[Vec<u8>]) -> Vec<u8> {
    let body_len: usize = 13 + parts.iter().map(|p| 4 + p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(4 + body_len);
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(parts.len() as u32).to_be_bytes());
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<(u8, u64, Vec<Vec<u8>>)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let len = reader.read_u32().await? as usize;
    if !(13..=MAX_FRAME).contains(&len) {
        return Err(bad("a frame of impossible size"));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    let kind = body[0];
    let seq = u64::from_be_bytes(body[1..9].try_into().unwrap_or_default());
    let count = u32::from_be_bytes(body[9..13].try_into().unwrap_or_default()) as usize;
    let mut parts = Vec::with_capacity(count.min(64));
    let mut at = 13;
    for _ in 0..count {
        let size = body
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap_or_default()) as usize)
            .ok_or_else(|| bad("a part header past the frame"))?;
        at += 4;
        let part = body
            .get(at..at + size)
            .ok_or_else(|| bad("a part past the frame"))?;
        parts.push(part.to_vec());
        at += size;
    }
    if at != body.len() {
        return Err(bad("bytes after the frame's last part"));
    }
    Ok((kind, seq, parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_sizes_are_refused() {
        let frame = encode(MSG, 7, &[b"iopub".to_vec(), vec![], b"{}".to_vec()]);
        let (kind, seq, parts) = read_frame(&mut frame.as_slice()).await.unwrap();
        assert_eq!((kind, seq), (MSG, 7));
        assert_eq!(parts, vec![b"iopub".to_vec(), vec![], b"{}".to_vec()]);
        // Bytes 0..17 are length, kind, sequence and part count; the first part's size follows.
        let mut lying = frame.clone();
        lying[17..21].copy_from_slice(&1000u32.to_be_bytes());
        assert!(read_frame(&mut lying.as_slice()).await.is_err());
        let mut fewer_parts = frame.clone();
        fewer_parts[16] = 2;
        assert!(read_frame(&mut fewer_parts.as_slice()).await.is_err());
        assert!(read_frame(&mut [0u8, 0, 0, 1, 9].as_slice()).await.is_err());
    }
}
