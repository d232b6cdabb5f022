//! The one flow every surface uses: options -> RunSpec -> package -> manifests -> run record ->
//! backend; and the job handle: status, logs, wait, cancel, delete, restart, manifest.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::artifacts::{self, PackOptions, CONFIGMAP_MAX_BYTES};
use crate::backend::cluster::{self, ClusterBackend, ClusterHandle, ClusterLogStream};
use crate::backend::local::{self as local_backend, Launcher, LocalBackend};
use crate::backend::{JobStatus, LogLine};
use crate::error::{Error, Result};
use crate::manifest::{self, CodePayload, Manifests, MpiApi};
use crate::records::{self, RunDir, RunRecord};
use crate::spec::template::{self, TemplateInfo};
use crate::spec::{self, BackendKind, CodeMode, Context, RunOptions, RunSpec};

/// Entry point of the domain: holds the context (folders, settings) and the backends.
#[derive(Debug, Clone)]
pub struct Client {
    ctx: Context,
    local: LocalBackend,
    /// Connected on first use: local runs never read a kubeconfig.
    cluster: ClusterHandle,
}

/// Which backend a job handle talks to.
#[derive(Debug, Clone)]
enum JobBackend {
    Local(LocalBackend),
    Cluster(ClusterHandle),
}

/// A job's log lines, from whichever backend runs it.
pub enum LogStream {
    Local(local_backend::LogStream),
    Cluster(Box<ClusterLogStream>),
}

impl LogStream {
    /// What is available now without waiting: `Ok(None)` at the end of the logs,
    /// `Ok(Some(empty))` when the job is still going and nothing new arrived.
    pub fn poll(&mut self) -> Result<Option<Vec<LogLine>>> {
        match self {
            LogStream::Local(s) => s.poll(),
            LogStream::Cluster(s) => s.poll(),
        }
    }

    /// Like `poll`, but waits up to `wait` for the first line (the cluster's lines come over a
    /// channel and wake the waiter at once; the local backend's files are looked at every 30 ms).
    pub fn poll_wait(&mut self, wait: std::time::Duration) -> Result<Option<Vec<LogLine>>> {
        match self {
            LogStream::Local(s) => s.poll_wait(wait),
            LogStream::Cluster(s) => s.poll_wait(wait),
        }
    }
}

impl Iterator for LogStream {
    type Item = LogLine;

    fn next(&mut self) -> Option<LogLine> {
        match self {
            LogStream::Local(s) => s.next(),
            LogStream::Cluster(s) => s.next(),
        }
    }
}

/// A run as `kflow jobs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub name: String,
    pub kind: String,
    pub backend: String,
    pub phase: String,
    pub reason: Option<String>,
    pub script: String,
    pub created_at: String,
    /// The phase is the last one this machine saw, not a fresh reading from the cluster.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

/// What `Client::list` found, and why the cluster's part may be missing or old.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub jobs: Vec<JobSummary>,
    /// Set when a cluster was configured or has runs but could not be listed: the cluster's
    /// jobs then show their last known phases (marked `stale`) and jobs made elsewhere are
    /// missing.
    pub cluster_problem: Option<String>,
}

/// A run checked and packaged but not submitted: what `kflow yaml` shows.
#[derive(Debug, Clone)]
pub struct Preview {
    pub spec: RunSpec,
    pub manifests: Manifests,
    /// The further code ConfigMaps of a large archive, when the code is included.
    pub extra_code: Vec<serde_json::Value>,
    /// What would travel: file count, sizes, largest files, what was withheld.
    pub archive: artifacts::Archive,
    /// Whether the code ConfigMaps carry the archive (`--with-code`).
    pub with_code: bool,
}

impl Preview {
    /// Every object in creation order: the pip cache, the code parts, the code, the job.
    pub fn objects(&self) -> Vec<&serde_json::Value> {
        let mut objects: Vec<&serde_json::Value> = self.manifests.pip_cache.iter().collect();
        objects.extend(&self.extra_code);
        objects.extend([&self.manifests.code, &self.manifests.job]);
        objects
    }

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
        out.push_str(&manifest::yaml_documents(&self.objects()));
        out
    }
}

