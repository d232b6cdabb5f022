//! The one flow every surface uses: options -> RunSpec -> package -> manifests -> run record ->
//! backend; and the job handle: status, logs, wait, cancel, delete, restart, manifest.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::artifacts;
use crate::auth::Session;
use crate::backend::cluster::{self, ClusterHandle};
use crate::backend::description::Description;
use crate::backend::files::{self, CopiedFiles, ExecOutput};
use crate::backend::local::{Launcher, LocalBackend};
use crate::backend::packaging::{self, Destination};
use crate::backend::{Backend, JobStatus, JobSummary, LogLine, LogStream, Run};
use crate::error::{ClusterError, Error, JobError, Result};
use crate::manifest::{self, MpiApi};
use crate::records::{self, RunDir, RunRecord};
use crate::spec::template::{self, TemplateInfo};
use crate::spec::{self, BackendKind, Context, RunOptions, RunSpec};

/// Entry point of the domain: holds the context (folders, settings) and the backends. Cheap
/// to clone; clones share the cluster connection.
#[derive(Debug, Clone)]
pub struct Client {
    ctx: Context,
    /// What the connection was made from, to tell when it no longer fits (`is_current`).
    made_from: ConnectionStamp,
    local: Arc<LocalBackend>,
    /// Connected on first use: local runs never read a kubeconfig.
    cluster: Arc<ClusterHandle>,
}

/// What `Client::list` found, and why the cluster's part may be missing or old.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// Every run found, this machine's and the cluster's.
    pub jobs: Vec<JobSummary>,
    /// Set when a cluster was configured or has runs but could not be listed: the cluster's
    /// jobs then show their last known phases (marked `stale`) and jobs made elsewhere are
    /// missing.
    pub cluster_problem: Option<String>,
}

/// A run checked and packaged but not submitted: what `kflow yaml` shows.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The checked run the manifests were made from.
    pub spec: RunSpec,
    /// Every object in creation order, as JSON: the pip cache, the code parts, the code, the
    /// job (with the code: its ConfigMaps as a submission creates them, sliced when large).
    pub objects: Vec<serde_json::Value>,
    /// What would travel: file count, sizes, largest files, what was withheld.
    pub archive: artifacts::Archive,
    /// Whether the code ConfigMaps carry the archive (`--with-code`).
    pub with_code: bool,
}

impl Preview {
    /// The manifests as YAML, after comment lines that say what travels (comments keep the
    /// output valid for `kubectl apply -f -`).
    pub fn to_yaml(&self) -> String {
        let mut out = format!(
            "# kflow: the project {} travels as {}\n",
            self.spec.project_root.display(),
            self.archive.summary()
        );
        if let Some(warning) = artifacts::withheld_warning(&self.archive.withheld) {
            out.push_str(&format!("# kflow: {warning}\n"));
        }
        if !self.with_code {
            out.push_str("# kflow: the code ConfigMap omits the archive (kflow fills it in at submission); `kflow yaml --with-code` includes it for kubectl apply\n");
        }
        out.push_str(&manifest::yaml_documents(&self.objects));
        out
    }
}

impl Client {
    /// Cluster runs go through the signed-in Kubeflow session when there is one (`kflow
    /// login`), else KUBECONFIG / ~/.kube/config, else the pod's service account.
    pub fn new(ctx: Context, launcher: Launcher) -> Client {
        let session_ctx = ctx.clone();
        let cluster = ClusterHandle::new(cluster::Source::Auto, ctx.env.clone())
            .preferring(move || signed_in_source(&session_ctx));
        Client {
            made_from: ConnectionStamp::of(&ctx),
            ctx,
            local: Arc::new(LocalBackend { launcher }),
            cluster: Arc::new(cluster),
        }
    }

    /// Runs cluster jobs through `session` in `namespace`, whatever else is configured.
    pub fn with_session(self, session: &Session, namespace: &str) -> Client {
        self.with_cluster_source(session_source(session, namespace))
    }

    /// Uses `source` for cluster runs instead of KUBECONFIG / in-cluster discovery.
    pub(crate) fn with_cluster_source(mut self, source: cluster::Source) -> Client {
        self.cluster = Arc::new(ClusterHandle::new(source, self.ctx.env.clone()));
        self
    }

