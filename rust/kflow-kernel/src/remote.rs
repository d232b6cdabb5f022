//! Session mode: cells run in one long-lived remote ipykernel (kflow-core's `Session`), and
//! this kernel passes the Jupyter protocol through to it. Requests go out with the frontend's
//! own headers, so the remote kernel's replies and iopub messages already name the right
//! parent; here they are only signed again with this kernel's key and routed back to the
//! frontend socket (and identity) that asked. kflow's own magics stay local.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kflow_core::{Client, Session, SessionEvent, SessionLink, SessionRequest};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::options::KernelOptions;
use crate::runner::CancelToken;
use crate::sockets::log;
use crate::wire::{Incoming, Outgoing};

/// The frontend's sockets, as the kernel loop's channels.
#[derive(Clone)]
pub struct Frontend {
    pub shell: mpsc::UnboundedSender<Outgoing>,
    pub control: mpsc::UnboundedSender<Outgoing>,
    pub stdin: mpsc::UnboundedSender<Outgoing>,
    pub iopub: mpsc::UnboundedSender<Outgoing>,
    /// This kernel's session id (iopub topics).
    pub session: String,
}

#[derive(Clone)]
struct Connected {
    session: Session,
    link: SessionLink,
    generation: u64,
}

/// A request the remote kernel has not answered yet.
struct Pending {
    identities: Vec<Bytes>,
    channel: &'static str,
    msg_type: String,
    parent: Value,
    answered: oneshot::Sender<Value>,
    /// This kernel said busy for it already (while the session started): the remote
    /// kernel's own busy would be a second one.
    busy_sent: bool,
}

/// A session start quicker than this shows nothing in the cell.
const PROGRESS_AFTER: Duration = Duration::from_secs(1);

/// What the cell shows while the session starts: the kernel loop's stderr stream.
pub type Progress = Box<dyn FnMut(&str) + Send>;

pub struct Remote {
    client: Client,
    name: String,
    /// The session kernelspec: on from the start, and a restart keeps the session (fresh
    /// remote state) for the restarted kernel to reattach to.
    always: bool,
    enabled: AtomicBool,
    idle: Mutex<Option<Duration>>,
    connected: tokio::sync::Mutex<Option<Connected>>,
    generation: Mutex<u64>,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    /// Why the last session ended, told when the next one starts.
    notice: Mutex<Option<String>>,
    frontend: OnceLock<Frontend>,
    /// Set once a shutdown has dealt with the session (deleted, or kept for a restart).
    shut_down: AtomicBool,
    /// Set while `ensure` starts a session, holding `connected` for all of it.
    starting: AtomicBool,
}

/// Clears `Remote::starting` however `ensure` ends.
struct Starting<'a>(&'a AtomicBool);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Remote {
    /// `key` is the connection file's key: a restarted kernel gets the same file, so the
    /// session name derived from it finds the same session again.
    pub fn new(client: Client, key: &str, always: bool) -> Arc<Remote> {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
        Arc::new(Remote {
            client,
            name: format!("kflow-session-{}", &digest[..10]),
            always,
            enabled: AtomicBool::new(always),
            idle: Mutex::new(None),
            connected: tokio::sync::Mutex::new(None),
            generation: Mutex::new(0),
            pending: Default::default(),
            notice: Mutex::new(None),
            frontend: OnceLock::new(),
            starting: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
        })
    }

