//! kflow's cell semantics on top of a `CellRunner`: magics set session options, stage files,
//! preview manifests and manage jobs; the rest of a cell becomes a training job.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::magics::{self, CellPlan, Command};
use crate::messages::text_bundle;
use crate::options::KernelOptions;
use crate::runner::{
    CancelToken, CellOutcome, CellRunner, JobRequest, JobSummary, OutputSink, Script,
};

#[derive(Default)]
struct Session {
    options: KernelOptions,
    /// `%kflow_yaml` on its own line: the next code cell is previewed, not submitted.
    yaml_next: bool,
}

pub struct Executor {
    runner: Arc<dyn CellRunner>,
    /// The project folder (the notebook's folder unless `%kflow project=…`).
    project_root: PathBuf,
    session: Mutex<Session>,
}

impl Executor {
    pub fn new(runner: Arc<dyn CellRunner>, project_root: PathBuf) -> Self {
        Executor {
            runner,
            project_root,
            session: Mutex::new(Session::default()),
        }
    }

    pub fn project_root(&self) -> PathBuf {
        let s = self.session.lock();
        match s.ok().and_then(|s| s.options.project.clone()) {
            Some(p) if p.is_absolute() => p,
            Some(p) => self.project_root.join(p),
            None => self.project_root.clone(),
        }
    }

    pub fn job_names(&self) -> Vec<String> {
        self.runner
            .jobs()
            .map(|j| j.into_iter().map(|j| j.name).collect())
            .unwrap_or_default()
    }

    /// Sets one `%kflow` option (as `%kflow key=value` does).
    pub fn set_option(&self, key: &str, value: &str) -> Result<(), String> {
        let mut s = self.session.lock().unwrap_or_else(|e| e.into_inner());
        s.options.set(key, value)
    }

    pub fn options(&self) -> KernelOptions {
        let mut o = self
            .session
            .lock()
            .map(|s| s.options.clone())
            .unwrap_or_default();
        // The runner gets an absolute project folder, whatever the magic said.
        o.project = Some(self.project_root());
        o
    }

    fn last_job(&self) -> Result<String, String> {
        self.runner
            .jobs()?
            .pop()
            .map(|j| j.name)
            .ok_or_else(|| "no job yet in this kernel; name one".to_string())
    }

    /// Run one cell. Errors from magics become `Error` outcomes (shown as the cell's error).
    pub fn execute(
        &self,
        code: &str,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> CellOutcome {
        let plan = match magics::parse_cell(code) {
            Ok(p) => p,
            Err(e) => return CellOutcome::error("UsageError", e),
        };
        match plan {
            CellPlan::File { path, contents } => {
                // Written into the project (like IPython's %%writefile), so every following
                // job packages it, it survives a kernel restart and the user can see it.
                let target = self.project_root().join(&path);
                let written = target
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|_| std::fs::write(&target, contents));
                match written {
                    Ok(()) => {
                        sink.stdout(&format!(
                            "wrote {path} into the project; the following jobs include it\n"
                        ));
                        CellOutcome::Ok
                    }
                    Err(e) => CellOutcome::error(
                        "OSError",
                        format!("cannot write {}: {e}", target.display()),
                    ),
                }
            }
            CellPlan::CellRun {
                overrides,
                args,
                code,
            } => {
                let req = JobRequest {
                    script: Script::Cell(code),
                    options: self.options().merged(&overrides),
                    args,
                };
                self.runner.run(&req, sink, cancel)
            }
            CellPlan::Lines { commands, code } => {
                let mut preview = false;
                for c in commands {
                    if matches!(c, Command::Yaml) {
                        preview = true;
                        continue;
                    }
                    if let Err(e) = self.command(c, sink, cancel) {
                        return e;
                    }
                }
                let Some(code) = code else {
                    if preview {
                        if let Ok(mut s) = self.session.lock() {
                            s.yaml_next = true;
                        }
                        sink.stdout(
                            "the next cell's manifest will be shown instead of submitting it\n",
                        );
                    }
                    return CellOutcome::Ok;
                };
                let armed = self
                    .session
                    .lock()
                    .map(|mut s| std::mem::take(&mut s.yaml_next))
                    .unwrap_or(false);
                let req = JobRequest {
                    script: Script::Cell(code),
                    options: self.options(),
                    args: vec![],
                };
                if preview || armed {
                    return match self.runner.manifest_yaml(&req) {
                        Ok(y) => {
                            sink.stdout(&y);
                            CellOutcome::Ok
                        }
                        Err(e) => CellOutcome::error("InvalidRun", e),
                    };
                }
                self.runner.run(&req, sink, cancel)
            }
        }
    }

