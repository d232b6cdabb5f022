//! The one flow every surface uses: options -> RunSpec -> package -> manifests -> run record ->
//! backend; and the job handle: status, logs, wait, cancel, delete, restart, manifest.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::artifacts::{self, PackOptions, CONFIGMAP_MAX_BYTES};
use crate::backend::local::{Launcher, LocalBackend, LogStream};
use crate::backend::JobStatus;
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
}

/// A run checked and packaged but not submitted: what `kflow yaml` shows.
#[derive(Debug, Clone)]
pub struct Preview {
    pub spec: RunSpec,
    pub manifests: Manifests,
}

impl Client {
    pub fn new(ctx: Context, launcher: Launcher) -> Client {
        Client { ctx, local: LocalBackend { launcher } }
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
    pub fn preview(&self, opts: RunOptions) -> Result<Preview> {
        let spec = self.resolve(opts)?;
        let scratch = std::env::temp_dir().join(format!("kflow-preview-{}-{}", std::process::id(), spec.run_id));
        let result = package_for(&spec, &scratch.join("code.tar.gz"));
        let _ = std::fs::remove_dir_all(&scratch);
        let archive = result?;
        let manifests = manifest::build(&spec, &CodePayload::Elided { sha256: archive.sha256, bytes: archive.bytes }, MpiApi::V1);
        Ok(Preview { spec, manifests })
    }

    /// Checks, packages and starts a run. Nothing is left behind when any step fails.
    pub fn submit(&self, opts: RunOptions) -> Result<Job> {
        let spec = self.resolve(opts)?;
        self.submit_spec(spec)
    }

    pub fn submit_spec(&self, spec: RunSpec) -> Result<Job> {
        self.require_backend(spec.backend)?;
        let dir = RunDir::new(&self.ctx.dirs.runs(), &spec.name);
        if dir.root.exists() {
            return Err(Error::JobExists { name: spec.name.clone() });
        }
        let result = self.create(&dir, spec);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir.root);
        }
        result
    }

    fn create(&self, dir: &RunDir, spec: RunSpec) -> Result<Job> {
        std::fs::create_dir_all(&dir.root).map_err(Error::io("creating", &dir.root))?;
        let archive = package_for(&spec, &dir.archive())?;
        let manifests = manifest::build(&spec, &CodePayload::Elided { sha256: archive.sha256.clone(), bytes: archive.bytes }, MpiApi::V1);
        let record = RunRecord {
            manifest_yaml: manifests.to_yaml(),
            code_sha256: archive.sha256,
            created_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            attempt: 1,
            spec,
        };
        dir.write_record(&record)?;
        let job = Job { dir: dir.clone(), record, local: self.local.clone() };
        self.local.start(dir, &job.replica_names())?;
        Ok(job)
    }

    fn require_backend(&self, backend: BackendKind) -> Result<()> {
        match backend {
            BackendKind::Local => Ok(()),
            BackendKind::Cluster => Err(Error::Unsupported {
                backend: "cluster",
                action: "submit jobs",
                reason: "this version of kflow has no cluster connection yet. Fix: run with backend=\"local\" (the default), or unset KFLOW_BACKEND".into(),
            }),
        }
    }

    pub fn get(&self, name: &str) -> Result<Job> {
        let dir = RunDir::new(&self.ctx.dirs.runs(), name);
        if spec::validate::job_name(name).is_err() || !dir.exists() {
            return Err(Error::JobNotFound { name: name.to_string() });
        }
        let record = dir.read_record()?;
        Ok(Job { dir, record, local: self.local.clone() })
    }

    pub fn list(&self) -> Vec<JobSummary> {
        records::list(&self.ctx.dirs.runs())
            .into_iter()
            .map(|(dir, record)| {
                let job = Job { dir, record, local: self.local.clone() };
                let status = job.status().ok();
                let spec = &job.record.spec;
                JobSummary {
                    name: spec.name.clone(),
                    kind: spec.kind.to_string(),
                    backend: spec.backend.as_str().to_string(),
                    phase: status.as_ref().map(|s| s.phase.as_str()).unwrap_or("Unknown").to_string(),
                    reason: status.and_then(|s| s.reason),
                    script: spec.script.clone(),
                    created_at: job.record.created_at.clone(),
                }
            })
            .collect()
    }
}

fn package_for(spec: &RunSpec, out: &Path) -> Result<artifacts::Archive> {
    let opts = match spec.code_mode {
        CodeMode::Targz => PackOptions::default(),
        CodeMode::Configmap => PackOptions {
            max_bytes: CONFIGMAP_MAX_BYTES,
            limit_reason: " for ConfigMap mode (a ConfigMap holds at most 1 MiB; code mode targz has no such limit)".into(),
        },
    };
    artifacts::package(&spec.project_root, out, &opts)
}

/// A handle on one run.
#[derive(Debug, Clone)]
pub struct Job {
    dir: RunDir,
    record: RunRecord,
    local: LocalBackend,
}

impl Job {
    pub fn name(&self) -> &str {
        &self.record.spec.name
    }

    pub fn spec(&self) -> &RunSpec {
        &self.record.spec
    }

    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    pub fn run_dir(&self) -> &Path {
        &self.dir.root
    }

    pub fn replica_names(&self) -> Vec<String> {
        self.record.spec.replicas().iter().map(|r| r.label()).collect()
    }

    pub fn status(&self) -> Result<JobStatus> {
        self.local.status(&self.dir)
    }

    /// All replicas' lines; with `follow`, until the job ends.
    pub fn logs(&self, follow: bool) -> LogStream {
        self.local.logs(&self.dir, self.replica_names(), follow)
    }

    /// Blocks until the job ends, `timeout` passes, or `interrupted` says to stop waiting.
    pub fn wait(&self, timeout: Option<Duration>, interrupted: &mut dyn FnMut() -> bool) -> Result<JobStatus> {
        let start = Instant::now();
        loop {
            let status = self.status()?;
            if status.phase.is_terminal() {
                return Ok(status);
            }
            if let Some(limit) = timeout {
                if start.elapsed() >= limit {
                    return Err(Error::WaitTimeout { name: self.name().to_string(), seconds: limit.as_secs_f64(), phase: status.phase.as_str().to_string() });
                }
            }
            if interrupted() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    pub fn cancel(&self) -> Result<JobStatus> {
        self.local.cancel(&self.dir)
    }

    /// Cancels the run if it is going and removes everything kflow kept for it.
    pub fn delete(self) -> Result<()> {
        self.cancel()?;
        std::fs::remove_dir_all(&self.dir.root).map_err(Error::io("removing", &self.dir.root))
    }

    /// Runs the same spec and the same code again under the same name; a running job is
    /// cancelled first, as deleting and recreating a Kubeflow job would.
    pub fn restart(&self) -> Result<Job> {
        self.cancel()?;
        let mut record = self.dir.read_record()?;
        self.local.reset(&self.dir, record.attempt)?;
        record.attempt += 1;
        record.spec.run_id = spec::random_id(16);
        let bytes = std::fs::metadata(self.dir.archive()).map(|m| m.len()).unwrap_or(0);
        let code = CodePayload::Elided { sha256: record.code_sha256.clone(), bytes };
        record.manifest_yaml = manifest::build(&record.spec, &code, MpiApi::V1).to_yaml();
        self.dir.write_record(&record)?;
        let job = Job { dir: self.dir.clone(), record, local: self.local.clone() };
        self.local.start(&job.dir, &job.replica_names())?;
        Ok(job)
    }

    pub fn manifest_yaml(&self) -> &str {
        &self.record.manifest_yaml
    }

}