    /// Which cluster connection runs would use, who as, and what the cluster serves; with no
    /// cluster configured, says that runs use the local backend. Never fails.
    pub fn doctor(&self) -> cluster::doctor::Doctor {
        cluster::doctor::run(&self.cluster, &self.ctx)
    }

    /// The namespace `name` of the cluster (default: the connection's), to list and manage
    /// what is in it beyond kflow's runs. Connects on first use, as runs do.
    pub fn namespace(&self, name: Option<&str>) -> Result<crate::Namespace> {
        if let Some(n) = name {
            spec::validate::namespace(n)?;
        }
        let backend = self.cluster.get()?;
        let name = name.map_or_else(|| backend.namespace.clone(), str::to_string);
        Ok(crate::Namespace::new(backend, name, self.ctx.clone()))
    }

    /// The cluster connection (made on first use), for the cluster-only parts of the API.
    pub(crate) fn cluster_backend(&self) -> Result<Arc<cluster::ClusterBackend>> {
        self.cluster.get()
    }

    /// The cluster connection, for tests that drive the cluster backend's parts directly.
    #[cfg(test)]
    pub(crate) fn cluster_connection(&self) -> Arc<cluster::ClusterBackend> {
        self.cluster.get().expect("a cluster connection")
    }

    /// The backend that runs jobs of `kind`.
    fn backend_for(&self, kind: BackendKind) -> Arc<dyn Backend> {
        match kind {
            BackendKind::Local => self.local.clone(),
            BackendKind::Cluster => self.cluster.clone(),
        }
    }

    fn job(&self, dir: RunDir, record: RunRecord) -> Job {
        Job {
            backend: self.backend_for(record.spec.backend),
            run: Run { dir, record },
        }
    }

    /// Whether this client still fits `ctx`: the same environment, and none of the files that
    /// say where and as whom to connect (kubeconfig, kflow's config.toml, the sign-in
    /// profile) changed since it was made. A long-lived surface keeps one client while this
    /// holds, so repeated calls reuse its connection, and makes a new one when it does not.
    pub fn is_current(&self, ctx: &Context) -> bool {
        self.made_from == ConnectionStamp::of(ctx)
    }

    /// The same client (sharing its connections) resolving relative paths from `cwd`.
    pub fn in_folder(mut self, cwd: std::path::PathBuf) -> Client {
        self.ctx.cwd = cwd;
        self
    }

    /// The folders, working directory and environment this client reads.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Merges `opts` over the template, config file and environment, and checks the result.
    pub fn resolve(&self, opts: RunOptions) -> Result<RunSpec> {
        spec::resolve(opts, &self.ctx)
    }

    /// The run templates available: the project's and the user's own.
    pub fn templates(&self, project_root: Option<&Path>) -> Result<Vec<TemplateInfo>> {
        template::list(project_root, &self.ctx.dirs.user_templates())
    }

    /// The manifests a run would create, from a real packaging of the project (so the digest
    /// and size limits are the ones a submission would meet), without creating anything.
    /// With `with_code`, the code ConfigMaps carry the archive, so `kubectl apply` of the
    /// output creates a job that runs; without, they say what they omit.
    pub fn preview(&self, opts: RunOptions, with_code: bool) -> Result<Preview> {
        let spec = self.resolve(opts)?;
        let scratch = std::env::temp_dir().join(format!(
            "kflow-preview-{}-{}",
            std::process::id(),
            spec.run_id
        ));
        let path = scratch.join("code.tar.gz");
        let result = packaging::package(&spec, &path, Destination::Local).and_then(|archive| {
            let bytes = if with_code {
                std::fs::read(&path).map_err(Error::io("reading", &path))?
            } else {
                Vec::new()
            };
            Ok((archive, bytes))
        });
        let _ = std::fs::remove_dir_all(&scratch);
        let (archive, bytes) = result?;
        let manifests = if with_code {
            packaging::manifests_with_code(&spec, bytes, &archive.sha256, MpiApi::V1)?
        } else {
            packaging::manifests_without_code(&spec, &archive.sha256, archive.bytes, 1, MpiApi::V1)
        };
        Ok(Preview {
            spec,
            objects: manifests.objects(),
            archive,
            with_code,
        })
    }