    fn command(
        &self,
        c: Command,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<(), CellOutcome> {
        let usage = |e: String| CellOutcome::error("UsageError", e);
        match c {
            Command::ShowOptions => {
                let s = self.options_summary();
                sink.result(text_bundle(&s));
            }
            Command::ResetOptions => {
                if let Ok(mut s) = self.session.lock() {
                    s.options = KernelOptions::default();
                }
                sink.result(text_bundle("(defaults)"));
            }
            Command::SetOptions(pairs) => {
                // A poisoned lock only means an earlier cell panicked; the options are intact.
                let mut s = self.session.lock().unwrap_or_else(|e| e.into_inner());
                for (k, v) in pairs {
                    s.options.set(&k, &v).map_err(usage)?;
                }
                let summary = s.options.summary();
                drop(s);
                sink.result(text_bundle(&summary));
            }
            Command::Run {
                script,
                overrides,
                args,
            } => {
                let req = JobRequest {
                    script: Script::File(script),
                    options: self.options().merged(&overrides),
                    args,
                };
                match self.runner.run(&req, sink, cancel) {
                    CellOutcome::Ok => {}
                    err => return Err(err),
                }
            }
            Command::Jobs => {
                let jobs = self
                    .runner
                    .jobs()
                    .map_err(|e| CellOutcome::error("JobError", e))?;
                sink.stdout(&jobs_table(&jobs));
            }
            Command::Logs(name) => {
                let name = match name {
                    Some(n) => n,
                    None => self.last_job().map_err(usage)?,
                };
                self.runner
                    .logs(&name, sink, cancel)
                    .map_err(|e| CellOutcome::error("JobError", e))?;
            }
            Command::Cancel(name) => {
                let name = match name {
                    Some(n) => n,
                    None => self.last_job().map_err(usage)?,
                };
                self.runner
                    .cancel(&name)
                    .map_err(|e| CellOutcome::error("JobError", e))?;
                sink.stdout(&format!("cancelled {name}\n"));
            }
            Command::Status(name) => {
                let name = match name {
                    Some(n) => n,
                    None => self.last_job().map_err(usage)?,
                };
                let j = self
                    .runner
                    .status(&name)
                    .map_err(|e| CellOutcome::error("JobError", e))?;
                let line = if j.detail.is_empty() {
                    format!("{}: {}", j.name, j.phase)
                } else {
                    format!("{}: {} ({})", j.name, j.phase, j.detail)
                };
                sink.result(text_bundle(&line));
            }
            Command::Help(name) => {
                sink.stdout(&format!("{}\n", magics::help(&name).unwrap_or("")));
            }
            Command::Yaml => {}
        }
        Ok(())
    }

    pub fn options_summary(&self) -> String {
        self.session
            .lock()
            .map(|s| s.options.summary())
            .unwrap_or_default()
    }
}

fn jobs_table(jobs: &[JobSummary]) -> String {
    if jobs.is_empty() {
        return "no jobs yet\n".into();
    }
    let w = jobs.iter().map(|j| j.name.len()).max().unwrap_or(4).max(4);
    let mut s = format!("{:<w$}  {:<10}  DETAIL\n", "NAME", "PHASE");
    for j in jobs {
        s.push_str(&format!("{:<w$}  {:<10}  {}\n", j.name, j.phase, j.detail));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    #[derive(Default)]
    struct Rec {
        out: String,
        results: Vec<String>,
    }
    impl OutputSink for Rec {
        fn stdout(&mut self, t: &str) {
            self.out.push_str(t)
        }
        fn stderr(&mut self, t: &str) {
            self.out.push_str(t)
        }
        fn status_line(&mut self, _: Option<&str>) {}
        fn result(&mut self, d: Map<String, Value>) {
            self.results.push(d["text/plain"].as_str().unwrap().into())
        }
        fn display(&mut self, _: Map<String, Value>) {}
    }

    #[derive(Default)]
    struct Fake {
        runs: Mutex<Vec<JobRequest>>,
    }
    impl CellRunner for Fake {
        fn run(&self, req: &JobRequest, sink: &mut dyn OutputSink, _: &CancelToken) -> CellOutcome {
            self.runs.lock().unwrap().push(req.clone());
            sink.stdout("ran\n");
            CellOutcome::Ok
        }
        fn manifest_yaml(&self, _: &JobRequest) -> Result<String, String> {
            Ok("kind: PyTorchJob\n".into())
        }
        fn jobs(&self) -> Result<Vec<JobSummary>, String> {
            Ok((0..self.runs.lock().unwrap().len())
                .map(|i| JobSummary {
                    name: format!("job-{i}"),
                    phase: "Succeeded".into(),
                    detail: String::new(),
                })
                .collect())
        }
        fn status(&self, name: &str) -> Result<JobSummary, String> {
            Ok(JobSummary {
                name: name.into(),
                phase: "Succeeded".into(),
                detail: String::new(),
            })
        }
        fn logs(&self, _: &str, sink: &mut dyn OutputSink, _: &CancelToken) -> Result<(), String> {
            sink.stdout("log\n");
            Ok(())
        }
        fn cancel(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn options_files_yaml_and_jobs() {
        let fake = Arc::new(Fake::default());
        let dir = tempfile::tempdir().unwrap();
        let ex = Executor::new(fake.clone(), dir.path().to_path_buf());
        let t = CancelToken::new();
        let mut r = Rec::default();
        assert_eq!(
            ex.execute("%kflow gpu=1 pip=rich", &mut r, &t),
            CellOutcome::Ok
        );
        assert_eq!(r.results, vec!["gpu=1 pip=rich"]);
        assert_eq!(
            ex.execute("%%kflow_file pkg/util.py\nX = 1\n", &mut r, &t),
            CellOutcome::Ok
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("pkg/util.py")).unwrap(),
            "X = 1\n"
        );
        assert_eq!(ex.execute("%kflow_yaml", &mut r, &t), CellOutcome::Ok);
        assert_eq!(ex.execute("print(1)", &mut r, &t), CellOutcome::Ok);
        assert!(r.out.contains("kind: PyTorchJob"));
        assert!(
            fake.runs.lock().unwrap().is_empty(),
            "previews never submit"
        );
        assert_eq!(
            ex.execute("%kflow workers=2\nprint(2)", &mut r, &t),
            CellOutcome::Ok
        );
        let runs = fake.runs.lock().unwrap().clone();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].options.gpu, Some(1));
        assert_eq!(runs[0].options.workers, Some(2));
        assert_eq!(runs[0].options.project, Some(dir.path().to_path_buf()));
        assert_eq!(runs[0].script, Script::Cell("print(2)\n".into()));
        r.results.clear();
        assert_eq!(ex.execute("%kflow_status", &mut r, &t), CellOutcome::Ok);
        assert_eq!(r.results, vec!["job-0: Succeeded"]);
        assert_eq!(
            ex.execute("%kflow_run train.py --gpu 2 -- --lr 1", &mut r, &t),
            CellOutcome::Ok
        );
        let last = fake.runs.lock().unwrap().last().unwrap().clone();
        assert_eq!(last.script, Script::File("train.py".into()));
        assert_eq!(last.options.gpu, Some(2));
        assert_eq!(last.args, vec!["--lr", "1"]);
        assert!(matches!(
            ex.execute("%kflow gpu=x", &mut r, &t),
            CellOutcome::Error { .. }
        ));
        ex.execute("%kflow_jobs", &mut r, &t);
        assert!(r.out.contains("job-1"));
    }
}