/// The manifests that carry `archive` itself, as a submission creates them: in the code
/// ConfigMap (or as files in ConfigMap mode), sliced into further ConfigMaps when large.
fn manifests_with_code(
    spec: &RunSpec,
    archive: Vec<u8>,
    sha256: &str,
    mpi: MpiApi,
) -> Result<(Manifests, Vec<serde_json::Value>)> {
    let payload = match spec.code_mode {
        CodeMode::Targz => CodePayload::Archive {
            bytes: archive,
            sha256: sha256.to_string(),
        },
        CodeMode::Configmap => CodePayload::Files {
            files: cluster::submit::archive_files(&archive)?,
            sha256: sha256.to_string(),
        },
    };
    let mut manifests = manifest::build(spec, &payload, mpi);
    let mut extra_code = Vec::new();
    if let CodePayload::Archive { bytes, .. } = &payload {
        if cluster::chunks::needed(bytes.len()) {
            extra_code = cluster::chunks::split(&mut manifests, &spec.name, bytes);
        }
    }
    Ok((manifests, extra_code))
}

impl Client {
    /// Cluster runs go through the signed-in Kubeflow session when there is one (`kflow
    /// login`), else KUBECONFIG / ~/.kube/config, else the pod's service account.
    pub fn new(ctx: Context, launcher: Launcher) -> Client {
        let session_ctx = ctx.clone();
        let cluster = ClusterHandle::new(cluster::Source::Auto, ctx.env.clone())
            .preferring(move || signed_in_source(&session_ctx));
        Client {
            ctx,
            local: LocalBackend { launcher },
            cluster,
        }
    }

    /// Uses `source` for cluster runs instead of KUBECONFIG / in-cluster discovery: the seam
    /// for a signed-in session's in-memory config.
    pub fn with_cluster_source(mut self, source: cluster::Source) -> Client {
        self.cluster = ClusterHandle::new(source, self.ctx.env.clone());
        self
    }

    /// Which cluster connection runs would use, who as, and what the cluster serves; with no
    /// cluster configured, says that runs use the local backend. Never fails.
    pub fn doctor(&self) -> cluster::doctor::Doctor {
        cluster::doctor::run(&self.cluster, &self.ctx)
    }

    /// The cluster connection (opened now if it was not yet).
    pub fn cluster(&self) -> Result<std::sync::Arc<ClusterBackend>> {
        self.cluster.get()
    }

    fn job(&self, dir: RunDir, record: RunRecord) -> Job {
        let backend = match record.spec.backend {
            BackendKind::Local => JobBackend::Local(self.local.clone()),
            BackendKind::Cluster => JobBackend::Cluster(self.cluster.clone()),
        };
        Job {
            dir,
            record,
            backend,
        }
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    pub fn resolve(&self, opts: RunOptions) -> Result<RunSpec> {
        spec::resolve(opts, &self.ctx)
    }

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
        let result = package_for(&spec, &path).and_then(|archive| {
            let bytes = if with_code {
                std::fs::read(&path).map_err(Error::io("reading", &path))?
            } else {
                Vec::new()
            };
            Ok((archive, bytes))
        });
        let _ = std::fs::remove_dir_all(&scratch);
        let (archive, bytes) = result?;
        let (manifests, extra_code) = if with_code {
            manifests_with_code(&spec, bytes, &archive.sha256, MpiApi::V1)?
        } else {
            let elided = CodePayload::Elided {
                sha256: archive.sha256.clone(),
                bytes: archive.bytes,
            };
            (manifest::build(&spec, &elided, MpiApi::V1), Vec::new())
        };
        Ok(Preview {
            spec,
            manifests,
            extra_code,
            archive,
            with_code,
        })
    }

    /// Checks, packages and starts a run. Nothing is left behind when any step fails.
    pub fn submit(&self, opts: RunOptions) -> Result<Job> {
        let spec = self.resolve(opts)?;
        self.submit_spec(spec)
    }

