//! The real runner: every cell is a training job through kflow-core's one flow (RunOptions ->
//! RunSpec -> package -> backend), exactly as the CLI and the Python API submit them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kflow_core::{Client, Context, Job, Launcher, Phase, Progress, RunOptions, Severity};

use crate::options::KernelOptions;
use crate::runner::{
    CancelToken, CellOutcome, CellRunner, JobRequest, JobSummary, OutputSink, Script,
};

/// How often the runner looks for new log lines and status changes.
const POLL: Duration = Duration::from_millis(50);
/// A job still pending after this long gets the updating status line (image pull, pip); quick
/// jobs never show one, so their output is only their logs.
const STATUS_AFTER: Duration = Duration::from_secs(1);

pub struct KflowRunner {
    client: Client,
    /// Jobs this kernel started, oldest first.
    jobs: Mutex<Vec<Job>>,
}

impl KflowRunner {
    /// `launcher` starts the local backend's supervisor (see kflow_core::Launcher).
    pub fn new(launcher: Launcher) -> Self {
        KflowRunner {
            client: Client::new(Context::from_process(), launcher),
            jobs: Mutex::new(Vec::new()),
        }
    }

    pub fn with_client(client: Client) -> Self {
        KflowRunner {
            client,
            jobs: Mutex::new(Vec::new()),
        }
    }

    fn job(&self, name: &str) -> Result<Job, String> {
        if let Some(j) = self
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.iter().find(|j| j.name() == name).cloned())
        {
            return Ok(j);
        }
        self.client.get(name).map_err(|e| e.to_string())
    }

    /// RunOptions for a request; for a cell, also the temporary cell file to remove once the
    /// project is packaged.
    fn run_options(&self, req: &JobRequest) -> Result<(RunOptions, Option<PathBuf>), String> {
        let project = req
            .options
            .project
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        let mut name = req.options.name.clone();
        let (script, temp) = match &req.script {
            Script::File(f) => (
                if f.is_absolute() {
                    f.clone()
                } else {
                    project.join(f)
                },
                None,
            ),
            Script::Cell(code) => {
                // At the project's top level, so the job imports the project's modules exactly
                // as a script there would (sys.path[0] is the script's folder). Hidden and
                // uniquely named, so it never meets a user's file; removed after packaging.
                let n = self.jobs.lock().map(|j| j.len()).unwrap_or(0) + 1;
                let id = &uuid::Uuid::new_v4().simple().to_string()[..5];
                let path = project.join(format!(".kflow-cell-{n}-{id}.py"));
                std::fs::write(&path, code)
                    .map_err(|e| format!("cannot write the cell to {}: {e}", path.display()))?;
                if name.is_none() {
                    name = Some(format!("cell-{n}-{id}"));
                }
                (path.clone(), Some(path))
            }
        };
        let mut opts = to_run_options(&req.options, script, project, &req.args)?;
        opts.name = name;
        Ok((opts, temp))
    }

    fn remember(&self, job: &Job) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.retain(|j| j.name() != job.name());
            jobs.push(job.clone());
        }
    }
}

fn remove_cell_file(temp: Option<PathBuf>) {
    if let Some(path) = temp {
        let _ = std::fs::remove_file(&path);
    }
}

pub fn to_run_options(
    o: &KernelOptions,
    script: PathBuf,
    project: PathBuf,
    args: &[String],
) -> Result<RunOptions, String> {
    fn parse<T>(what: &str, r: Result<T, kflow_core::Error>) -> Result<T, String> {
        r.map_err(|e| format!("{what}: {e}"))
    }
    Ok(RunOptions {
        script: Some(script),
        project_root: Some(project),
        name: o.name.clone(),
        kind: o
            .kind
            .as_deref()
            .map(|k| parse("kind", k.parse()))
            .transpose()?,
        image: o.image.clone(),
        gpu: o.gpu,
        cpu: o.cpu.clone(),
        memory: o.memory.clone(),
        workers: o.workers,
        pip: (!o.pip.is_empty()).then(|| o.pip.clone()),
        apt: (!o.apt.is_empty()).then(|| o.apt.clone()),
        env: (!o.env.is_empty()).then(|| {
            o.env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        }),
        args: (!args.is_empty()).then(|| args.to_vec()),
        namespace: o.namespace.clone(),
        template: o.template.clone(),
        requirements: o.requirements.clone(),
        code_mode: o
            .code_mode
            .as_deref()
            .map(|m| parse("code_mode", m.parse()))
            .transpose()?,
        backend: o
            .backend
            .as_deref()
            .map(|b| parse("backend", b.parse()))
            .transpose()?,
        ..Default::default()
    })
}

/// A pod log (and the local backend's) merges the job's stdout and stderr, so the stream is
/// chosen by kflow-core's line severity: warnings and errors (tracebacks, kflow's own warnings)
/// go to stderr, which notebooks highlight, the rest to stdout; ANSI codes are kept.
fn emit(sink: &mut dyn OutputSink, lines: &[kflow_core::LogLine], replicas: usize) {
    for l in lines {
        let mut text = l.render(replicas > 1);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        match l.severity() {
            Severity::Normal => sink.stdout(&text),
            Severity::Warning | Severity::Error => sink.stderr(&text),
        }
    }
}

