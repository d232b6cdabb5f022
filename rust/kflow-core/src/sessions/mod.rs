//! Stateful sessions: one long-lived Python (a real ipykernel) in a session pod, or in a
//! process group on this machine, that a Jupyter kernel proxies to cell after cell.
//!
//! A session is a one-replica job made through the same RunOptions → RunSpec → package →
//! backend path as every run, so it gets the image, resources, pip/apt, env, namespace and
//! code packaging of a job; its script is the session agent (`agent.py`), which starts the
//! ipykernel and serves one stream. On a cluster that stream is a port-forward through the
//! API server (the user's own credentials and RBAC, nothing deployed, nothing exposed: the
//! agent listens on the pod's loopback); on this machine it is a Unix socket only its owner
//! can open. Exec would also work, but an exec stream ends its process when it drops; the
//! agent has to outlive the stream so a dropped connection loses nothing.

mod link;
mod sync;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::cluster::files::replica_pod;
use crate::error::{Error, ResourceError, Result, SystemError};
use crate::jobs::{Client, Job};
use crate::spec::{BackendKind, RunOptions};
use crate::status::Phase;

pub use link::{SessionEvent, SessionLink};
pub use sync::Synced;

/// The agent's source, written beside the project for packaging and removed right after.
const AGENT: &str = include_str!("agent.py");
/// How long a session may sit without a cell before it ends itself (GPUs cost money).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// The label every session job carries, so `kflow jobs`/the namespace can tell them apart.
const READY_LINE: &str = "kflow-session-ready ";
const FAILED_LINE: &str = "kflow-session-failed ";
/// Waiting reasons that no amount of waiting fixes: the cell ends with them.
const BLOCKING_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "Unschedulable",
    "CreateContainerConfigError",
];

/// What a session runs with: the run options of a job (image, gpu, cpu, memory, pip, apt,
/// env, namespace, backend, project folder; the script is kflow's), and its idle timeout.
#[derive(Debug, Clone, Default)]
pub struct SessionRequest {
    /// The job options; `script`, `args` and `workers` are kflow's own and are ignored.
    pub options: RunOptions,
    /// Ends the session after this long without a cell (`None`: [`DEFAULT_IDLE_TIMEOUT`];
    /// zero: never).
    pub idle_timeout: Option<Duration>,
}

/// A session: its job, and where its agent listens once it is ready.
#[derive(Debug, Clone)]
pub struct Session {
    job: Job,
    client: Client,
    address: Arc<Mutex<Option<String>>>,
    synced: Arc<Mutex<sync::SyncState>>,
}

impl Client {
    /// Starts a session: creates its job (nothing waits for the pod here; see
    /// [`Session::wait_ready`]). Bad options are refused before anything is created.
    pub fn start_session(&self, request: SessionRequest) -> Result<Session> {
        let mut options = request.options;
        let project = self.context().absolute(
            options
                .project_root
                .as_deref()
                .unwrap_or_else(|| Path::new(".")),
        );
        if !project.is_dir() {
            return Err(Error::invalid(
                "project",
                project.display().to_string(),
                "no such folder",
                "start the session from the notebook's folder, or pass an existing project folder",
            ));
        }
        // Uniquely named and hidden, so it never meets a user's file; removed once packaged.
        let id = crate::spec::random_id(6);
        let agent = project.join(format!(".kflow-session-{id}.py"));
        std::fs::write(&agent, AGENT).map_err(Error::io("writing", &agent))?;
        let removed = RemoveOnDrop(agent.clone());
        options.script = Some(agent);
        options.project_root = Some(project);
        options.workers = Some(1);
        options.kind = Some(crate::JobKind::PyTorchJob);
        let idle = request.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT);
        let mut spec = self.resolve(options)?;
        let listen = match spec.backend {
            BackendKind::Local => format!("unix:{}", socket_path(&spec.name)?.display()),
            BackendKind::Cluster => "tcp".to_string(),
        };
        spec.args = vec![
            "--listen".into(),
            listen,
            "--idle-timeout".into(),
            idle.as_secs().to_string(),
        ];
        let job = self.submit_spec(spec)?;
        drop(removed);
        Ok(Session::over(job, self.clone()))
    }

    /// The session named `name` (started by this process or another one).
    pub fn session(&self, name: &str) -> Result<Session> {
        Ok(Session::over(self.get(name)?, self.clone()))
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A private, short path for a local session's socket (Unix socket paths are capped near 100
/// bytes, so not under the run folder).
fn socket_path(name: &str) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::PermissionsExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("kflow-sessions-{uid}"));
    std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(Error::io("securing", &dir))?;
    Ok(dir.join(format!("{name}.sock")))
}

impl Session {
    fn over(job: Job, client: Client) -> Session {
        Session {
            job,
            client,
            address: Default::default(),
            synced: Default::default(),
        }
    }

    /// The session's name (its job's).
    pub fn name(&self) -> &str {
        self.job.name()
    }