    /// Checks, packages and starts a run. Nothing is left behind when any step fails.
    pub fn submit(&self, opts: RunOptions) -> Result<Job> {
        let spec = self.resolve(opts)?;
        self.submit_spec(spec)
    }

    /// Packages and starts an already resolved run, as [`Client::submit`] does after resolving.
    pub fn submit_spec(&self, spec: RunSpec) -> Result<Job> {
        let dir = RunDir::new(&self.ctx.dirs.runs(), &spec.name);
        if dir.root.exists() {
            return Err(Error::Job(JobError::Exists {
                name: spec.name.clone(),
            }));
        }
        let result = self.create(&dir, spec);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir.root);
        }
        result
    }

    fn create(&self, dir: &RunDir, spec: RunSpec) -> Result<Job> {
        let backend = self.backend_for(spec.backend);
        let record = backend.create(dir, spec, 1)?;
        Ok(Job {
            backend,
            run: Run {
                dir: dir.clone(),
                record,
            },
        })
    }
}

impl Client {
    /// A run this machine knows, else a kflow job found on the configured cluster (submitted
    /// from another machine; see `adopt`). Without a cluster configuration only this machine
    /// is looked at; a cluster that cannot be asked is named in the error.
    pub fn get(&self, name: &str) -> Result<Job> {
        match self.get_local(name) {
            Err(Error::Job(JobError::NotFound { .. })) => match self.cluster.get() {
                Ok(backend) => self.fetch_from_cluster(&backend.namespace, &backend.server, name),
                Err(Error::Cluster(ClusterError::Config { .. })) => {
                    Err(Error::Job(JobError::NotFound {
                        name: name.to_string(),
                        elsewhere: String::new(),
                    }))
                }
                Err(e) => Err(Error::Job(JobError::NotFound {
                    name: name.to_string(),
                    elsewhere: format!(", and the cluster could not be asked ({e})"),
                })),
            },
            other => other,
        }
    }

    fn get_local(&self, name: &str) -> Result<Job> {
        let dir = RunDir::new(&self.ctx.dirs.runs(), name);
        if spec::validate::job_name(name).is_err() || !dir.exists() {
            return Err(Error::Job(JobError::NotFound {
                name: name.to_string(),
                elsewhere: String::new(),
            }));
        }
        let record = dir.read_record()?;
        Ok(self.job(dir, record))
    }

    /// A cluster job this machine has no record of (submitted elsewhere): its record comes from
    /// the job's annotation and its code from its ConfigMap, so it can be followed and restarted.
    pub fn adopt(&self, name: &str) -> Result<Job> {
        if let Ok(job) = self.get_local(name) {
            return Ok(job);
        }
        let backend = self.cluster.get()?;
        self.fetch_from_cluster(&backend.namespace, &backend.server, name)
    }

    /// `adopt`'s cluster half: for kflow's jobs the record from the job's annotation and the
    /// code from its ConfigMap, both kept in a new run folder; anyone else's training job is
    /// followed from a record read off the job (kept in the cache, not among the runs).
    fn fetch_from_cluster(&self, namespace: &str, server: &str, name: &str) -> Result<Job> {
        let not_found = || {
            Error::Job(JobError::NotFound {
                name: name.to_string(),
                elsewhere: format!(" nor in namespace {namespace:?} of the cluster at {server}"),
            })
        };
        spec::validate::job_name(name).map_err(|_| not_found())?;
        let dir = RunDir::new(&self.ctx.dirs.runs(), name);
        let foreign_root = self.ctx.dirs.cache.join("cluster-jobs");
        let (dir, record) = self
            .cluster
            .adopt(name, &dir, &foreign_root)?
            .ok_or_else(not_found)?;
        Ok(self.job(dir, record))
    }