    pub fn attach(&self, frontend: Frontend) {
        let _ = self.frontend.set(frontend);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    pub fn set_idle(&self, idle: Option<Duration>) {
        *self.idle.lock().unwrap_or_else(|p| p.into_inner()) = idle;
    }

    pub fn idle(&self) -> Option<Duration> {
        *self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn is_connected(&self) -> bool {
        self.connected.lock().await.is_some()
    }

    /// The running session, started (or found again) when there is none. `progress` hears
    /// what it waits for; `cancel` (an interrupt) gives up, deleting a half-started session.
    async fn ensure(
        self: &Arc<Self>,
        options: &KernelOptions,
        mut progress: Progress,
        cancel: &CancelToken,
    ) -> Result<Connected, String> {
        let mut slot = self.connected.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        if let Some(notice) = self.notice.lock().ok().and_then(|mut n| n.take()) {
            progress(&format!(
                "kflow: the last session {notice}; starting a fresh one (its state is gone)\n"
            ));
        }
        let request = session_request(options, self.idle())?;
        self.starting.store(true, Ordering::SeqCst);
        let _starting = Starting(&self.starting);
        let (client, name, cancel) = (self.client.clone(), self.name.clone(), cancel.clone());
        let started = tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            // A quick start (the local backend, a warm node) shows nothing; a slow one says
            // what it waits for, and then when it is ready.
            let mut told = false;
            let mut tell = |text: &str, told: &mut bool| {
                if *told || t0.elapsed() >= PROGRESS_AFTER {
                    *told = true;
                    progress(text);
                }
            };
            let session = match client.session(&name) {
                Ok(s) if s.ended().is_none() => s,
                found => {
                    if let Ok(old) = found {
                        // Over (failed, culled): make way for a fresh one under the name.
                        let _ = old.stop();
                    }
                    let mut request = request;
                    request.options.name = Some(name.clone());
                    client.start_session(request).map_err(|e| e.to_string())?
                }
            };
            let mut shown = String::new();
            let waited = session.wait_ready(
                &mut |what| {
                    if what != shown && t0.elapsed() >= PROGRESS_AFTER {
                        tell(&format!("kflow: session {name}: {what}\n"), &mut told);
                        shown = what.to_string();
                    }
                },
                &|| cancel.is_cancelled(),
            );
            if let Err(e) = waited {
                let _ = session.clone().stop();
                return Err(e.to_string());
            }
            let (link, events) = session.connect().map_err(|e| e.to_string())?;
            let ready = format!(
                "session {name} ready in {:.1} s (pod and kernel)",
                t0.elapsed().as_secs_f64()
            );
            log(&ready);
            if told {
                progress(&format!("kflow: {ready}\n"));
            }
            Ok::<_, String>((session, link, events))
        })
        .await
        .map_err(|e| format!("starting the session crashed: {e}"))??;
        let (session, link, events) = started;
        let generation = {
            let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
            *g += 1;
            *g
        };
        let connected = Connected {
            session,
            link,
            generation,
        };
        tokio::spawn(self.clone().route(events, generation));
        *slot = Some(connected.clone());
        Ok(connected)
    }

    /// Runs a forwarded request: starts the session if needed, syncs the project before an
    /// execute, sends it, and waits for the remote kernel's reply content (already passed on
    /// to the frontend). `Err` is a message for the cell when the session could not be used.
    pub async fn forward(
        self: &Arc<Self>,
        req: &Incoming,
        channel: &'static str,
        options: &KernelOptions,
        progress: Progress,
        cancel: &CancelToken,
        busy_sent: bool,
    ) -> Result<Value, String> {
        let conn = self.ensure(options, progress, cancel).await?;
        if req.header.msg_type == "execute_request" {
            match conn.session.sync(&conn.link).await {
                Ok(s) if !s.sent.is_empty() || !s.deleted.is_empty() => log(&format!(
                    "synced the project: {} sent, {} removed",
                    s.sent.len(),
                    s.deleted.len()
                )),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let (answered, answer) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                req.header.msg_id.clone(),
                Pending {
                    identities: req.identities.clone(),
                    channel,
                    msg_type: req.header.msg_type.clone(),
                    parent: req.as_parent(),
                    answered,
                    busy_sent,
                },
            );
        conn.link.send(channel, req.relay_parts());
        answer
            .await
            .map_err(|_| "the session ended before it answered".to_string())
    }

    /// A message with no reply (comm_msg, comm_close; input_reply on stdin) to the remote
    /// kernel, if a session runs. Returns false when there is none.
    pub async fn pass(&self, req: &Incoming, channel: &'static str) -> bool {
        match self.connected.lock().await.as_ref() {
            Some(c) => {
                c.link.send(channel, req.relay_parts());
                true
            }
            None => false,
        }
    }

    /// Interrupt: SIGINT to the remote kernel (the session lives on).
    pub async fn interrupt(&self) {
        // A session being started is stopped by the cell's cancel token instead; waiting for
        // `connected` would wait for the whole start.
        if self.starting.load(Ordering::SeqCst) {
            return;
        }
        let link = self.connected.lock().await.as_ref().map(|c| c.link.clone());
        if let Some(link) = link {
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                link.call(json!({"op": "interrupt"}), vec![]),
            )
            .await;
        }
    }

