//! `kflow serve --stdio`: one long-lived kflow per editor window, speaking JSON-RPC 2.0 with
//! the Language Server Protocol's framing (`docs/serve-protocol.md`). A thin adapter like the
//! rest of the CLI: each method is a call into kflow-core. Requests run on threads of their own
//! so a slow listing never holds up a click; watches and log follows push notifications; the
//! editor can keep the session's secrets (`secrets/*` requests back to it).

mod methods;
mod secrets;
mod wire;

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kflow_core::{events, AuthError, Client, ClusterError, Context, Error, ErrorKind};
use serde_json::{json, Value};

use crate::Host;
use wire::Frame;

/// The protocol's version, bumped when a method changes incompatibly.
pub const PROTOCOL: u32 = 1;

/// A JSON-RPC error as sent: code, message, and kflow's parts in `data`.
#[derive(Debug)]
pub struct RpcError {
    code: i64,
    message: String,
    data: Value,
}

/// JSON-RPC's own codes for requests kflow cannot read.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
/// LSP's code for a request before `initialize`.
const NOT_INITIALIZED: i64 = -32002;

impl RpcError {
    fn protocol(code: i64, kind: &str, message: impl Into<String>) -> RpcError {
        let message = message.into();
        RpcError {
            code,
            data: json!({ "kind": kind, "problem": message, "fix": null, "eventId": null, "message": message }),
            message,
        }
    }

    pub fn method_not_found(method: &str) -> RpcError {
        RpcError::protocol(
            METHOD_NOT_FOUND,
            "method-not-found",
            format!("kflow serve has no method {method:?} (see docs/serve-protocol.md)"),
        )
    }

    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::protocol(INVALID_PARAMS, "invalid-params", message)
    }

    /// kflow's error with its event ID (logged here), problem and fix as separate fields.
    pub fn from_kflow(err: &Error, ctx: &Context) -> RpcError {
        let report = events::Report::record(err, &ctx.dirs.event_log());
        let (code, kind) = match (err, report.kind) {
            // No session and no usable kubeconfig either: the editor offers its sign-in form.
            (
                Error::Auth(AuthError::NotLoggedIn | AuthError::SessionExpired { .. })
                | Error::Cluster(ClusterError::Config { .. }),
                _,
            ) => (1009, "not-signed-in"),
            (_, ErrorKind::Validation) => (1001, "validation"),
            (_, ErrorKind::Template) => (1002, "template"),
            (_, ErrorKind::Packaging) => (1003, "packaging"),
            (_, ErrorKind::NotFound) => (1004, "not-found"),
            (_, ErrorKind::Conflict) => (1005, "conflict"),
            (_, ErrorKind::Timeout) => (1006, "timeout"),
            (_, ErrorKind::NotInstalled) => (1007, "not-installed"),
            (_, ErrorKind::Backend) => (1008, "backend"),
        };
        RpcError {
            code,
            data: json!({
                "kind": kind,
                "problem": report.problem,
                "fix": report.fix,
                "eventId": report.event_id.as_str(),
                "message": report.message,
            }),
            message: report.message,
        }
    }

    fn to_json(&self) -> Value {
        json!({ "code": self.code, "message": self.message, "data": self.data })
    }
}

/// What a request handler returns.
pub type Reply = Result<Value, RpcError>;

/// The connection's kflow: its context (the editor's settings over this process's) and client.
#[derive(Clone)]
pub struct Workspace {
    pub ctx: Context,
    pub client: Client,
    /// The settings the editor gave, kept to rebuild the client after sign-in.
    pub settings: serde_json::Map<String, Value>,
    pub folder: Option<std::path::PathBuf>,
}

/// A running watch or log follow, stopped by flag.
type Running = Mutex<HashMap<u64, Arc<AtomicBool>>>;

/// The server: the outbox to the writer thread, the editor's pending answers to our requests,
/// and the connection's state.
pub struct Server {
    outbox: Mutex<mpsc::Sender<Value>>,
    host: Host,
    workspace: RwLock<Option<Workspace>>,
    /// Our requests to the editor (`secrets/*`) waiting for their answers.
    asked: Mutex<HashMap<u64, mpsc::Sender<Result<Value, Value>>>>,
    next_id: AtomicU64,
    running: Running,
    /// Bumped at each sign-in and sign-out: a session monitor of an older one stops.
    session_generation: AtomicU64,
}

/// How long the editor has to answer a `secrets/*` request.
const EDITOR_ANSWER: Duration = Duration::from_secs(30);

impl Server {
    fn new(host: Host, outbox: mpsc::Sender<Value>) -> Server {
        Server {
            outbox: Mutex::new(outbox),
            host,
            workspace: RwLock::new(None),
            asked: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            running: Mutex::new(HashMap::new()),
            session_generation: AtomicU64::new(0),
        }
    }

    fn send(&self, message: Value) {
        let _ = self
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(message);
    }