    pub fn submit_spec(&self, spec: RunSpec) -> Result<Job> {
        let dir = RunDir::new(&self.ctx.dirs.runs(), &spec.name);
        if dir.root.exists() {
            return Err(Error::JobExists {
                name: spec.name.clone(),
            });
        }
        let result = self.create(&dir, spec);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir.root);
        }
        result
    }

    fn create(&self, dir: &RunDir, spec: RunSpec) -> Result<Job> {
        if spec.backend == BackendKind::Cluster {
            return create_on_cluster(&self.cluster, dir, spec, 1);
        }
        std::fs::create_dir_all(&dir.root).map_err(Error::io("creating", &dir.root))?;
        let archive = package_for(&spec, &dir.archive())?;
        let manifests = manifest::build(
            &spec,
            &CodePayload::Elided {
                sha256: archive.sha256.clone(),
                bytes: archive.bytes,
            },
            MpiApi::V1,
        );
        let record = RunRecord {
            manifest_yaml: manifests.to_yaml(),
            code_sha256: archive.sha256.clone(),
            created_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            attempt: 1,
            spec,
            withheld: archive.withheld.clone(),
        };
        dir.write_record(&record)?;
        let job = self.job(dir.clone(), record);
        self.local.start(dir, &job.replica_names())?;
        Ok(job)
    }
}

/// Cluster submission: connect, check the kind is served and the user may create it, package (a restart reuses the stored
/// archive), record locally, then create the PVC, the code ConfigMap(s) and the job.
fn create_on_cluster(
    handle: &ClusterHandle,
    dir: &RunDir,
    mut spec: RunSpec,
    attempt: u32,
) -> Result<Job> {
    let backend = handle.get()?;
    let mpi = backend.capabilities()?.require(spec.kind)?;
    // The record names the namespace, so status and restart find the job from anywhere.
    spec.namespace = Some(backend.namespace_for(&spec));
    let ns = spec.namespace.clone().unwrap_or_default();
    backend.block_on(cluster::access::check(
        backend.client(),
        &ns,
        &cluster::access::submission_needs(spec.kind),
    ))?;
    std::fs::create_dir_all(&dir.root).map_err(Error::io("creating", &dir.root))?;
    let mut withheld = Vec::new();
    if !dir.archive().is_file() {
        withheld = package_cluster(&spec, &dir.archive())?.withheld;
    }
    let sha256 = artifacts::sha256_file(&dir.archive())?;
    let bytes = std::fs::read(dir.archive()).map_err(Error::io("reading", dir.archive()))?;
    let size = bytes.len() as u64;
    let (manifests, extra_code) = manifests_with_code(&spec, bytes, &sha256, mpi)?;
    let mut elided = manifest::build(
        &spec,
        &CodePayload::Elided {
            sha256: sha256.clone(),
            bytes: size,
        },
        mpi,
    );
    if !extra_code.is_empty() {
        cluster::chunks::rewrite_job(&mut elided.job, &spec.name, extra_code.len() + 1);
    }
    let record = RunRecord {
        manifest_yaml: elided.to_yaml(),
        code_sha256: sha256,
        created_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        attempt,
        spec,
        withheld,
    };
    dir.write_record(&record)?;
    let mut annotation = serde_json::to_value(&record).expect("record serializes");
    // The manifest is on the cluster already; the annotation keeps what restart needs.
    annotation["manifest_yaml"] = serde_json::json!("");
    let submission = cluster::submit::Submission {
        manifests: &manifests,
        namespace: &ns,
        kind: record.spec.kind,
        name: &record.spec.name,
        run_id: &record.spec.run_id,
        record_json: annotation.to_string(),
        extra_code,
    };
    backend.block_on(cluster::submit::submit(backend.client(), &submission))?;
    Ok(Job {
        dir: dir.clone(),
        record,
        backend: JobBackend::Cluster(handle.clone()),
    })
}

impl Client {
    /// A run this machine knows, else a kflow job found on the configured cluster (submitted
    /// from another machine; see `adopt`). Without a cluster configuration only this machine
    /// is looked at; a cluster that cannot be asked is named in the error.
    pub fn get(&self, name: &str) -> Result<Job> {
        match self.get_local(name) {
            Err(Error::JobNotFound { .. }) => match self.cluster.get() {
                Ok(backend) => self.fetch_from_cluster(&backend, name),
                Err(Error::ClusterConfig { .. }) => Err(Error::JobNotFound {
                    name: name.to_string(),
                    elsewhere: String::new(),
                }),
                Err(e) => Err(Error::JobNotFound {
                    name: name.to_string(),
                    elsewhere: format!(", and the cluster could not be asked ({e})"),
                }),
            },
            other => other,
        }
    }

