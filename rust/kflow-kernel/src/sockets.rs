//! The five ZeroMQ sockets and the tasks that own them. Everything that sends goes through a
//! channel to the one task that owns the socket, so handlers never share a socket.

use tokio::sync::mpsc;

use crate::connection::ConnectionInfo;
use crate::error::Result;
use crate::wire::{Incoming, Outgoing, Signer};
use crate::zmtp::{self, Limits, Publisher, Router};

pub struct Bound {
    pub shell: Router,
    pub control: Router,
    pub stdin: Router,
    pub iopub: Publisher,
}

/// Binds the five ports; the heartbeat serves itself from here on.
pub async fn bind_all(info: &ConnectionInfo) -> Result<Bound> {
    let limits = Limits::default();
    let ip = info.ip.as_str();
    let shell = Router::bind(ip, info.shell_port, limits, "shell").await?;
    let control = Router::bind(ip, info.control_port, limits, "control").await?;
    let stdin = Router::bind(ip, info.stdin_port, limits, "stdin").await?;
    let iopub = Publisher::bind(ip, info.iopub_port, limits, "iopub").await?;
    // Echo every heartbeat back unchanged (the spec says echo; a fixed reply breaks clients
    // that compare what they sent).
    zmtp::bind_echo(ip, info.hb_port, limits, "heartbeat").await?;
    Ok(Bound {
        shell,
        control,
        stdin,
        iopub,
    })
}

pub fn log(msg: &str) {
    // stderr is where jupyter_client/VS Code show a kernel's own log; stdout stays quiet.
    eprintln!("[kflow-kernel] {msg}");
}

/// Owns the iopub socket: signs and publishes what handlers queue, in order.
pub async fn iopub_task(
    sock: Publisher,
    signer: Signer,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(out) = rx.recv().await {
        sock.send(out.encode(&signer));
    }
}

/// A router socket split into a receiving stream of verified messages and a sending task.
/// Returns the channel of verified requests; replies go into `replies`.
pub fn serve_router(
    mut sock: Router,
    signer: Signer,
    name: &'static str,
    mut replies: mpsc::UnboundedReceiver<Outgoing>,
) -> mpsc::UnboundedReceiver<Incoming> {
    let (tx, rx) = mpsc::unbounded_channel();
    let send = sock.sender();
    let send_signer = signer.clone();
    tokio::spawn(async move {
        while let Some(out) = replies.recv().await {
            // A peer that went away is normal (a closed notebook): its replies are dropped.
            if !send.send(out.encode(&send_signer)) {
                log(&format!(
                    "{name}: reply to a peer that is gone or not reading dropped"
                ));
            }
        }
    });
    tokio::spawn(async move {
        while let Some(frames) = sock.recv().await {
            match Incoming::decode(frames, &signer) {
                Ok(msg) => {
                    if tx.send(msg).is_err() {
                        break;
                    }
                }
                // Bad signatures, replays, bad JSON: drop and log; never crash.
                Err(e) => log(&format!("{name}: dropped message: {e}")),
            }
        }
    });
    rx
}
