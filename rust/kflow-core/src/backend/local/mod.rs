//! The local backend: runs a job on this machine with the same packaging, the same startup
//! chain and the same operator environment as on a cluster, so a first run needs no cluster and
//! tests exercise the real path.

mod env;
mod logs;
mod state;
mod supervisor;
mod venv;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub(crate) use logs::FileLogs;

use crate::backend::description::{tail_file, Description, TAIL_LINES};
use crate::backend::files::{self, CopiedFiles, ExecOutput};
use crate::backend::packaging::{self, Destination};
use crate::backend::{Backend, BackendListing, JobStatus, JobSummary, LogStream, Phase, Run};
use crate::error::{Error, JobError, Result, SystemError};
use crate::manifest::MpiApi;
use crate::records::{self, RunDir, RunRecord};
use crate::spec::{self, Context, RunSpec};

/// How to start a supervisor process: a program and its leading arguments; the run folder is
/// appended. The Python package passes `[sys.executable, "-m", "kflow._supervisor"]`.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program and its leading arguments.
    pub command: Vec<OsString>,
}

/// The local backend's supervisor, run by the process a `Launcher` starts: runs the replicas of
/// the run in `run_dir` under `python` (dependency environments cached in the context's cache
/// folder) until they end, and records how each ended.
pub fn supervise(run_dir: &Path, python: &Path, ctx: &Context) -> Result<()> {
    let dir = RunDir {
        root: run_dir.to_path_buf(),
    };
    supervisor::supervise(&dir, python, &ctx.dirs.cache)
}

/// Runs jobs as supervised process groups on this machine.
#[derive(Debug, Clone)]
pub(crate) struct LocalBackend {
    pub launcher: Launcher,
}

/// `master-0`, `worker-1`, …: the replicas of a run, as its log files are named.
fn replica_names(spec: &RunSpec) -> Vec<String> {
    spec.replicas().iter().map(|r| r.label()).collect()
}

impl Backend for LocalBackend {
    fn create(&self, dir: &RunDir, spec: RunSpec, attempt: u32) -> Result<RunRecord> {
        std::fs::create_dir_all(&dir.root).map_err(Error::io("creating", &dir.root))?;
        let archive = packaging::package(&spec, &dir.archive(), Destination::Local)?;
        let manifests =
            packaging::manifests_without_code(&spec, &archive.sha256, archive.bytes, 1, MpiApi::V1);
        let record = RunRecord {
            manifest_yaml: manifests.to_yaml(),
            code_sha256: archive.sha256.clone(),
            created_at: records::now(),
            attempt,
            spec,
            withheld: archive.withheld.clone(),
            foreign_replicas: None,
        };
        dir.write_record(&record)?;
        self.start(dir, &replica_names(&record.spec))?;
        Ok(record)
    }

    fn status(&self, run: &Run) -> Result<JobStatus> {
        self.status_of(&run.dir)
    }

    fn logs(&self, run: &Run, follow: bool) -> LogStream {
        LogStream::new(FileLogs::new(
            run.dir.clone(),
            replica_names(&run.record.spec),
            follow,
        ))
    }

    fn cancel(&self, run: &Run) -> Result<JobStatus> {
        self.cancel_dir(&run.dir)
    }

    fn delete(&self, run: &Run) -> Result<()> {
        self.cancel_dir(&run.dir).map(|_| ())
    }

    /// A running job is cancelled first, as deleting and recreating a Kubeflow job would.
    fn restart(&self, run: &Run) -> Result<RunRecord> {
        self.cancel_dir(&run.dir)?;
        let mut record = run.dir.read_record()?;
        self.reset(&run.dir, record.attempt)?;
        record.attempt += 1;
        record.spec.run_id = spec::random_id(16);
        let bytes = std::fs::metadata(run.dir.archive())
            .map(|m| m.len())
            .unwrap_or(0);
        record.manifest_yaml = packaging::manifests_without_code(
            &record.spec,
            &record.code_sha256,
            bytes,
            1,
            MpiApi::V1,
        )
        .to_yaml();
        run.dir.write_record(&record)?;
        self.start(&run.dir, &replica_names(&record.spec))?;
        Ok(record)
    }

    /// Spec, status and the last lines of each replica (no pods or events here).
    fn describe(&self, run: &Run) -> Result<Description> {
        let status = self.status_of(&run.dir)?;
        let logs = replica_names(&run.record.spec)
            .into_iter()
            .map(|r| {
                let tail = tail_file(&run.dir.log_file(&r), TAIL_LINES);
                (r, tail)
            })
            .collect();
        Ok(Description::of_record(&run.record, status, logs))
    }

    /// In the run's workspace, which every replica of a local run shares.
    fn exec(&self, run: &Run, replica: &str, argv: &[String]) -> Result<ExecOutput> {
        self.check_running(run, replica)?;
        files::local_exec(&run.dir.workspace(), &run.record.spec.env, argv).map_err(|e| {
            Error::Job(JobError::Exec {
                name: run.record.spec.name.clone(),
                replica: replica.to_string(),
                command: argv[0].clone(),
                problem: e.to_string(),
            })
        })
    }

    fn copy_from(&self, run: &Run, replica: &str, path: &str, dest: &Path) -> Result<CopiedFiles> {
        self.check_running(run, replica)?;
        files::local_copy(&run.dir.workspace().join(path), dest).map_err(|e| {
            Error::Job(JobError::Exec {
                name: run.record.spec.name.clone(),
                replica: replica.to_string(),
                command: format!("copying {path}"),
                problem: e.to_string(),
            })
        })
    }

