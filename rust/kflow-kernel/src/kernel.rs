//! The kernel loop: dispatches verified requests from shell and control, wraps each in
//! busy/idle on iopub, and runs cells on a blocking thread so control (interrupt, shutdown)
//! stays responsive while a job runs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

use crate::assist::{self, Completeness};
use crate::cells::Executor;
use crate::connection::ConnectionInfo;
use crate::error::Result;
use crate::magics::{self, SessionCommand};
use crate::messages::*;
use crate::output::{self, Publisher};
use crate::remote::{Frontend, Remote};
use crate::runner::{CancelToken, CellOutcome};
use crate::sockets::{self, log};
use crate::wire::{Incoming, Outgoing, Signer};

/// History session number reported to clients (history lives in memory, one session).
const HISTORY_SESSION: i64 = 1;

#[derive(Debug, Clone)]
pub struct KernelConfig {
    /// Reported in language_info.version.
    pub python_version: String,
    /// The default project folder: the notebook's folder, which is the kernel's cwd.
    pub project_root: PathBuf,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            python_version: std::env::var("KFLOW_PYTHON_VERSION").unwrap_or_else(|_| "3".into()),
            project_root: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }
}

struct HistoryEntry {
    line: u64,
    input: String,
}

/// State shared by the shell loop and the control task.
struct Shared {
    session: String,
    iopub: mpsc::UnboundedSender<Outgoing>,
    config: KernelConfig,
    /// The running cell's interrupt token, if a cell is running.
    running: Mutex<Option<CancelToken>>,
}

impl Shared {
    fn publisher(&self, parent: Value) -> Publisher {
        Publisher {
            iopub: self.iopub.clone(),
            session: self.session.clone(),
            parent,
        }
    }

    fn status(&self, parent: &Value, state: &'static str) {
        self.publisher(parent.clone()).publish(
            "status",
            Status {
                execution_state: state,
            },
        );
    }

    fn reply(
        &self,
        to: &mpsc::UnboundedSender<Outgoing>,
        req: &Incoming,
        msg_type: &str,
        content: impl Serialize,
    ) {
        let _ = to.send(Outgoing::new(
            req.identities.clone(),
            msg_type,
            &self.session,
            req.as_parent(),
            content,
        ));
    }

    /// Answers a shutdown request (on shell or control alike); the caller then stops.
    fn shutdown_reply(&self, to: &mpsc::UnboundedSender<Outgoing>, req: &Incoming) {
        let restart = serde_json::from_value::<ShutdownRequest>(req.content.clone())
            .map(|r| r.restart)
            .unwrap_or(false);
        self.reply(
            to,
            req,
            "shutdown_reply",
            ShutdownReply {
                status: "ok",
                restart,
            },
        );
    }

    fn kernel_info(&self, to: &mpsc::UnboundedSender<Outgoing>, req: &Incoming) {
        self.reply(
            to,
            req,
            "kernel_info_reply",
            KernelInfoReply::new(&self.config.python_version),
        );
    }
}

/// `foo_request` -> `foo_reply`.
fn reply_type(msg_type: &str) -> String {
    format!(
        "{}_reply",
        msg_type.strip_suffix("_request").unwrap_or(msg_type)
    )
}

fn bad_request(e: serde_json::Error) -> ErrorContent {
    ErrorContent {
        status: "error",
        execution_count: 0,
        ename: "BadRequest".into(),
        evalue: format!("malformed request content: {e}"),
        traceback: vec![],
    }
}