    /// Every run this machine knows, newest first. When the configured backend is the cluster
    /// (or this machine has cluster runs), one paged listing of the cluster's training jobs
    /// gives their phases and adds the kflow jobs submitted elsewhere. A cluster that cannot be
    /// listed leaves the last known phases (marked `stale`) and says why in `cluster_problem`.
    pub fn list(&self) -> Listing {
        let configured = self.ctx.settings().ok().and_then(|s| s.backend);
        let mut known: Vec<(BackendKind, Vec<Run>)> = [BackendKind::Local, BackendKind::Cluster]
            .into_iter()
            .map(|kind| (kind, Vec::new()))
            .collect();
        for (dir, record) in records::list(&self.ctx.dirs.runs()) {
            if let Some((_, runs)) = known.iter_mut().find(|(k, _)| *k == record.spec.backend) {
                runs.push(Run { dir, record });
            }
        }
        let mut jobs = Vec::new();
        let mut problems = Vec::new();
        for (kind, runs) in known {
            let part = self.backend_for(kind).list(runs, configured == Some(kind));
            jobs.extend(part.jobs);
            problems.extend(part.problem);
        }
        jobs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.name.cmp(&b.name)));
        Listing {
            jobs,
            cluster_problem: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }
}

/// The connection of the signed-in session, in the configured namespace or else the user's
/// first Kubeflow profile namespace.
fn signed_in_source(ctx: &Context) -> Option<cluster::Source> {
    let session = crate::auth::session(ctx).ok()?;
    let namespace = ctx
        .settings()
        .ok()
        .and_then(|s| s.default_namespace)
        .or_else(|| {
            session
                .kubeflow_namespaces()
                .ok()
                .and_then(|ns| ns.into_iter().next())
        })
        .unwrap_or_else(|| "default".to_string());
    Some(session_source(&session, &namespace))
}

/// A session's connection: the kube client is made inside the backend's runtime and asks the
/// session for a token per request.
fn session_source(session: &Session, namespace: &str) -> cluster::Source {
    let made_for = session.clone();
    let ns = namespace.to_string();
    cluster::Source::Client {
        make: Arc::new(move || crate::auth::kube_client::client(&made_for, &ns)),
        namespace: namespace.to_string(),
        label: format!(
            "Kubeflow session of {} at {}",
            session.username(),
            session.endpoints().api_server
        ),
        server: session.endpoints().api_server.clone(),
        user: Some(session.username().to_string()),
    }
}

/// A handle on one run.
#[derive(Debug, Clone)]
pub struct Job {
    run: Run,
    backend: Arc<dyn Backend>,
}

/// What `Job::follow` hands its caller between waits for log lines.
#[derive(Debug)]
pub enum Progress<'a> {
    /// New lines of any replicas.
    Lines(&'a [LogLine]),
    /// Nothing new during one wait: a moment to update a spinner or a status line.
    Idle,
}