    fn list(&self, known: Vec<Run>, _configured: bool) -> BackendListing {
        let jobs = known
            .iter()
            .map(|run| {
                let (phase, reason) = match self.status_of(&run.dir) {
                    Ok(s) => (s.phase.as_str().to_string(), s.reason),
                    Err(_) => ("Unknown".to_string(), None),
                };
                JobSummary::of_record(&run.record, phase, reason)
            })
            .collect();
        BackendListing {
            jobs,
            problem: None,
        }
    }
}

impl LocalBackend {
    fn check_running(&self, run: &Run, replica: &str) -> Result<()> {
        let status = self.status_of(&run.dir)?;
        let phase = status
            .replicas
            .iter()
            .find(|r| r.name == replica)
            .map(|r| r.phase)
            .unwrap_or(status.phase);
        if phase == Phase::Running {
            return Ok(());
        }
        Err(Error::Job(JobError::ReplicaNotRunning {
            name: run.record.spec.name.clone(),
            replica: replica.to_string(),
            phase: phase.as_str().to_string(),
        }))
    }

    /// Marks the run pending and starts its supervisor, detached from the caller.
    fn start(&self, dir: &RunDir, replicas: &[String]) -> Result<()> {
        let reason = "Starting";
        let _ = std::fs::remove_file(dir.cancel_marker());
        state::write(dir, &state::pending(replicas, reason))?;
        let Some((program, args)) = self.launcher.command.split_first() else {
            return Err(Error::System(SystemError::Unsupported {
                backend: "local",
                action: "start jobs",
                reason: "no supervisor command configured".into(),
            }));
        };
        let log_path = dir.supervisor_log();
        let log = std::fs::File::create(&log_path).map_err(Error::io("creating", &log_path))?;
        let log_err = log.try_clone().map_err(Error::io("opening", &log_path))?;
        let mut child = Command::new(program)
            .args(args)
            .arg(&dir.root)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Out of the terminal's process group: Ctrl-C in the submitting shell must not kill
            // the run behind the user's back; kflow asks and cancels explicitly.
            .process_group(0)
            .spawn()
            .map_err(|source| {
                Error::System(SystemError::Spawn {
                    what: format!("the local job supervisor ({})", program.to_string_lossy()),
                    fix: "check that the Python interpreter running kflow still exists".into(),
                    source,
                })
            })?;
        let pid = child.id();
        let mut st = state::read(dir)?;
        if st.supervisor_pid.is_none() {
            st.supervisor_pid = Some(pid);
            state::write(dir, &st)?;
        }
        // Reap it when it ends, so a finished supervisor never looks alive as a zombie.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(())
    }

    fn status_of(&self, dir: &RunDir) -> Result<JobStatus> {
        let mut st = state::read(dir)?;
        if !st.status.phase.is_terminal() {
            if let Some(pid) = st.supervisor_pid {
                if !state::is_alive(pid) {
                    // Re-read: the supervisor may have written its final state just before exiting.
                    st = state::read(dir)?;
                    if !st.status.phase.is_terminal() {
                        st.status.phase = Phase::Failed;
                        st.status.reason = Some("Lost".into());
                        st.status.message = Some(format!(
                            "the local supervisor (pid {pid}) ended unexpectedly; its output is in {}",
                            dir.supervisor_log().display()
                        ));
                    }
                }
            }
        }
        Ok(st.status)
    }

    /// Ends the run: asks the supervisor, and if it does not finish in time (say it is stuck in a
    /// pip install), ends its process group and every replica group itself.
    fn cancel_dir(&self, dir: &RunDir) -> Result<JobStatus> {
        let status = self.status_of(dir)?;
        if status.phase.is_terminal() {
            return Ok(status);
        }
        std::fs::write(dir.cancel_marker(), b"")
            .map_err(Error::io("writing", dir.cancel_marker()))?;
        let st = state::read(dir)?;
        if let Some(pid) = st.supervisor_pid {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline {
            let status = self.status_of(dir)?;
            if status.phase.is_terminal() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let mut st = state::read(dir)?;
        let mut groups = st.replica_pgids.clone();
        groups.extend(st.supervisor_pid.map(|p| p as i32));
        supervisor::signal_groups(&groups, Signal::SIGKILL);
        st.status.phase = Phase::Failed;
        st.status.reason = Some("Cancelled".into());
        st.status.message = Some("the job was cancelled (its processes were killed)".into());
        st.status.finished_at = Some(state::now());
        for replica in &mut st.status.replicas {
            if !replica.phase.is_terminal() {
                replica.phase = Phase::Failed;
            }
        }
        state::write(dir, &st)?;
        Ok(st.status)
    }

    /// Clears a finished run's results so it can start again from its stored code. The old
    /// logs move to `attempts/<n>/`, where they stay readable.
    fn reset(&self, dir: &RunDir, attempt: u32) -> Result<()> {
        let previous = dir.root.join("attempts").join(attempt.to_string());
        std::fs::create_dir_all(&previous).map_err(Error::io("creating", &previous))?;
        for path in [dir.logs(), dir.state_file(), dir.supervisor_log()] {
            if path.exists() {
                let target = previous.join(path.file_name().unwrap_or_default());
                std::fs::rename(&path, &target).map_err(Error::io("moving", &path))?;
            }
        }
        // A fresh workspace, as a new pod would have.
        let workspace = dir.workspace();
        if workspace.exists() {
            std::fs::remove_dir_all(&workspace).map_err(Error::io("removing", &workspace))?;
        }
        Ok(())
    }
}
