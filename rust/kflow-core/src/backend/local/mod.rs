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
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub use logs::LogStream;
pub use supervisor::supervise;

use crate::backend::{JobStatus, Phase};
use crate::error::{Error, Result};
use crate::records::RunDir;

/// How to start a supervisor process: a program and its leading arguments; the run folder is
/// appended. The Python package passes `[sys.executable, "-m", "kflow._supervisor"]`.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone)]
pub struct LocalBackend {
    pub launcher: Launcher,
}

impl LocalBackend {
    /// Marks the run pending and starts its supervisor, detached from the caller.
    pub fn start(&self, dir: &RunDir, replicas: &[String]) -> Result<()> {
        let reason = "Starting";
        let _ = std::fs::remove_file(dir.cancel_marker());
        state::write(dir, &state::pending(replicas, reason))?;
        let Some((program, args)) = self.launcher.command.split_first() else {
            return Err(Error::Unsupported {
                backend: "local",
                action: "start jobs",
                reason: "no supervisor command configured".into(),
            });
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
            .map_err(|source| Error::Spawn {
                what: format!("the local job supervisor ({})", program.to_string_lossy()),
                fix: "check that the Python interpreter running kflow still exists".into(),
                source,
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

    pub fn status(&self, dir: &RunDir) -> Result<JobStatus> {
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

    pub fn logs(&self, dir: &RunDir, replicas: Vec<String>, follow: bool) -> LogStream {
        LogStream::new(dir.clone(), replicas, follow)
    }

    /// Ends the run: asks the supervisor, and if it does not finish in time (say it is stuck in a
    /// pip install), ends its process group and every replica group itself.
    pub fn cancel(&self, dir: &RunDir) -> Result<JobStatus> {
        let status = self.status(dir)?;
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
            let status = self.status(dir)?;
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
    pub fn reset(&self, dir: &RunDir, attempt: u32) -> Result<()> {
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