/// Serve until a shutdown_request. Binds the five sockets from the connection file.
pub async fn serve(
    info: ConnectionInfo,
    executor: Arc<Executor>,
    config: KernelConfig,
    remote: Option<Arc<Remote>>,
) -> Result<()> {
    let signer = Signer::new(&info.key);
    let bound = sockets::bind_all(&info).await?;
    let session = uuid::Uuid::new_v4().to_string();

    let (iopub_tx, iopub_rx) = mpsc::unbounded_channel();
    tokio::spawn(sockets::iopub_task(bound.iopub, signer.clone(), iopub_rx));

    let (shell_tx, shell_replies) = mpsc::unbounded_channel();
    let mut shell_rx = sockets::serve_router(bound.shell, signer.clone(), "shell", shell_replies);
    let (control_tx, control_replies) = mpsc::unbounded_channel();
    let mut control_rx =
        sockets::serve_router(bound.control, signer.clone(), "control", control_replies);
    // Jobs cannot read from the notebook; a session's remote kernel can (input()): its
    // input_request goes out here and the input_reply goes back to it.
    let (stdin_tx, stdin_replies) = mpsc::unbounded_channel::<Outgoing>();
    let mut stdin_rx = sockets::serve_router(bound.stdin, signer.clone(), "stdin", stdin_replies);
    if let Some(r) = &remote {
        r.attach(Frontend {
            shell: shell_tx.clone(),
            control: control_tx.clone(),
            stdin: stdin_tx,
            iopub: iopub_tx.clone(),
            session: session.clone(),
        });
    }
    let stdin_remote = remote.clone();
    tokio::spawn(async move {
        while let Some(m) = stdin_rx.recv().await {
            let passed = match &stdin_remote {
                Some(r) => r.pass(&m, "stdin").await,
                None => false,
            };
            if !passed {
                log(&format!("stdin: ignored {}", m.header.msg_type));
            }
        }
    });

    let shared = Arc::new(Shared {
        session,
        iopub: iopub_tx,
        config,
        running: Mutex::new(None),
    });
    shared.status(&Value::Object(Map::new()), "starting");

    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let (idle_tx, idle_rx) = watch::channel(true);

    // Control: its own task, so interrupt and shutdown are handled while a cell runs.
    let ctl_shared = shared.clone();
    let ctl_shutdown = shutdown_tx.clone();
    let ctl_remote = remote.clone();
    tokio::spawn(async move {
        while let Some(req) = control_rx.recv().await {
            let parent = req.as_parent();
            ctl_shared.status(&parent, "busy");
            if let Some(r) = &ctl_remote {
                match req.header.msg_type.as_str() {
                    "interrupt_request" => r.interrupt().await,
                    "shutdown_request" => {
                        // A session still starting gives up first (deleting what it made),
                        // so the shutdown does not wait on its pod.
                        if let Some(t) = ctl_shared.running.lock().ok().and_then(|r| r.clone()) {
                            t.cancel();
                        }
                        let restart = req.content["restart"].as_bool().unwrap_or(false);
                        r.shutdown(restart).await;
                    }
                    _ => {}
                }
            }
            let stop = control(&ctl_shared, &control_tx, &req);
            ctl_shared.status(&parent, "idle");
            if stop {
                // A running cell's job is cancelled: a kernel going away takes its cell with it
                // (as ipykernel's would), instead of leaving an orphaned job.
                if let Some(t) = ctl_shared.running.lock().ok().and_then(|r| r.clone()) {
                    t.cancel();
                }
                wait_idle(idle_rx.clone(), Duration::from_secs(5)).await;
                let _ = ctl_shutdown.send(true);
                break;
            }
        }
    });

    // Like ipykernel's parent poller: when the process that started us (jupyter server, VS
    // Code) dies without a shutdown_request, we are re-parented; end then instead of lingering.
    if std::env::var_os("JPY_PARENT_PID").is_some() {
        let parent = std::os::unix::process::parent_id();
        let orphaned = shutdown_tx.clone();
        let poller_shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if std::os::unix::process::parent_id() != parent {
                    log("parent process ended; shutting down");
                    if let Some(t) = poller_shared.running.lock().ok().and_then(|r| r.clone()) {
                        t.cancel();
                    }
                    let _ = orphaned.send(true);
                    break;
                }
            }
        });
    }

    let mut shell = ShellState {
        shared: shared.clone(),
        executor,
        remote,
        count: 0,
        history: Vec::new(),
        idle: idle_tx,
        failed_stop: false,
    };
    // Requests taken off the socket while aborting after a failed cell, still to be handled.
    let mut pending: std::collections::VecDeque<Incoming> = Default::default();
    loop {
        let req = if let Some(r) = pending.pop_front() {
            r
        } else {
            tokio::select! {
                req = shell_rx.recv() => match req { Some(r) => r, None => break },
                _ = shutdown_rx.changed() => break,
            }
        };
        if let Some(remote) = shell.forwarding(&req).await {
            // The remote kernel sends this request's busy/idle itself.
            shell.forward(&remote, &shell_tx, &req).await;
        } else {
            let parent = req.as_parent();
            shared.status(&parent, "busy");
            let stop = shell.handle(&shell_tx, &req).await;
            shared.status(&parent, "idle");
            if stop {
                break;
            }
        }
        if std::mem::take(&mut shell.failed_stop) {
            // As ipykernel does: a failed cell (stop_on_error) aborts the executes already
            // queued behind it, so "Run All" stops at the first failing job instead of
            // submitting every following cell. Other requests are still answered.
            while let Ok(next) = shell_rx.try_recv() {
                if next.header.msg_type == "execute_request" {
                    let parent = next.as_parent();
                    shared.status(&parent, "busy");
                    shared.reply(
                        &shell_tx,
                        &next,
                        "execute_reply",
                        AbortedReply {
                            status: "aborted",
                            execution_count: shell.count,
                        },
                    );
                    shared.status(&parent, "idle");
                } else {
                    pending.push_back(next);
                }
            }
        }
    }
    // However the kernel ends (a shutdown on shell, an orphaned kernel), its session goes with
    // it; a control shutdown has already dealt with it (a restart keeps it).
    if let Some(r) = &shell.remote {
        r.shutdown(false).await;
    }
    // Let the sender tasks write the shutdown reply and the last idle before the process ends.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