    /// On shutdown. A restart of the session kernel keeps the session with a fresh remote
    /// Python for the restarted process; anything else deletes the session, leaving nothing.
    pub async fn shutdown(&self, restart: bool) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let taken = self.connected.lock().await.take();
        if restart && self.always {
            if let Some(c) = taken {
                let _ = tokio::time::timeout(
                    Duration::from_secs(120),
                    c.link.call(json!({"op": "restart"}), vec![]),
                )
                .await;
                c.link.close();
            }
            return;
        }
        let session = match taken {
            Some(c) => {
                c.link.close();
                Some(c.session)
            }
            // Not connected in this process: a session of an earlier process may still run.
            None if self.always => self.find().await,
            None => None,
        };
        if let Some(session) = session {
            let name = session.name().to_string();
            match tokio::task::spawn_blocking(move || session.stop()).await {
                Ok(Ok(())) => log(&format!("session {name} deleted")),
                Ok(Err(e)) => log(&format!("deleting session {name}: {e}")),
                Err(e) => log(&format!("deleting session {name}: {e}")),
            }
        }
    }

    /// The session under this kernel's name, if one exists (looked up on a blocking thread:
    /// the cluster client blocks).
    async fn find(&self) -> Option<Session> {
        let (client, name) = (self.client.clone(), self.name.clone());
        tokio::task::spawn_blocking(move || client.session(&name).ok())
            .await
            .ok()
            .flatten()
    }

    /// `%kflow session stop`: ends the session now; the next cell starts a fresh one.
    pub async fn stop(&self) -> Result<bool, String> {
        let taken = self.connected.lock().await.take();
        let session = match taken {
            Some(c) => {
                c.link.close();
                Some(c.session)
            }
            None => self.find().await,
        };
        match session {
            Some(s) => tokio::task::spawn_blocking(move || s.stop())
                .await
                .map_err(|e| e.to_string())?
                .map(|_| true)
                .map_err(|e| e.to_string()),
            None => Ok(false),
        }
    }

    /// `%kflow session`: what runs now.
    pub async fn describe(&self) -> String {
        let state = match self.connected.lock().await.as_ref() {
            Some(c) => {
                let s = c.session.clone();
                let status = tokio::task::spawn_blocking(move || s.job().status())
                    .await
                    .ok()
                    .and_then(|s| s.ok());
                match status {
                    Some(s) => format!("running ({})", s.phase.as_str()),
                    None => "running".to_string(),
                }
            }
            None => "not started (the next cell starts it)".to_string(),
        };
        let idle = match self.idle() {
            Some(d) if d.is_zero() => "never".to_string(),
            Some(d) => format!("{} s", d.as_secs()),
            None => format!("{} s", kflow_core::DEFAULT_IDLE_TIMEOUT.as_secs()),
        };
        format!(
            "session mode: {}\nsession {}: {state}\nidle timeout: {idle}",
            if self.enabled() { "on" } else { "off" },
            self.name
        )
    }

    async fn route(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<SessionEvent>,
        generation: u64,
    ) {
        let Some(front) = self.frontend.get().cloned() else {
            return;
        };
        while let Some(event) = events.recv().await {
            match event {
                SessionEvent::Message { channel, parts } => {
                    self.relay(&front, &channel, parts);
                }
                SessionEvent::KernelDied { exit_code } => {
                    let code = exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "?".into());
                    self.fail_pending(
                        &front,
                        "DeadKernelError",
                        &format!("the session's Python exited (code {code}) while it ran this cell; its state is gone and a fresh one is starting"),
                    );
                }
                SessionEvent::KernelRestarted => log("the session's fresh Python is ready"),
                SessionEvent::Reconnected => log("the session's stream dropped; reconnected"),
                SessionEvent::Culled { idle_seconds } => {
                    self.ended(
                        generation,
                        format!(
                            "ended itself after {idle_seconds} s without a cell (idle culling)"
                        ),
                        true,
                    )
                    .await;
                }
                SessionEvent::Ended { reason } => {
                    self.fail_pending(
                        &front,
                        "SessionEnded",
                        &format!("the session ended: {reason}"),
                    );
                    self.ended(generation, format!("ended: {reason}"), false)
                        .await;
                    return;
                }
            }
        }
    }

    /// The session of `generation` is over; a culled one is deleted now, a failed one is
    /// kept (its pod tells why) until the next session replaces it.
    async fn ended(&self, generation: u64, notice: String, delete: bool) {
        log(&format!("session {} {notice}", self.name));
        let mut slot = self.connected.lock().await;
        if slot.as_ref().map(|c| c.generation) != Some(generation) {
            return;
        }
        let taken = slot.take();
        drop(slot);
        if let Ok(mut n) = self.notice.lock() {
            *n = Some(notice);
        }
        if let (Some(c), true) = (taken, delete) {
            c.link.close();
            let _ = tokio::task::spawn_blocking(move || c.session.stop()).await;
        }
    }

    fn relay(&self, front: &Frontend, channel: &str, parts: Vec<Vec<u8>>) {
        if parts.len() < 4 {
            return;
        }
        let parent_id = serde_json::from_slice::<Value>(&parts[1])
            .ok()
            .and_then(|p| p["msg_id"].as_str().map(str::to_string))
            .unwrap_or_default();
        let parts: Vec<Bytes> = parts.into_iter().map(Bytes::from).collect();
        match channel {
            "iopub" => {
                let msg_type = serde_json::from_slice::<Value>(&parts[0])
                    .ok()
                    .and_then(|h| h["msg_type"].as_str().map(str::to_string))
                    .unwrap_or_default();
                if msg_type == "status" && parts[3].windows(6).any(|w| w == b"\"busy\"") {
                    let repeated = self.pending.lock().ok().is_some_and(|mut p| {
                        p.get_mut(&parent_id)
                            .map(|p| std::mem::take(&mut p.busy_sent))
                            .unwrap_or(false)
                    });
                    if repeated {
                        return;
                    }
                }
                let topic = Bytes::from(format!("kernel.{}.{msg_type}", front.session));
                let _ = front.iopub.send(Outgoing::relayed(vec![topic], parts));
            }
            "stdin" => {
                let ids = self
                    .pending
                    .lock()
                    .ok()
                    .and_then(|p| p.get(&parent_id).map(|p| p.identities.clone()));
                if let Some(ids) = ids {
                    let _ = front.stdin.send(Outgoing::relayed(ids, parts));
                }
            }
            _ => {
                let pending = self
                    .pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&parent_id));
                let Some(p) = pending else {
                    return;
                };
                let content = serde_json::from_slice(&parts[3]).unwrap_or(Value::Null);
                let to = if p.channel == "control" {
                    &front.control
                } else {
                    &front.shell
                };
                let _ = to.send(Outgoing::relayed(p.identities, parts));
                let _ = p.answered.send(content);
            }
        }
    }

    /// Ends every request still waiting on the remote kernel with an error reply (and, for an
    /// execute, the error output and the idle status the remote kernel will never send).
    fn fail_pending(&self, front: &Frontend, ename: &str, evalue: &str) {
        let drained: Vec<Pending> = self
            .pending
            .lock()
            .map(|mut p| p.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        for p in drained {
            let traceback = vec![format!("\x1b[0;31m{ename}\x1b[0m: {evalue}")];
            let error = json!({"status": "error", "ename": ename, "evalue": evalue, "traceback": traceback, "execution_count": Value::Null});
            let publish = |msg_type: &str, content: Value| {
                let topic = Bytes::from(format!("kernel.{}.{msg_type}", front.session));
                let _ = front.iopub.send(Outgoing::new(
                    vec![topic],
                    msg_type,
                    &front.session,
                    p.parent.clone(),
                    content,
                ));
            };
            if p.msg_type == "execute_request" {
                publish(
                    "error",
                    json!({"ename": ename, "evalue": evalue, "traceback": traceback}),
                );
            }
            let reply_type = format!(
                "{}_reply",
                p.msg_type.strip_suffix("_request").unwrap_or(&p.msg_type)
            );
            let to = if p.channel == "control" {
                &front.control
            } else {
                &front.shell
            };
            let _ = to.send(Outgoing::new(
                p.identities.clone(),
                &reply_type,
                &front.session,
                p.parent.clone(),
                error.clone(),
            ));
            publish("status", json!({"execution_state": "idle"}));
            let _ = p.answered.send(error);
        }
    }
}

/// The session's options: the kernel's `%kflow` options (image, gpu, memory, pip, env, …).
fn session_request(o: &KernelOptions, idle: Option<Duration>) -> Result<SessionRequest, String> {
    let project = o.project.clone().unwrap_or_else(|| ".".into());
    // The script is the agent's; kflow-core replaces it. Any file name does here.
    let mut options = crate::core_runner::to_run_options(o, project.join("session"), project, &[])?;
    options.script = None;
    options.name = None;
    Ok(SessionRequest {
        options,
        idle_timeout: idle,
    })
}
