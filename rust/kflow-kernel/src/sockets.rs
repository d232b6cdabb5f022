//! The five ZeroMQ sockets and the tasks that own them. Everything that sends goes through a
//! channel to the one task that owns the socket, so handlers never share a socket.

use bytes::Bytes;
use tokio::sync::mpsc;
use zeromq::{PubSocket, RepSocket, RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::connection::ConnectionInfo;
use crate::error::Result;
use crate::wire::{Incoming, Outgoing, Signer};

pub struct Bound {
    pub shell: RouterSocket,
    pub control: RouterSocket,
    pub stdin: RouterSocket,
    pub iopub: PubSocket,
    pub heartbeat: RepSocket,
}

pub async fn bind_all(info: &ConnectionInfo) -> Result<Bound> {
    let mut shell = RouterSocket::new();
    shell.bind(&info.endpoint(info.shell_port)).await?;
    let mut control = RouterSocket::new();
    control.bind(&info.endpoint(info.control_port)).await?;
    let mut stdin = RouterSocket::new();
    stdin.bind(&info.endpoint(info.stdin_port)).await?;
    let mut iopub = PubSocket::new();
    iopub.bind(&info.endpoint(info.iopub_port)).await?;
    let mut heartbeat = RepSocket::new();
    heartbeat.bind(&info.endpoint(info.hb_port)).await?;
    Ok(Bound { shell, control, stdin, iopub, heartbeat })
}

pub fn log(msg: &str) {
    // stderr is where jupyter_client/VS Code show a kernel's own log; stdout stays quiet.
    eprintln!("[kflow-kernel] {msg}");
}

/// Echo every heartbeat back unchanged (the spec says echo; a fixed reply breaks clients that
/// compare what they sent).
pub async fn heartbeat(mut sock: RepSocket) {
    loop {
        match sock.recv().await {
            Ok(msg) => {
                if let Err(e) = sock.send(msg).await {
                    log(&format!("heartbeat send failed: {e}"));
                }
            }
            Err(e) => {
                log(&format!("heartbeat receive failed: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

fn to_zmq(frames: Vec<Bytes>) -> Option<ZmqMessage> {
    ZmqMessage::try_from(frames).ok()
}

/// Owns the iopub socket: signs and publishes what handlers queue, in order.
pub async fn iopub_task(mut sock: PubSocket, signer: Signer, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(out) = rx.recv().await {
        let frames = out.encode(&signer);
        if let Some(m) = to_zmq(frames) {
            if let Err(e) = sock.send(m).await {
                log(&format!("iopub send failed: {e}"));
            }
        }
    }
}

/// A router socket split into a receiving stream of verified messages and a sending task.
/// Returns the channel of verified requests; replies go into `replies`.
pub fn serve_router(
    sock: RouterSocket,
    signer: Signer,
    name: &'static str,
    mut replies: mpsc::UnboundedReceiver<Outgoing>,
) -> mpsc::UnboundedReceiver<Incoming> {
    let (mut send, mut recv) = sock.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let send_signer = signer.clone();
    tokio::spawn(async move {
        while let Some(out) = replies.recv().await {
            if let Some(m) = to_zmq(out.encode(&send_signer)) {
                // A peer that went away is normal (a closed notebook): log and go on.
                if let Err(e) = send.send(m).await {
                    log(&format!("{name} send failed: {e}"));
                }
            }
        }
    });
    tokio::spawn(async move {
        loop {
            match recv.recv().await {
                Ok(m) => match Incoming::decode(m.into_vec(), &signer) {
                    Ok(msg) => {
                        if tx.send(msg).is_err() {
                            break;
                        }
                    }
                    // Bad signatures, bad JSON, oversized: drop and log; never crash.
                    Err(e) => log(&format!("{name}: dropped message: {e}")),
                },
                Err(e) => {
                    log(&format!("{name} receive failed: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    rx
}