    fn get_local(&self, name: &str) -> Result<Job> {
        let dir = RunDir::new(&self.ctx.dirs.runs(), name);
        if spec::validate::job_name(name).is_err() || !dir.exists() {
            return Err(Error::JobNotFound {
                name: name.to_string(),
                elsewhere: String::new(),
            });
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
        self.fetch_from_cluster(&backend, name)
    }

    /// `adopt`'s cluster half: the record from the job's annotation, the code from its
    /// ConfigMap, both kept in a new run folder.
    fn fetch_from_cluster(&self, backend: &ClusterBackend, name: &str) -> Result<Job> {
        let not_found = || Error::JobNotFound {
            name: name.to_string(),
            elsewhere: format!(
                " nor in namespace {:?} of the cluster at {}",
                backend.namespace, backend.server
            ),
        };
        spec::validate::job_name(name).map_err(|_| not_found())?;
        let record = cluster::ops::find_record(backend, name)?.ok_or_else(not_found)?;
        let dir = RunDir::new(&self.ctx.dirs.runs(), name);
        std::fs::create_dir_all(&dir.root).map_err(Error::io("creating", &dir.root))?;
        let code = cluster::ops::code_bytes(backend, &dir, &record)?;
        records::write_atomic(&dir.archive(), &code)?;
        dir.write_record(&record)?;
        Ok(self.job(dir, record))
    }

    /// Every run this machine knows, newest first. When the configured backend is the cluster
    /// (or this machine has cluster runs), one paged listing of the cluster's training jobs
    /// gives their phases and adds the kflow jobs submitted elsewhere. A cluster that cannot be
    /// listed leaves the last known phases (marked `stale`) and says why in `cluster_problem`.
    pub fn list(&self) -> Listing {
        let local = records::list(&self.ctx.dirs.runs());
        let wants_cluster = self.ctx.settings().ok().and_then(|s| s.backend)
            == Some(BackendKind::Cluster)
            || local
                .iter()
                .any(|(_, r)| r.spec.backend == BackendKind::Cluster);
        let mut cluster_problem = None;
        let listed = if wants_cluster {
            let listing = match self.cluster.get() {
                Ok(b) => cluster::ops::list_jobs(&b)
                    .map(|l| (b.namespace.clone(), l))
                    .map_err(|e| format!("the cluster at {} could not be listed: {e}", b.server)),
                Err(e) => Err(e.to_string()),
            };
            match listing {
                Ok(l) => Some(l),
                Err(problem) => {
                    cluster_problem = Some(problem);
                    None
                }
            }
        } else {
            None
        };
        // Runs in other namespaces are not in the listing: their saved phase stands.
        let listed_here = |spec: &RunSpec| {
            listed
                .as_ref()
                .filter(|(ns, _)| spec.namespace.as_deref() == Some(ns.as_str()))
                .map(|(_, l)| l)
        };
        let mut out: Vec<JobSummary> = local
            .into_iter()
            .map(|(dir, record)| {
                let spec = &record.spec;
                let (phase, reason) = match spec.backend {
                    BackendKind::Local => match self.job(dir.clone(), record.clone()).status() {
                        Ok(s) => (s.phase.as_str().to_string(), s.reason),
                        Err(_) => ("Unknown".to_string(), None),
                    },
                    BackendKind::Cluster => {
                        let here = listed_here(spec);
                        let seen = here.and_then(|l| {
                            l.iter().find(|j| {
                                j.name == spec.name && j.run_id.as_deref() == Some(&spec.run_id)
                            })
                        });
                        match (seen, cluster::ops::last_status(&dir)) {
                            (Some(j), _) => (j.phase.clone(), j.reason.clone()),
                            (None, Some(s)) if here.is_some() => {
                                let s = cluster::status::deleted(Some(s));
                                (s.phase.as_str().to_string(), s.reason)
                            }
                            (None, Some(s)) => (s.phase.as_str().to_string(), s.reason),
                            (None, None) => ("Unknown".to_string(), None),
                        }
                    }
                };
                JobSummary {
                    name: spec.name.clone(),
                    kind: spec.kind.to_string(),
                    backend: spec.backend.as_str().to_string(),
                    phase,
                    reason,
                    script: spec.script.clone(),
                    created_at: record.created_at.clone(),
                    stale: spec.backend == BackendKind::Cluster && listed_here(spec).is_none(),
                }
            })
            .collect();
        for j in listed.map(|(_, l)| l).into_iter().flatten() {
            if j.managed && !out.iter().any(|o| o.name == j.name) {
                out.push(JobSummary {
                    name: j.name,
                    kind: j.kind,
                    backend: "cluster".into(),
                    phase: j.phase,
                    reason: j.reason,
                    script: j.script,
                    created_at: j.created_at,
                    stale: false,
                });
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.name.cmp(&b.name)));
        Listing {
            jobs: out,
            cluster_problem,
        }
    }
}

/// Cluster code travels in ConfigMaps (sliced when large, see `cluster::chunks`), so the
/// project is capped well below what would flood the API server.
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
    Some(crate::auth::kube_client::cluster_source(
        &session, &namespace,
    ))
}

