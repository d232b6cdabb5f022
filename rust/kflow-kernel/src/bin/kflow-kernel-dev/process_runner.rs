//! A plain runner: each job is `python -u SCRIPT ARGS` on this machine, in the project folder.
//! No packaging, no venv, no manifest. It exists to exercise the protocol and the cell
//! semantics quickly and without kflow-core (dev binary, tests); `KflowRunner` is the real one.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use kflow_kernel::runner::{
    CancelToken, CellOutcome, CellRunner, JobRequest, JobSummary, OutputSink, Script,
};

struct Job {
    name: String,
    phase: String,
    detail: String,
    log: String,
    child: Option<Child>,
}

pub struct ProcessRunner {
    python: PathBuf,
    jobs: Mutex<Vec<Arc<Mutex<Job>>>>,
}

impl ProcessRunner {
    pub fn new(python: PathBuf) -> Self {
        ProcessRunner {
            python,
            jobs: Mutex::new(Vec::new()),
        }
    }

    fn find(&self, name: &str) -> Result<Arc<Mutex<Job>>, String> {
        let jobs = self.jobs.lock().map_err(|_| "job table poisoned")?;
        jobs.iter()
            .find(|j| j.lock().map(|j| j.name == name).unwrap_or(false))
            .cloned()
            .ok_or_else(|| format!("no job named {name}"))
    }
}

fn pump<R: Read + Send + 'static>(r: R, err: bool, tx: mpsc::Sender<(bool, String)>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx
                        .send((err, String::from_utf8_lossy(&buf).into_owned()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
}

impl CellRunner for ProcessRunner {
    fn run(
        &self,
        req: &JobRequest,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> CellOutcome {
        let project = req
            .options
            .project
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        let n = self.jobs.lock().map(|j| j.len()).unwrap_or(0) + 1;
        let name = req
            .options
            .name
            .clone()
            .unwrap_or_else(|| format!("cell-{n}"));
        let stage = std::env::temp_dir().join(format!("kflow-kernel-{}", uuid::Uuid::new_v4()));
        let staged = (|| -> std::io::Result<PathBuf> {
            std::fs::create_dir_all(&stage)?;
            Ok(match &req.script {
                Script::Cell(code) => {
                    let p = stage.join("__cell__.py");
                    std::fs::write(&p, code)?;
                    p
                }
                Script::File(f) => project.join(f),
            })
        })();
        let script = match staged {
            Ok(s) if s.exists() => s,
            Ok(s) => {
                return CellOutcome::error(
                    "InvalidRun",
                    format!("script {} not found", s.display()),
                )
            }
            Err(e) => {
                return CellOutcome::error("InvalidRun", format!("cannot stage the job: {e}"))
            }
        };
        let mut cmd = Command::new(&self.python);
        cmd.arg("-u")
            .arg(&script)
            .args(&req.args)
            .current_dir(&project);
        // The project's modules import as they would from the job's workspace.
        cmd.env("PYTHONPATH", &project).envs(&req.options.env);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return CellOutcome::error(
                    "JobFailed",
                    format!("cannot start {}: {e}", self.python.display()),
                )
            }
        };
        let (tx, rx) = mpsc::channel();
        if let Some(o) = child.stdout.take() {
            pump(o, false, tx.clone());
        }
        if let Some(e) = child.stderr.take() {
            pump(e, true, tx.clone());
        }
        drop(tx);
        let job = Arc::new(Mutex::new(Job {
            name: name.clone(),
            phase: "Running".into(),
            detail: String::new(),
            log: String::new(),
            child: Some(child),
        }));
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.push(job.clone());
        }
        let mut cancelled = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((err, line)) => {
                    if err {
                        sink.stderr(&line)
                    } else {
                        sink.stdout(&line)
                    }
                    if let Ok(mut j) = job.lock() {
                        j.log.push_str(&line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if cancel.is_cancelled() && !cancelled {
                cancelled = true;
                if let Ok(mut j) = job.lock() {
                    if let Some(c) = j.child.as_mut() {
                        let _ = c.kill();
                    }
                }
            }
        }
        let status = job
            .lock()
            .ok()
            .and_then(|mut j| j.child.take())
            .map(|mut c| c.wait());
        let _ = std::fs::remove_dir_all(&stage);
        let mut j = match job.lock() {
            Ok(j) => j,
            Err(_) => return CellOutcome::error("KernelError", "job table poisoned"),
        };
        if cancelled || j.phase == "Cancelled" {
            j.phase = "Cancelled".into();
            return CellOutcome::interrupted(&format!("job {name} cancelled"));
        }
        match status {
            Some(Ok(s)) if s.success() => {
                j.phase = "Succeeded".into();
                CellOutcome::Ok
            }
            Some(Ok(s)) => {
                j.phase = "Failed".into();
                j.detail = format!("exit code {}", s.code().unwrap_or(-1));
                CellOutcome::error("JobFailed", format!("job {name} failed: {}", j.detail))
            }
            _ => {
                j.phase = "Failed".into();
                CellOutcome::error("JobFailed", format!("job {name}: lost the process"))
            }
        }
    }

    fn manifest_yaml(&self, req: &JobRequest) -> Result<String, String> {
        // No manifests without kflow-core: a stand-in so previews are testable.
        Ok(format!(
            "# process runner: no manifest\nscript: {:?}\noptions: {}\n",
            req.script,
            req.options.summary()
        ))
    }

    fn jobs(&self) -> Result<Vec<JobSummary>, String> {
        let jobs = self.jobs.lock().map_err(|_| "job table poisoned")?;
        Ok(jobs
            .iter()
            .filter_map(|j| {
                j.lock().ok().map(|j| JobSummary {
                    name: j.name.clone(),
                    phase: j.phase.clone(),
                    detail: j.detail.clone(),
                })
            })
            .collect())
    }

    fn status(&self, name: &str) -> Result<JobSummary, String> {
        let j = self.find(name)?;
        let j = j.lock().map_err(|_| "job poisoned")?;
        Ok(JobSummary {
            name: j.name.clone(),
            phase: j.phase.clone(),
            detail: j.detail.clone(),
        })
    }

    fn logs(
        &self,
        name: &str,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<(), String> {
        let job = self.find(name)?;
        let mut at = 0;
        loop {
            let (chunk, running) = {
                let j = job.lock().map_err(|_| "job poisoned")?;
                (j.log[at..].to_string(), j.phase == "Running")
            };
            at += chunk.len();
            if !chunk.is_empty() {
                sink.stdout(&chunk);
            }
            if !running || cancel.sleep(Duration::from_millis(100)) {
                return Ok(());
            }
        }
    }

    fn cancel(&self, name: &str) -> Result<(), String> {
        let job = self.find(name)?;
        let mut j = job.lock().map_err(|_| "job poisoned")?;
        if j.phase == "Running" {
            j.phase = "Cancelled".into();
            if let Some(c) = j.child.as_mut() {
                let _ = c.kill();
            }
        }
        Ok(())
    }
}
