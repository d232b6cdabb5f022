//! The cluster backend: runs a job as a Kubeflow training job on Kubernetes. kflow-core's API
//! is synchronous, so this backend owns a tokio runtime and blocks on it; log followers run as
//! tasks on that runtime and hand lines over a channel.
//!
//! Modules: `connection` (where the config comes from), `capabilities` (what is served),
//! `access` (may the user submit here), `lifecycle` (create, cancel, delete, restart),
//! `submit` (PVC, code ConfigMaps, job, owner references), `tracking` (a run's status, watched
//! and saved), `status` (job + pods -> JobStatus), `logs` (every replica, resumed, copied
//! locally), `code` (a run's code and record as the cluster keeps them: restart, adopt),
//! `listing` (`kflow jobs`), `describe`, `doctor`, `api_errors` (refusals as kflow errors),
//! `retry` (back-off).

mod access;
pub(crate) mod api_errors;
pub(crate) mod capabilities;
mod code;
pub(crate) mod connection;
mod describe;
pub(crate) mod doctor;
pub(crate) mod files;
mod lifecycle;
mod listing;
pub(crate) mod logs;
pub(crate) mod retry;
mod status;
pub(crate) mod submit;
mod tracking;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

pub use capabilities::Capabilities;
pub use connection::{Identity, Source};
pub use logs::ClusterLogStream;

use crate::backend::description::Description;
use crate::backend::files::{CopiedFiles, ExecOutput};
use crate::backend::{Backend, BackendListing, JobStatus, LogStream, Run};
use crate::error::{ClusterError, Error, Result, SystemError};
use crate::records::{RunDir, RunRecord};
use crate::spec::RunSpec;

/// The annotation on the job holding the run record (spec, digest, attempt) as JSON, so
/// `restart` works from any machine.
pub const RECORD_ANNOTATION: &str = "kflow.dev/run-record";
pub const JOB_NAME_LABEL: &str = "training.kubeflow.org/job-name";

/// The pods of one run: by job name and run id, so pods of an earlier run of the same name
/// that the garbage collector has not removed yet are never mistaken for this run's.
pub fn pod_selector(job: &str, run_id: &str) -> String {
    if run_id.is_empty() {
        // A job kflow did not make: its pods carry only the operator's labels.
        return format!("{JOB_NAME_LABEL}={job}");
    }
    format!(
        "{JOB_NAME_LABEL}={job},{}={run_id}",
        crate::manifest::RUN_ID_LABEL
    )
}

/// A live connection: the runtime it runs on, the client, and what the cluster serves.
pub struct ClusterBackend {
    // Its connections belong to `rt`; `Drop` shuts that down (in the background) before any
    // field is dropped, so no connection outlives the runtime it was made on.
    client: kube::Client,
    pub namespace: String,
    pub description: String,
    /// The API server's address ("" for a ready-made client, whose address kube keeps to itself).
    pub server: String,
    pub identity: Identity,
    caps: Mutex<Option<Capabilities>>,
    /// One status watch per run (by run id), shared by every handle and call: `status()` and
    /// `wait()` read it instead of asking the API server again.
    pub(crate) watches: Mutex<std::collections::HashMap<String, Arc<tracking::StatusCell>>>,
    /// Always Some until drop (see `Drop`).
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for ClusterBackend {
    /// A plain drop of a runtime blocks until its tasks end, which tokio forbids (and panics on)
    /// when the last handle goes away inside another runtime's task — as in the Jupyter kernel.
    /// Shutting down in the background is allowed anywhere.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for ClusterBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBackend")
            .field("namespace", &self.namespace)
            .field("connection", &self.description)
            .finish()
    }
}