/// Packing options for a run: `targz` is the cap and its reason in tar.gz code mode; ConfigMap
/// mode is capped by what one ConfigMap holds.
fn pack_options(spec: &RunSpec, targz: (u64, &str)) -> PackOptions {
    let (max_bytes, limit_reason) = match spec.code_mode {
        CodeMode::Targz => targz,
        CodeMode::Configmap => (
            CONFIGMAP_MAX_BYTES,
            " for ConfigMap mode (a ConfigMap holds at most 1 MiB; code mode targz has no such limit)",
        ),
    };
    PackOptions {
        max_bytes,
        limit_reason: limit_reason.into(),
        entry_script: Some(spec.script.clone().into()),
    }
}

fn package_cluster(spec: &RunSpec, out: &Path) -> Result<artifacts::Archive> {
    let targz = (
        CLUSTER_MAX_BYTES,
        " for a cluster run (the code travels through the API server in ConfigMaps)",
    );
    artifacts::package(&spec.project_root, out, &pack_options(spec, targz))
}

/// The largest project (before compression) a cluster run uploads.
const CLUSTER_MAX_BYTES: u64 = 64 * 1024 * 1024;

fn package_for(spec: &RunSpec, out: &Path) -> Result<artifacts::Archive> {
    artifacts::package(
        &spec.project_root,
        out,
        &pack_options(spec, (artifacts::DEFAULT_MAX_BYTES, "")),
    )
}

/// A handle on one run.
#[derive(Debug, Clone)]
pub struct Job {
    dir: RunDir,
    record: RunRecord,
    backend: JobBackend,
}

impl Job {
    pub fn name(&self) -> &str {
        &self.record.spec.name
    }

    pub fn spec(&self) -> &RunSpec {
        &self.record.spec
    }

    /// Things the user should be told about this run, such as credentials left out of it.
    pub fn warnings(&self) -> Vec<String> {
        artifacts::withheld_warning(&self.record.withheld)
            .into_iter()
            .collect()
    }

    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    pub fn run_dir(&self) -> &Path {
        &self.dir.root
    }

    pub fn replica_names(&self) -> Vec<String> {
        self.record
            .spec
            .replicas()
            .iter()
            .map(|r| r.label())
            .collect()
    }

    pub fn status(&self) -> Result<JobStatus> {
        match &self.backend {
            JobBackend::Local(local) => local.status(&self.dir),
            JobBackend::Cluster(c) => cluster::ops::status(&*c.get()?, &self.dir, &self.record),
        }
    }

    /// All replicas' lines; with `follow`, until the job ends. A cluster job's logs come from
    /// its pods, or from the local copy once they are gone or the cluster is unreachable.
    pub fn logs(&self, follow: bool) -> LogStream {
        match &self.backend {
            JobBackend::Local(local) => {
                LogStream::Local(local.logs(&self.dir, self.replica_names(), follow))
            }
            JobBackend::Cluster(c) => {
                let replicas = cluster::ops::replicas(&self.record.spec);
                match c.get() {
                    Ok(backend) => {
                        let (jobs, ns) = cluster::ops::jobs_api(&backend, &self.record);
                        LogStream::Cluster(Box::new(ClusterLogStream::start(
                            backend,
                            jobs,
                            &ns,
                            self.name(),
                            &self.record.spec.run_id,
                            self.dir.clone(),
                            replicas,
                            follow,
                        )))
                    }
                    Err(_) => LogStream::Local(cluster::logs::local_copy(&self.dir, replicas)),
                }
            }
        }
    }