async fn wait_idle(mut idle: watch::Receiver<bool>, limit: Duration) {
    let _ = tokio::time::timeout(limit, idle.wait_for(|i| *i)).await;
}

/// Returns true on shutdown.
fn control(shared: &Shared, tx: &mpsc::UnboundedSender<Outgoing>, req: &Incoming) -> bool {
    match req.header.msg_type.as_str() {
        "kernel_info_request" => shared.kernel_info(tx, req),
        "interrupt_request" => {
            if let Some(t) = shared.running.lock().ok().and_then(|r| r.clone()) {
                t.cancel();
            }
            shared.reply(tx, req, "interrupt_reply", StatusReply { status: "ok" });
        }
        "shutdown_request" => {
            shared.shutdown_reply(tx, req);
            return true;
        }
        other if other.ends_with("_request") => {
            // debug_request, usage_request, …: say "not supported" rather than leave a client waiting.
            shared.reply(
                tx,
                req,
                &reply_type(other),
                ErrorContent {
                    status: "error",
                    execution_count: 0,
                    ename: "NotSupported".into(),
                    evalue: format!("{other} is not supported by kflow"),
                    traceback: vec![],
                },
            );
        }
        other => log(&format!("control: ignored {other}")),
    }
    false
}

struct ShellState {
    shared: Arc<Shared>,
    executor: Arc<Executor>,
    /// Session mode's remote kernel (when this kernel can run one).
    remote: Option<Arc<Remote>>,
    count: u64,
    history: Vec<HistoryEntry>,
    idle: watch::Sender<bool>,
    /// Set when a cell failed with stop_on_error: the loop then aborts queued executes.
    failed_stop: bool,
}