impl ClusterBackend {
    pub fn connect(source: &Source, env: &BTreeMap<String, String>) -> Result<ClusterBackend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kflow-cluster")
            .enable_all()
            .build()
            .map_err(|source| {
                Error::System(SystemError::Spawn {
                    what: "the cluster backend's runtime".into(),
                    fix: "free some threads or memory".into(),
                    source,
                })
            })?;
        let (client, namespace, description, server, identity) = rt.block_on(async {
            if let Source::Client {
                make,
                namespace,
                label,
                server,
                user,
            } = source
            {
                // The only ready-made clients are signed-in sessions' (see `signed_in_source`).
                let identity = Identity {
                    via: "session".into(),
                    user: user.clone(),
                    ..Default::default()
                };
                return Ok((
                    make()?,
                    namespace.clone(),
                    label.clone(),
                    server.clone(),
                    identity,
                ));
            }
            let resolved = connection::resolve(source, env).await?;
            let server = resolved.config.cluster_url.to_string();
            let namespace = resolved.config.default_namespace.clone();
            let client = kube::Client::try_from(resolved.config).map_err(|e| {
                Error::Cluster(ClusterError::Unreachable {
                    server: server.clone(),
                    problem: e.to_string(),
                })
            })?;
            Ok::<_, Error>((
                client,
                namespace,
                resolved.description,
                server,
                resolved.identity,
            ))
        })?;
        Ok(ClusterBackend {
            client,
            namespace,
            description,
            server,
            identity,
            caps: Mutex::new(None),
            watches: Mutex::new(Default::default()),
            rt: Some(rt),
        })
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime().block_on(f)
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("the runtime lives until drop")
    }

    /// Discovery, once per connection.
    pub fn capabilities(&self) -> Result<Capabilities> {
        self.block_on(self.discover())
    }

    /// [`ClusterBackend::capabilities`], to be awaited beside other requests.
    pub(crate) async fn discover(&self) -> Result<Capabilities> {
        if let Some(c) = *self.caps.lock().expect("caps lock") {
            return Ok(c);
        }
        let caps = retry::retry_result(|| capabilities::detect(&self.client, &self.server)).await?;
        *self.caps.lock().expect("caps lock") = Some(caps);
        Ok(caps)
    }

    /// The namespace a run goes to: its own, else the connection's.
    pub fn namespace_for(&self, spec: &RunSpec) -> String {
        spec.namespace
            .clone()
            .unwrap_or_else(|| self.namespace.clone())
    }
}

/// A connection opened on first use and shared by every handle of one `Client`, so local
/// runs never touch a kubeconfig and `kflow jobs` needs the cluster only for cluster runs.
#[derive(Clone, Default)]
pub struct ClusterHandle {
    source: Source,
    env: BTreeMap<String, String>,
    /// Asked at connect time, before `source`: a signed-in session's connection, if any.
    preferred: Option<Arc<dyn Fn() -> Option<Source> + Send + Sync>>,
    cell: Arc<Mutex<Option<Arc<ClusterBackend>>>>,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("source", &self.source)
            .finish()
    }
}

impl ClusterHandle {
    pub fn new(source: Source, env: BTreeMap<String, String>) -> ClusterHandle {
        ClusterHandle {
            source,
            env,
            preferred: None,
            cell: Arc::new(Mutex::new(None)),
        }
    }

    /// Connects through `preferred()` when it gives a source (it is asked once, lazily, so
    /// local runs never touch the keyring or the network).
    pub fn preferring(
        mut self,
        preferred: impl Fn() -> Option<Source> + Send + Sync + 'static,
    ) -> ClusterHandle {
        self.preferred = Some(Arc::new(preferred));
        self
    }

    pub fn get(&self) -> Result<Arc<ClusterBackend>> {
        let mut cell = self.cell.lock().expect("cluster handle lock");
        if let Some(b) = cell.as_ref() {
            return Ok(b.clone());
        }
        let preferred = self.preferred.as_ref().and_then(|p| p());
        let backend = Arc::new(ClusterBackend::connect(
            preferred.as_ref().unwrap_or(&self.source),
            &self.env,
        )?);
        *cell = Some(backend.clone());
        Ok(backend)
    }
}