impl Job {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.run.record.spec.name
    }

    /// What the job runs and with what.
    pub fn spec(&self) -> &RunSpec {
        &self.run.record.spec
    }

    /// Things the user should be told about this run, such as credentials left out of it.
    pub fn warnings(&self) -> Vec<String> {
        artifacts::withheld_warning(&self.run.record.withheld)
            .into_iter()
            .collect()
    }

    /// What kflow keeps about this run on this machine.
    pub fn record(&self) -> &RunRecord {
        &self.run.record
    }

    /// The run's folder in kflow's state folder: its record, state and local logs.
    pub fn run_dir(&self) -> &Path {
        &self.run.dir.root
    }

    /// The replicas' names in the operator's order, e.g. `master-0`, `worker-0`.
    pub fn replica_names(&self) -> Vec<String> {
        self.run
            .record
            .spec
            .replicas()
            .iter()
            .map(|r| r.label())
            .collect()
    }

    /// The job's state now, as its backend reports it.
    pub fn status(&self) -> Result<JobStatus> {
        self.backend.status(&self.run)
    }

    /// All replicas' lines; with `follow`, until the job ends. A cluster job's logs come from
    /// its pods, or from the local copy once they are gone or the cluster is unreachable.
    pub fn logs(&self, follow: bool) -> LogStream {
        self.backend.logs(&self.run, follow)
    }

    /// Blocks until the job ends, `timeout` passes, or `interrupted` says to stop waiting.
    pub fn wait(
        &self,
        timeout: Option<Duration>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<JobStatus> {
        self.backend.wait(&self.run, timeout, interrupted)
    }

    /// Streams the job's lines to `on` until the job ends, and returns its final status;
    /// `None` when `stop` said to stop first. Each wait for lines lasts at most `wait`, so
    /// `stop` and `on(Progress::Idle)` are looked at that often.
    pub fn follow(
        &self,
        wait: Duration,
        stop: &mut dyn FnMut() -> bool,
        on: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Option<JobStatus>> {
        let mut logs = self.logs(true);
        loop {
            if stop() {
                return Ok(None);
            }
            match logs.poll_wait(wait)? {
                None => break,
                Some(lines) if lines.is_empty() => on(Progress::Idle),
                Some(lines) => on(Progress::Lines(&lines)),
            }
        }
        // The logs end when the job has ended, seen through their own watch; the status watch
        // may hear of it a moment later, so wait for it rather than read a stale "Running".
        match self.wait(Some(FINAL_STATUS_WAIT), stop) {
            Ok(status) => Ok(Some(status)),
            Err(_) => self.status().map(Some),
        }
    }

    /// Stops the run, keeping its record and logs; returns the status it ended with.
    pub fn cancel(&self) -> Result<JobStatus> {
        self.backend.cancel(&self.run)
    }

    /// Cancels the run if it is going and removes everything kflow kept for it (on a cluster:
    /// the job, and with it its pods and code ConfigMap).
    pub fn delete(self) -> Result<()> {
        self.backend.delete(&self.run)?;
        let root = &self.run.dir.root;
        std::fs::remove_dir_all(root).map_err(Error::io("removing", root))
    }

    /// Runs the same spec and the same code again under the same name; a running job is
    /// cancelled first, as deleting and recreating a Kubeflow job would. The old logs stay
    /// under `attempts/<n>/`.
    pub fn restart(&self) -> Result<Job> {
        let record = self.backend.restart(&self.run)?;
        Ok(Job {
            run: Run {
                dir: self.run.dir.clone(),
                record,
            },
            backend: self.backend.clone(),
        })
    }

    /// Spec, status, conditions, pods, events and the last log lines of each replica (the
    /// cluster-only parts are empty for a local run).
    pub fn describe(&self) -> Result<Description> {
        self.backend.describe(&self.run)
    }

    /// Runs `argv` (a program and its arguments, never through a shell) in a running replica
    /// (`None`: the first, e.g. `master-0`), in its working directory, as `kubectl exec` does.
    pub fn exec(&self, replica: Option<&str>, argv: &[String]) -> Result<ExecOutput> {
        let replica = files::check_replica(self.name(), &self.replica_names(), replica)?;
        files::check_command(self.name(), argv)?;
        self.backend.exec(&self.run, &replica, argv)
    }

    /// Copies the folder `path` of a running replica (relative to its working directory, or
    /// absolute) into `dest`, as `kubectl cp` does: regular files and folders only.
    pub fn copy_from(&self, replica: Option<&str>, path: &str, dest: &Path) -> Result<CopiedFiles> {
        let replica = files::check_replica(self.name(), &self.replica_names(), replica)?;
        self.backend.copy_from(&self.run, &replica, path, dest)
    }

    /// The Kubernetes manifests of the run as YAML, as submitted (or as they would be).
    pub fn manifest_yaml(&self) -> &str {
        &self.run.record.manifest_yaml
    }
}

/// The environment and the modification times of the files a client's connection is made
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConnectionStamp {
    env: std::collections::BTreeMap<String, String>,
    files: Vec<(std::path::PathBuf, Option<std::time::SystemTime>)>,
}

impl ConnectionStamp {
    fn of(ctx: &Context) -> ConnectionStamp {
        let mut paths = cluster::connection::kubeconfig_paths(&ctx.env);
        paths.push(ctx.dirs.config_file());
        paths.push(crate::auth::profile_path(&ctx.dirs.state));
        let files = paths
            .into_iter()
            .map(|p| {
                let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
                (p, modified)
            })
            .collect();
        ConnectionStamp {
            env: ctx.env.clone(),
            files,
        }
    }
}

/// How long `follow` waits, once the logs have ended, for the status to say so too.
const FINAL_STATUS_WAIT: Duration = Duration::from_secs(30);