    /// Sends a notification to the editor.
    pub fn notify(&self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Asks the editor and waits for its answer (from a request's own thread, never the
    /// reader's).
    pub fn ask(&self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let answer = rx.recv_timeout(EDITOR_ANSWER);
        self.asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        match answer {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error["message"]
                .as_str()
                .unwrap_or("the editor refused")
                .to_string()),
            Err(_) => Err(format!(
                "the editor did not answer {method} within {} s",
                EDITOR_ANSWER.as_secs()
            )),
        }
    }

    /// The connection's workspace, once `initialize` made it.
    pub fn workspace(&self) -> Result<Workspace, RpcError> {
        self.workspace
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                RpcError::protocol(
                    NOT_INITIALIZED,
                    "not-initialized",
                    "the first request must be initialize",
                )
            })
    }

    /// Makes (or remakes, after new settings or a sign-in) the workspace's client.
    pub fn set_workspace(
        &self,
        settings: serde_json::Map<String, Value>,
        folder: Option<std::path::PathBuf>,
    ) -> Result<Workspace, RpcError> {
        let mut base = Context::from_process();
        if let Some(folder) = &folder {
            base.cwd = folder.clone();
        }
        let ctx = base
            .clone()
            .with_editor_settings(&settings)
            .and_then(|ctx| ctx.settings().map(|_| ctx))
            .map_err(|e| RpcError::from_kflow(&e, &base))?;
        let workspace = Workspace {
            client: Client::new(ctx.clone(), self.host.launcher.clone()),
            ctx,
            settings,
            folder,
        };
        *self.workspace.write().unwrap_or_else(|p| p.into_inner()) = Some(workspace.clone());
        Ok(workspace)
    }

    /// Registers a watch or follow and returns its ID and stop flag.
    pub fn start_running(&self) -> (u64, Arc<AtomicBool>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::clone(&stop));
        (id, stop)
    }

    /// Stops a watch or follow; false when there is none with that ID.
    pub fn stop_running(&self, id: u64) -> bool {
        match self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
        {
            Some(stop) => {
                stop.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Forgets a watch or follow that ended by itself.
    pub fn finished_running(&self, id: u64) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    fn stop_all(&self) {
        for (_, stop) in self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            stop.store(true, Ordering::SeqCst);
        }
        self.session_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Reads one message and routes it: requests to a thread each, answers to the request
    /// waiting for them. Returns false on `exit`.
    fn route(self: &Arc<Self>, message: Value) -> bool {
        let id = message.get("id").cloned();
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .map(String::from);
        match (method, id) {
            (Some(method), Some(id)) => {
                let server = Arc::clone(self);
                let params = message.get("params").cloned().unwrap_or(Value::Null);
                std::thread::spawn(move || {
                    let reply = server.call(&method, params);
                    server.send(match reply {
                        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
                        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() }),
                    });
                });
                true
            }
            (Some(method), None) => method != "exit",
            (None, Some(id)) => {
                let waiting = id.as_u64().and_then(|id| {
                    self.asked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id)
                });
                if let Some(waiting) = waiting {
                    let answer = match message.get("error") {
                        Some(error) => Err(error.clone()),
                        None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
                    };
                    let _ = waiting.send(answer);
                }
                true
            }
            (None, None) => {
                let e = RpcError::protocol(
                    INVALID_REQUEST,
                    "invalid-request",
                    "a message with neither method nor id",
                );
                self.send(json!({ "jsonrpc": "2.0", "id": null, "error": e.to_json() }));
                true
            }
        }
    }

    fn call(self: &Arc<Self>, method: &str, params: Value) -> Reply {
        match method {
            "shutdown" => {
                self.stop_all();
                Ok(Value::Null)
            }
            _ => methods::handle(self, method, params),
        }
    }
}

/// Serves standard input and output until the input ends or `exit`; the exit code.
pub fn stdio(host: Host) -> i32 {
    let (outbox, outgoing) = mpsc::channel::<Value>();
    let writer = std::thread::spawn(move || {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        for message in outgoing {
            if wire::write_frame(&mut out, &message).is_err() {
                return;
            }
        }
    });
    let server = Arc::new(Server::new(host, outbox));
    let stdin = io::stdin();
    let mut input = BufReader::new(stdin.lock());
    let code = loop {
        match wire::read_frame(&mut input) {
            Ok(Some(Frame::Message(message))) => {
                if !server.route(message) {
                    break 0;
                }
            }
            Ok(Some(Frame::Unreadable(problem))) => {
                let e =
                    RpcError::protocol(PARSE_ERROR, "parse-error", format!("not JSON: {problem}"));
                server.send(json!({ "jsonrpc": "2.0", "id": null, "error": e.to_json() }));
            }
            Ok(None) => break 0,
            Err(e) => {
                eprintln!("kflow serve: the input is not the protocol's framing: {e}");
                break 2;
            }
        }
    };
    server.stop_all();
    // Closing the outbox lets the writer drain what is queued (the `shutdown` answer) and end.
    *server.outbox.lock().unwrap_or_else(|p| p.into_inner()) = mpsc::channel().0;
    drop(server);
    let _ = writer.join();
    code
}