impl ShellState {
    /// Returns true on shutdown (old clients send shutdown_request on shell).
    async fn handle(&mut self, tx: &mpsc::UnboundedSender<Outgoing>, req: &Incoming) -> bool {
        let shared = self.shared.clone();
        let msg_type = req.header.msg_type.as_str();
        macro_rules! parse {
            ($t:ty) => {
                match serde_json::from_value::<$t>(req.content.clone()) {
                    Ok(v) => v,
                    Err(e) => {
                        shared.reply(tx, req, &reply_type(msg_type), bad_request(e));
                        return false;
                    }
                }
            };
        }
        match msg_type {
            "kernel_info_request" => shared.kernel_info(tx, req),
            "execute_request" => {
                let r = parse!(ExecuteRequest);
                self.execute(tx, req, r).await;
            }
            "complete_request" => {
                let r = parse!(CompleteRequest);
                let ex = self.executor.clone();
                let c =
                    assist::complete(&r.code, r.cursor_pos, &ex.project_root(), &ex.job_names());
                shared.reply(
                    tx,
                    req,
                    "complete_reply",
                    CompleteReply {
                        status: "ok",
                        matches: c.matches,
                        cursor_start: c.cursor_start,
                        cursor_end: c.cursor_end,
                        metadata: Map::new(),
                    },
                );
            }
            "inspect_request" => {
                let r = parse!(InspectRequest);
                let found = assist::inspect(&r.code, r.cursor_pos);
                shared.reply(
                    tx,
                    req,
                    "inspect_reply",
                    InspectReply {
                        status: "ok",
                        found: found.is_some(),
                        data: found.map(|t| text_bundle(&t)).unwrap_or_default(),
                        metadata: Map::new(),
                    },
                );
            }
            "is_complete_request" => {
                let r = parse!(IsCompleteRequest);
                let reply = match assist::is_complete(&r.code) {
                    Completeness::Complete => IsCompleteReply {
                        status: "complete",
                        indent: None,
                    },
                    Completeness::Incomplete(i) => IsCompleteReply {
                        status: "incomplete",
                        indent: Some(i),
                    },
                    Completeness::Invalid => IsCompleteReply {
                        status: "invalid",
                        indent: None,
                    },
                };
                shared.reply(tx, req, "is_complete_reply", reply);
            }
            "history_request" => {
                let r = parse!(HistoryRequest);
                shared.reply(
                    tx,
                    req,
                    "history_reply",
                    HistoryReply {
                        status: "ok",
                        history: self.history(&r),
                    },
                );
            }
            "comm_info_request" => {
                let _ = parse!(CommInfoRequest);
                shared.reply(
                    tx,
                    req,
                    "comm_info_reply",
                    CommInfoReply {
                        status: "ok",
                        comms: Map::new(),
                    },
                );
            }
            "comm_open" => {
                // No comm targets exist here (no widgets in a job): close it so the frontend
                // does not wait on it, as ipykernel does for unknown targets.
                if let Some(id) = req.content.get("comm_id").cloned() {
                    shared
                        .publisher(req.as_parent())
                        .publish("comm_close", serde_json::json!({"comm_id": id, "data": {}}));
                }
            }
            "shutdown_request" => {
                shared.shutdown_reply(tx, req);
                return true;
            }
            other => log(&format!("shell: ignored {other}")),
        }
        false
    }

    async fn execute(
        &mut self,
        tx: &mpsc::UnboundedSender<Outgoing>,
        req: &Incoming,
        r: ExecuteRequest,
    ) {
        let shared = self.shared.clone();
        let publisher = shared.publisher(req.as_parent());
        // Empty cells and silent executes are not counted (IPython's rules).
        let store = r.store_history && !r.silent && !r.code.trim().is_empty();
        if store {
            self.count += 1;
        }
        let count = self.count;
        if !r.silent {
            publisher.publish(
                "execute_input",
                ExecuteInput {
                    code: r.code.clone(),
                    execution_count: count,
                },
            );
        }
        let outcome = if let Some(commands) = magics::parse_session_magic(&r.code) {
            self.history.push(HistoryEntry {
                line: count,
                input: r.code.clone(),
            });
            match commands {
                Ok(commands) => self.session_magic(&publisher, commands).await,
                Err(e) => CellOutcome::error("UsageError", e),
            }
        } else if self.session_on() && !magics::is_kflow_cell(&r.code) {
            // Only silent probes get here in session mode without a session (see forwarding).
            CellOutcome::Ok
        } else if self.session_on()
            && matches!(
                magics::parse_cell(&r.code),
                Ok(magics::CellPlan::Lines { code: Some(_), .. })
            )
        {
            CellOutcome::error(
                "UsageError",
                "in session mode kflow's line magics go in a cell of their own (the code runs in the session); use %%kflow_job to run a cell as a training job",
            )
        } else if !r.store_history || r.silent || r.code.trim().is_empty() {
            // Editor probes (VS Code's store_history=false startup code) are answered here and
            // never become jobs.
            CellOutcome::Ok
        } else {
            self.history.push(HistoryEntry {
                line: count,
                input: r.code.clone(),
            });
            self.run_cell(&publisher, count, r.code.clone()).await
        };
        match outcome {
            CellOutcome::Ok => shared.reply(
                tx,
                req,
                "execute_reply",
                ExecuteReplyOk {
                    status: "ok",
                    execution_count: count,
                    payload: vec![],
                    user_expressions: Map::new(),
                },
            ),
            CellOutcome::Error {
                ename,
                evalue,
                traceback,
            } => {
                self.failed_stop = r.stop_on_error;
                if !r.silent {
                    publisher.publish(
                        "error",
                        ErrorOutput {
                            ename: ename.clone(),
                            evalue: evalue.clone(),
                            traceback: traceback.clone(),
                        },
                    );
                }
                shared.reply(
                    tx,
                    req,
                    "execute_reply",
                    ErrorContent {
                        status: "error",
                        execution_count: count,
                        ename,
                        evalue,
                        traceback,
                    },
                );
            }
        }
    }