impl ClusterHandle {
    /// A cluster job this machine has no record of. One of kflow's (submitted elsewhere)
    /// gets its record from the job's annotation and its code from its ConfigMap(s), both
    /// kept in `dir`; anyone else's gets a record read from the job, kept in a folder under
    /// `foreign_root` (it is not one of this machine's runs). `None` when the connection's
    /// namespace holds no training job of that name.
    pub(crate) fn adopt(
        &self,
        name: &str,
        dir: &RunDir,
        foreign_root: &std::path::Path,
    ) -> Result<Option<(RunDir, RunRecord)>> {
        let backend = self.get()?;
        match code::find_job(&backend, name)? {
            None => Ok(None),
            Some(code::FoundJob::Kflow(record)) => {
                std::fs::create_dir_all(&dir.root).map_err(Error::io("creating", &dir.root))?;
                let archive = code::code_bytes(&backend, dir, &record)?;
                crate::records::write_atomic(&dir.archive(), &archive)?;
                dir.write_record(&record)?;
                Ok(Some((dir.clone(), record)))
            }
            Some(code::FoundJob::Foreign(record)) => {
                let dir = RunDir::new(&foreign_root.join(&backend.namespace), name);
                std::fs::create_dir_all(&dir.root).map_err(Error::io("creating", &dir.root))?;
                dir.write_record(&record)?;
                Ok(Some((dir, record)))
            }
        }
    }
}

impl Backend for ClusterHandle {
    fn create(&self, dir: &RunDir, spec: RunSpec, attempt: u32) -> Result<RunRecord> {
        lifecycle::create(&*self.get()?, dir, spec, attempt)
    }

    fn status(&self, run: &Run) -> Result<JobStatus> {
        tracking::status(&*self.get()?, &run.dir, &run.record)
    }

    /// From the pods, or from the local copy once they are gone or the cluster is unreachable.
    fn logs(&self, run: &Run, follow: bool) -> LogStream {
        let replicas = tracking::replicas(&run.record);
        match self.get() {
            Ok(backend) => {
                let (jobs, ns) = tracking::jobs_api(&backend, &run.record);
                LogStream::new(ClusterLogStream::start(
                    backend,
                    jobs,
                    &ns,
                    &run.record.spec.name,
                    &run.record.spec.run_id,
                    run.dir.clone(),
                    replicas,
                    follow,
                ))
            }
            Err(_) => LogStream::new(logs::local_copy(&run.dir, replicas)),
        }
    }

    fn cancel(&self, run: &Run) -> Result<JobStatus> {
        lifecycle::cancel(&*self.get()?, &run.dir, &run.record)
    }

    /// The job, and with it its pods and code ConfigMaps.
    fn delete(&self, run: &Run) -> Result<()> {
        lifecycle::delete_job(&*self.get()?, &run.record, false)
    }

    fn restart(&self, run: &Run) -> Result<RunRecord> {
        lifecycle::restart(&*self.get()?, &run.dir)
    }

    fn describe(&self, run: &Run) -> Result<Description> {
        describe::describe(&*self.get()?, &run.dir, &run.record)
    }

    fn exec(&self, run: &Run, replica: &str, argv: &[String]) -> Result<ExecOutput> {
        files::exec(&*self.get()?, &run.record, replica, argv)
    }

    fn copy_from(
        &self,
        run: &Run,
        replica: &str,
        path: &str,
        dest: &std::path::Path,
    ) -> Result<CopiedFiles> {
        files::copy_from(&*self.get()?, &run.record, replica, path, dest)
    }

    fn list(&self, known: Vec<Run>, configured: bool) -> BackendListing {
        listing::list(self, known, configured)
    }
}

#[cfg(test)]
mod tests {
    //! The cluster backend against kflow-testcluster on a loopback port.

    mod backend;
    mod logs;

    use std::path::{Path, PathBuf};

    use crate::{Client, Context, Dirs, Launcher};

    /// A client whose folders live under `root`, its project in `root/project`, talking to the
    /// cluster of `kubeconfig`; local runs would start no supervisor.
    fn client_at(root: &Path, kubeconfig: &Path) -> Client {
        let ctx = Context {
            dirs: Dirs {
                config: root.join("config"),
                state: root.join("state"),
                cache: root.join("cache"),
            },
            cwd: root.join("project"),
            env: [("KUBECONFIG".to_string(), kubeconfig.display().to_string())].into(),
        };
        Client::new(
            ctx,
            Launcher {
                command: Vec::new(),
            },
        )
    }

    /// The Kubeflow CRDs the test cluster validates manifests with, when they are at hand.
    fn crd_dir() -> Option<PathBuf> {
        std::env::var_os("KFLOW_CRD_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crds");
                d.is_dir().then_some(d)
            })
    }
}