    /// Blocks until the job ends, `timeout` passes, or `interrupted` says to stop waiting.
    pub fn wait(
        &self,
        timeout: Option<Duration>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<JobStatus> {
        if let JobBackend::Cluster(c) = &self.backend {
            return cluster::ops::wait(&*c.get()?, &self.dir, &self.record, timeout, interrupted);
        }
        let start = Instant::now();
        loop {
            let status = self.status()?;
            if status.phase.is_terminal() {
                return Ok(status);
            }
            if let Some(limit) = timeout {
                if start.elapsed() >= limit {
                    return Err(Error::WaitTimeout {
                        name: self.name().to_string(),
                        seconds: limit.as_secs_f64(),
                        phase: status.phase.as_str().to_string(),
                    });
                }
            }
            if interrupted() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    pub fn cancel(&self) -> Result<JobStatus> {
        match &self.backend {
            JobBackend::Local(local) => local.cancel(&self.dir),
            JobBackend::Cluster(c) => cluster::ops::cancel(&*c.get()?, &self.dir, &self.record),
        }
    }

    /// Cancels the run if it is going and removes everything kflow kept for it (on a cluster:
    /// the job, and with it its pods and code ConfigMap).
    pub fn delete(self) -> Result<()> {
        match &self.backend {
            JobBackend::Local(_) => {
                self.cancel()?;
            }
            JobBackend::Cluster(c) => cluster::ops::delete_job(&*c.get()?, &self.record, false)?,
        }
        std::fs::remove_dir_all(&self.dir.root).map_err(Error::io("removing", &self.dir.root))
    }

    /// Runs the same spec and the same code again under the same name; a running job is
    /// cancelled first, as deleting and recreating a Kubeflow job would.
    pub fn restart(&self) -> Result<Job> {
        let local = match &self.backend {
            JobBackend::Local(local) => local,
            JobBackend::Cluster(c) => return self.restart_on_cluster(c),
        };
        self.cancel()?;
        let mut record = self.dir.read_record()?;
        local.reset(&self.dir, record.attempt)?;
        record.attempt += 1;
        record.spec.run_id = spec::random_id(16);
        let bytes = std::fs::metadata(self.dir.archive())
            .map(|m| m.len())
            .unwrap_or(0);
        let code = CodePayload::Elided {
            sha256: record.code_sha256.clone(),
            bytes,
        };
        record.manifest_yaml = manifest::build(&record.spec, &code, MpiApi::V1).to_yaml();
        self.dir.write_record(&record)?;
        let job = Job {
            dir: self.dir.clone(),
            record,
            backend: self.backend.clone(),
        };
        local.start(&job.dir, &job.replica_names())?;
        Ok(job)
    }

    /// Deletes the job on the cluster and creates it again from the stored spec and code, with
    /// a new run id; the old logs move to `attempts/<n>/`.
    fn restart_on_cluster(&self, handle: &ClusterHandle) -> Result<Job> {
        let backend = handle.get()?;
        let record = self.dir.read_record()?;
        let code = cluster::ops::code_bytes(&backend, &self.dir, &record)?;
        records::write_atomic(&self.dir.archive(), &code)?;
        cluster::ops::delete_job(&backend, &record, true)?;
        cluster::ops::archive_attempt(&self.dir, record.attempt)?;
        let mut spec = record.spec.clone();
        spec.run_id = spec::random_id(16);
        create_on_cluster(handle, &self.dir, spec, record.attempt + 1)
    }

    /// Spec, status, conditions, pods, events and the last log lines of each replica (the
    /// cluster-only parts are empty for a local run).
    pub fn describe(&self) -> Result<cluster::describe::Description> {
        match &self.backend {
            JobBackend::Local(local) => {
                let status = local.status(&self.dir)?;
                Ok(cluster::describe::local(
                    &self.dir,
                    &self.record,
                    status,
                    &self.replica_names(),
                ))
            }
            JobBackend::Cluster(c) => {
                cluster::describe::cluster(&*c.get()?, &self.dir, &self.record)
            }
        }
    }

    pub fn manifest_yaml(&self) -> &str {
        &self.record.manifest_yaml
    }
}