    fn session_on(&self) -> bool {
        self.remote.as_ref().is_some_and(|r| r.enabled())
    }

    /// In session mode, the remote kernel answers everything but kernel_info, shutdown and
    /// kflow's own magics. Requests that only matter to a running session (history,
    /// is_complete, comms, silent probes) do not start one.
    async fn forwarding(&self, req: &Incoming) -> Option<Arc<Remote>> {
        let remote = self.remote.as_ref().filter(|r| r.enabled())?.clone();
        let connected = remote.is_connected().await;
        let code = req.content["code"].as_str().unwrap_or("");
        let local_magic = magics::is_kflow_cell(code);
        let forward = match req.header.msg_type.as_str() {
            "execute_request" => {
                let silent = req.content["silent"].as_bool().unwrap_or(false);
                let store = req.content["store_history"].as_bool().unwrap_or(true);
                if local_magic {
                    false
                } else if silent || !store || code.trim().is_empty() {
                    connected
                } else {
                    true
                }
            }
            "complete_request" | "inspect_request" => !local_magic,
            "is_complete_request" => connected && !local_magic,
            "history_request" | "comm_info_request" | "comm_open" | "comm_msg" | "comm_close" => {
                connected
            }
            _ => false,
        };
        forward.then_some(remote)
    }

    /// One request through the session's remote kernel (started first when needed).
    async fn forward(
        &mut self,
        remote: &Arc<Remote>,
        tx: &mpsc::UnboundedSender<Outgoing>,
        req: &Incoming,
    ) {
        let msg_type = req.header.msg_type.clone();
        if !msg_type.ends_with("_request") {
            remote.pass(req, "shell").await;
            return;
        }
        let shared = self.shared.clone();
        let parent = req.as_parent();
        let publisher = shared.publisher(parent.clone());
        let starting = !remote.is_connected().await;
        if starting {
            // The remote kernel's own busy comes once it runs; until then this kernel is busy.
            shared.status(&parent, "busy");
        }
        let token = CancelToken::new();
        if let Ok(mut r) = shared.running.lock() {
            *r = Some(token.clone());
        }
        let _ = self.idle.send(false);
        let progress_to = publisher.clone();
        let progress: crate::remote::Progress = Box::new(move |text: &str| {
            progress_to.publish(
                "stream",
                serde_json::json!({"name": "stderr", "text": text}),
            );
        });
        let options = self.executor.options();
        let result = remote
            .forward(req, "shell", &options, progress, &token, starting)
            .await;
        if let Ok(mut r) = shared.running.lock() {
            *r = None;
        }
        let _ = self.idle.send(true);
        let stop_on_error = req.content["stop_on_error"].as_bool().unwrap_or(true);
        match result {
            Ok(content) => {
                if msg_type == "execute_request" {
                    if let Some(n) = content["execution_count"].as_u64() {
                        self.count = n;
                    }
                    self.failed_stop = stop_on_error && content["status"] == "error";
                }
            }
            Err(message) => {
                if !starting {
                    shared.status(&parent, "busy");
                }
                let traceback = vec![format!("\x1b[0;31mSessionError\x1b[0m: {message}")];
                if msg_type == "execute_request" {
                    publisher.publish(
                        "error",
                        ErrorOutput {
                            ename: "SessionError".into(),
                            evalue: message.clone(),
                            traceback: traceback.clone(),
                        },
                    );
                    self.failed_stop = stop_on_error;
                }
                shared.reply(
                    tx,
                    req,
                    &reply_type(&msg_type),
                    ErrorContent {
                        status: "error",
                        execution_count: self.count,
                        ename: "SessionError".into(),
                        evalue: message,
                        traceback,
                    },
                );
                shared.status(&parent, "idle");
            }
        }
    }