    /// The session's job.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Blocks until the remote kernel is ready, telling `progress` what the pod is waiting for
    /// (an image pull, the scheduler, pip) when that changes. Ends with an error when the pod
    /// fails or cannot start (the cluster's reason), or when `cancelled` says so.
    pub fn wait_ready(
        &self,
        progress: &mut dyn FnMut(&str),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        if self.address.lock().map(|a| a.is_some()).unwrap_or(false) {
            return Ok(());
        }
        let mut logs = self.job.logs(true);
        let mut shown = String::new();
        let mut last_status = Instant::now() - Duration::from_secs(1);
        loop {
            if cancelled() {
                return Err(self.not_started("interrupted while it started".into()));
            }
            if let Some(lines) = logs.poll_wait(Duration::from_millis(50))? {
                for line in lines {
                    if let Some(address) = line.text.trim().strip_prefix(READY_LINE) {
                        if let Ok(mut a) = self.address.lock() {
                            *a = Some(address.trim().to_string());
                        }
                        return Ok(());
                    }
                    if let Some(why) = line.text.trim().strip_prefix(FAILED_LINE) {
                        return Err(self.not_started(why.to_string()));
                    }
                }
            }
            if last_status.elapsed() < Duration::from_millis(500) {
                continue;
            }
            last_status = Instant::now();
            let status = self.job.status()?;
            if matches!(status.phase, Phase::Succeeded | Phase::Failed) {
                return Err(self.not_started(describe(&status)));
            }
            if let Some(reason) = &status.reason {
                if BLOCKING_REASONS.contains(&reason.as_str()) {
                    return Err(self.not_started(describe(&status)));
                }
            }
            let now = describe(&status);
            if now != shown {
                progress(&now);
                shown = now;
            }
        }
    }

    fn not_started(&self, reason: String) -> Error {
        Error::Resource(ResourceError::Stuck {
            what: "session",
            name: self.name().to_string(),
            reason,
            fix: "change what the session asks for (`%kflow session image=… memory=… gpu=…`) and run the cell again; `kflow describe <name>` shows the pod's events".into(),
        })
    }

    /// Why the session is over, if it is: its pod failed (OOMKilled, evicted, …), ended, or
    /// is gone. `None` while it runs.
    pub fn ended(&self) -> Option<String> {
        match self.job.status() {
            Ok(s) if matches!(s.phase, Phase::Succeeded | Phase::Failed) => Some(describe(&s)),
            Ok(_) => None,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Some("its job is gone".into()),
            Err(_) => None,
        }
    }

    /// Opens the stream to the agent (waiting for it to be ready first if needed). The link
    /// dials again by itself when the stream drops; events end with
    /// [`SessionEvent::Ended`] when the session is over.
    pub fn connect(
        &self,
    ) -> Result<(
        SessionLink,
        tokio::sync::mpsc::UnboundedReceiver<SessionEvent>,
    )> {
        self.wait_ready(&mut |_| {}, &|| false)?;
        let address = self
            .address
            .lock()
            .ok()
            .and_then(|a| a.clone())
            .unwrap_or_default();
        let session = self.clone();
        let ended: link::EndCheck = Arc::new(move || session.ended());
        if let Some(path) = address.strip_prefix("unix:") {
            let runtime = self.local_runtime()?;
            let path = PathBuf::from(path);
            let dial: link::Dialer = Box::new(move || {
                let path = path.clone();
                Box::pin(async move {
                    let s = tokio::net::UnixStream::connect(&path).await?;
                    Ok(Box::new(s) as Box<dyn link::Stream>)
                })
            });
            return Ok(link::start(runtime.handle(), dial, ended));
        }
        let port: u16 = address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| {
                self.not_started(format!("its agent gave an unusable address {address:?}"))
            })?;
        let backend = self.client.cluster_backend()?;
        let (pods, pod) = replica_pod(&backend, self.job.record(), "master-0")?;
        let dial: link::Dialer = Box::new(move || {
            let (pods, pod) = (pods.clone(), pod.clone());
            Box::pin(async move {
                let mut forwarder = pods
                    .portforward(&pod, &[port])
                    .await
                    .map_err(std::io::Error::other)?;
                let stream = forwarder
                    .take_stream(port)
                    .ok_or_else(|| std::io::Error::other("the forward gave no stream"))?;
                // The forwarder's task carries the stream; it ends when the stream is dropped.
                tokio::spawn(async move {
                    let _ = forwarder.join().await;
                });
                Ok(Box::new(stream) as Box<dyn link::Stream>)
            })
        });
        Ok(link::start(backend.runtime().handle(), dial, ended))
    }

    /// The local backend's links run on one small runtime for the process: it is never
    /// dropped, so no caller (an async kernel task among them) has to shut it down.
    fn local_runtime(&self) -> Result<&'static tokio::runtime::Runtime> {
        static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
        if let Some(rt) = RUNTIME.get() {
            return Ok(rt);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kflow-session")
            .enable_all()
            .build()
            .map_err(|source| {
                Error::System(SystemError::Spawn {
                    what: "the session's connection thread".into(),
                    fix: "free some threads or memory and try again".into(),
                    source,
                })
            })?;
        Ok(RUNTIME.get_or_init(|| rt))
    }

    /// Sends the project's files that changed since the last sync (by digest), and removes
    /// in the session those deleted here. Nothing travels when nothing changed.
    pub async fn sync(&self, link: &SessionLink) -> Result<Synced> {
        let root = self.job.spec().project_root.clone();
        sync::sync(self.name(), &root, &self.synced, link).await
    }

    /// Ends the session: its job and pod (or processes) are deleted, nothing is left.
    pub fn stop(self) -> Result<()> {
        let socket = self
            .address
            .lock()
            .ok()
            .and_then(|a| a.clone())
            .and_then(|a| a.strip_prefix("unix:").map(PathBuf::from));
        let deleted = self.job.clone().delete();
        if let Some(path) = socket {
            let _ = std::fs::remove_file(path);
        }
        deleted
    }
}

fn describe(status: &crate::JobStatus) -> String {
    let mut text = status.phase.as_str().to_string();
    if let Some(r) = &status.reason {
        text.push_str(&format!(" ({r})"));
    }
    if let Some(m) = status.message.as_deref().filter(|m| !m.is_empty()) {
        text.push_str(&format!(": {m}"));
    }
    text
}