fn status_text(job: &Job, s: &kflow_core::JobStatus) -> String {
    let mut t = format!(
        "{} {}: {}",
        phase_icon(s.phase),
        job.name(),
        s.phase.as_str()
    );
    if let Some(r) = &s.reason {
        t.push_str(&format!(" ({r})"));
    }
    t
}

fn phase_icon(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "⏳",
        Phase::Running => "▶",
        Phase::Succeeded => "✔",
        Phase::Failed => "✘",
    }
}

/// Follow a job to its end: logs into `sink`, status line while slow to start. Returns the
/// final status, or None when `cancel` fired first.
fn follow(
    job: &Job,
    sink: &mut dyn OutputSink,
    cancel: &CancelToken,
    show_status: bool,
) -> Result<Option<kflow_core::JobStatus>, String> {
    let replicas = job.replica_names().len();
    let start = Instant::now();
    let mut shown: Option<String> = None;
    let followed = job
        .follow(POLL, &mut || cancel.is_cancelled(), &mut |progress| {
            if let Progress::Lines(lines) = progress {
                emit(sink, lines, replicas);
            }
            if show_status && start.elapsed() >= STATUS_AFTER {
                if let Ok(s) = job.status() {
                    let t = status_text(job, &s);
                    if shown.as_deref() != Some(&t) {
                        sink.status_line(Some(&t));
                        shown = Some(t);
                    }
                }
            }
        })
        .map_err(|e| e.to_string())?;
    if let (Some(s), Some(_)) = (&followed, &shown) {
        sink.status_line(Some(&status_text(job, s)));
    }
    Ok(followed)
}

impl CellRunner for KflowRunner {
    fn run(
        &self,
        req: &JobRequest,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> CellOutcome {
        let (opts, temp) = match self.run_options(req) {
            Ok(x) => x,
            Err(e) => return CellOutcome::error("InvalidRun", e),
        };
        let submitted = self.client.submit(opts);
        // The archive holds the cell now; the project folder goes back to how it was.
        remove_cell_file(temp);
        let job = match submitted {
            Ok(j) => j,
            Err(e) => return CellOutcome::error("InvalidRun", e.to_string()),
        };
        self.remember(&job);
        for warning in job.warnings() {
            sink.stderr(&format!("kflow: warning: {warning}\n"));
        }
        match follow(&job, sink, cancel, true) {
            Ok(Some(s)) => match s.phase {
                Phase::Succeeded => CellOutcome::Ok,
                _ => {
                    let reason = s.reason.clone().unwrap_or_else(|| "Failed".into());
                    let message = s.message.clone().unwrap_or_default();
                    let detail = if message.is_empty() {
                        reason.clone()
                    } else {
                        format!("{reason}: {message}")
                    };
                    if reason == "Cancelled" {
                        CellOutcome::interrupted(&format!("job {} was cancelled", job.name()))
                    } else {
                        CellOutcome::error(
                            "JobFailed",
                            format!("job {} failed: {detail}", job.name()),
                        )
                    }
                }
            },
            Ok(None) => {
                // Interrupted: cancel the job, then show what it printed up to the end.
                let cancelled = job.cancel();
                let mut rest = job.logs(false);
                let replicas = job.replica_names().len();
                while let Ok(Some(lines)) = rest.poll() {
                    if lines.is_empty() {
                        break;
                    }
                    emit(sink, &lines, replicas);
                }
                match cancelled {
                    Ok(_) => CellOutcome::interrupted(&format!("job {} cancelled", job.name())),
                    Err(e) => CellOutcome::error(
                        "JobError",
                        format!("interrupted, but cancelling job {} failed: {e}", job.name()),
                    ),
                }
            }
            Err(e) => CellOutcome::error("JobError", format!("following job {}: {e}", job.name())),
        }
    }

    fn manifest_yaml(&self, req: &JobRequest) -> Result<String, String> {
        let (opts, temp) = self.run_options(req)?;
        let preview = self.client.preview(opts, false);
        remove_cell_file(temp);
        let preview = preview.map_err(|e| e.to_string())?;
        Ok(preview.to_yaml())
    }

    fn jobs(&self) -> Result<Vec<JobSummary>, String> {
        let jobs = self.jobs.lock().map_err(|_| "job table poisoned")?.clone();
        Ok(jobs.iter().map(summary).collect())
    }

    fn status(&self, name: &str) -> Result<JobSummary, String> {
        Ok(summary(&self.job(name)?))
    }

    fn logs(
        &self,
        name: &str,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<(), String> {
        let job = self.job(name)?;
        follow(&job, sink, cancel, false).map(|_| ())
    }

    fn cancel(&self, name: &str) -> Result<(), String> {
        self.job(name)?
            .cancel()
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn summary(job: &Job) -> JobSummary {
    match job.status() {
        Ok(s) => JobSummary {
            name: job.name().to_string(),
            phase: s.phase.as_str().to_string(),
            detail: [s.reason, s.message]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": "),
        },
        Err(e) => JobSummary {
            name: job.name().to_string(),
            phase: "Unknown".into(),
            detail: e.to_string(),
        },
    }
}

/// The supervisor entry for binaries that launch themselves as the local backend's supervisor
/// (the dev binary): `kflow_core::supervise` with this kernel's Python and context.
pub fn supervise(run_dir: &Path, python: &Path) -> Result<(), String> {
    kflow_core::supervise(run_dir, python, &Context::from_process()).map_err(|e| e.to_string())
}