    /// `%kflow session …`.
    async fn session_magic(
        &mut self,
        publisher: &Publisher,
        commands: Vec<SessionCommand>,
    ) -> CellOutcome {
        let Some(remote) = self.remote.clone() else {
            return CellOutcome::error(
                "UsageError",
                "session mode is not available in this kernel (it runs cells through a test runner)",
            );
        };
        let mut said: Vec<String> = Vec::new();
        for command in commands {
            match command {
                SessionCommand::Show => {}
                SessionCommand::On => {
                    remote.set_enabled(true);
                    said.push("session mode on: the following cells run in one long-lived Python, started by the next cell".into());
                }
                SessionCommand::Off => {
                    if let Err(e) = remote.stop().await {
                        return CellOutcome::error("SessionError", e);
                    }
                    remote.set_enabled(false);
                    said.push("session mode off: each cell is a training job again".into());
                }
                SessionCommand::Stop => match remote.stop().await {
                    Ok(true) => said.push(format!(
                        "session {} deleted; the next cell starts a fresh one",
                        remote.name()
                    )),
                    Ok(false) => said.push("no session runs".into()),
                    Err(e) => return CellOutcome::error("SessionError", e),
                },
                SessionCommand::Idle(d) => {
                    remote.set_idle(Some(d.unwrap_or_default()));
                    said.push("the idle timeout applies from the next session start".into());
                }
                SessionCommand::SetOption(k, v) => {
                    if let Err(e) = self.executor.set_option(&k, &v) {
                        return CellOutcome::error("UsageError", e);
                    }
                    said.push(format!("{k}={v} (applies from the next session start)"));
                }
            }
        }
        said.push(remote.describe().await);
        publisher.publish(
            "stream",
            serde_json::json!({"name": "stdout", "text": said.join("\n") + "\n"}),
        );
        CellOutcome::Ok
    }

    async fn run_cell(&mut self, publisher: &Publisher, count: u64, code: String) -> CellOutcome {
        let token = CancelToken::new();
        if let Ok(mut r) = self.shared.running.lock() {
            *r = Some(token.clone());
        }
        let _ = self.idle.send(false);
        let (mut sink, flushed) = output::start(publisher.clone(), count);
        let ex = self.executor.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let o = ex.execute(&code, &mut sink, &token);
            drop(sink);
            o
        })
        .await
        // A panicking runner is a kflow bug; the kernel reports it and lives on.
        .unwrap_or_else(|e| {
            CellOutcome::error("KernelError", format!("the cell's runner crashed: {e}"))
        });
        let _ = flushed.await;
        if let Ok(mut r) = self.shared.running.lock() {
            *r = None;
        }
        let _ = self.idle.send(true);
        outcome
    }

    fn history(&self, r: &HistoryRequest) -> Vec<Value> {
        let current = |s: Option<i64>| s.is_none_or(|s| s <= 0 || s == HISTORY_SESSION);
        let entry = |h: &HistoryEntry| {
            if r.output {
                serde_json::json!([HISTORY_SESSION, h.line, [h.input, Value::Null]])
            } else {
                serde_json::json!([HISTORY_SESSION, h.line, h.input])
            }
        };
        let n = r.n.unwrap_or(10).max(0) as usize;
        let picked: Vec<&HistoryEntry> = match r.hist_access_type.as_str() {
            "tail" => self.history.iter().rev().take(n).rev().collect(),
            "range" if current(r.session) => {
                let start = r.start.unwrap_or(0);
                let stop = r.stop.unwrap_or(i64::MAX);
                self.history
                    .iter()
                    .filter(|h| (h.line as i64) >= start && (h.line as i64) < stop)
                    .collect()
            }
            "search" => {
                let pattern = r.pattern.clone().unwrap_or_else(|| "*".into());
                let mut hits: Vec<&HistoryEntry> = self
                    .history
                    .iter()
                    .filter(|h| glob(&pattern, &h.input))
                    .collect();
                if r.unique {
                    let mut seen = std::collections::HashSet::new();
                    let mut kept: Vec<&HistoryEntry> = hits
                        .into_iter()
                        .rev()
                        .filter(|h| seen.insert(h.input.clone()))
                        .collect();
                    kept.reverse();
                    hits = kept;
                }
                if r.n.is_some() {
                    let skip = hits.len().saturating_sub(n);
                    hits.drain(..skip);
                }
                hits
            }
            _ => vec![],
        };
        picked.into_iter().map(entry).collect()
    }
}

/// Glob match (`*`, `?`) over the whole text, like IPython's SQLite GLOB search.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_sqlite() {
        assert!(glob("*kflow*", "%kflow gpu=1"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abcd"));
        assert!(glob("*", ""));
        assert!(!glob("x*", "yx"));
    }

    #[test]
    fn reply_names() {
        assert_eq!(reply_type("debug_request"), "debug_reply");
    }
}
