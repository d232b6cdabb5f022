//! Where jobs run: the `Backend` seam that the local and the cluster backend implement, and
//! the status and log types they share, so the surfaces show every run the same way. A new
//! backend is a new module implementing `Backend`, picked in `Client::backend_for`.

pub(crate) mod cluster;
pub(crate) mod description;
pub(crate) mod files;
pub(crate) mod local;
pub(crate) mod packaging;

use std::time::{Duration, Instant};

use crate::error::{Error, JobError, Result};
use crate::records::{RunDir, RunRecord};
use crate::spec::RunSpec;
pub(crate) use crate::status::{JobStatus, JobSummary, LogLine, Phase, ReplicaStatus};
use description::Description;

/// One run as a backend sees it: its folder on this machine and its record.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub dir: RunDir,
    pub record: RunRecord,
}

/// What `Client::list` gets from one backend.
#[derive(Debug, Default)]
pub(crate) struct BackendListing {
    pub jobs: Vec<JobSummary>,
    /// Why the backend could not give fresh phases (or jobs made elsewhere), if it could not.
    pub problem: Option<String>,
}

/// What every backend does with a run. `create` makes the run folder once its checks pass;
/// the caller (`Client`, `Job`) removes the folder when `create` fails and after `delete`.
pub(crate) trait Backend: std::fmt::Debug + Send + Sync {
    /// Packages the project (unless the run folder holds its archive already, as on restart),
    /// writes the run record and starts the run. Checks that can refuse come before anything
    /// is created.
    fn create(&self, dir: &RunDir, spec: RunSpec, attempt: u32) -> Result<RunRecord>;

    fn status(&self, run: &Run) -> Result<JobStatus>;

    /// All replicas' lines; with `follow`, until the run ends.
    fn logs(&self, run: &Run, follow: bool) -> LogStream;

    /// Blocks until the run ends, `timeout` passes, or `interrupted` says to stop waiting.
    fn wait(
        &self,
        run: &Run,
        timeout: Option<Duration>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<JobStatus> {
        let start = Instant::now();
        loop {
            let status = self.status(run)?;
            if status.phase.is_terminal() {
                return Ok(status);
            }
            if let Some(limit) = timeout {
                if start.elapsed() >= limit {
                    return Err(Error::Job(JobError::WaitTimeout {
                        name: run.record.spec.name.clone(),
                        seconds: limit.as_secs_f64(),
                        phase: status.phase.as_str().to_string(),
                    }));
                }
            }
            if interrupted() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cancel(&self, run: &Run) -> Result<JobStatus>;

    /// Cancels the run if it is going and removes what the backend holds of it.
    fn delete(&self, run: &Run) -> Result<()>;

    /// Starts the same spec and the same code again under the same name, with a new run id;
    /// the old logs stay readable under `attempts/<n>/`.
    fn restart(&self, run: &Run) -> Result<RunRecord>;

    fn describe(&self, run: &Run) -> Result<Description>;

    /// Runs `argv` (no shell) in a running replica, in its working directory.
    fn exec(&self, run: &Run, replica: &str, argv: &[String]) -> Result<files::ExecOutput>;

    /// Copies the folder `path` of a running replica (relative to its working directory) into
    /// `dest` on this machine, as it streams.
    fn copy_from(
        &self,
        run: &Run,
        replica: &str,
        path: &str,
        dest: &std::path::Path,
    ) -> Result<files::CopiedFiles>;

    /// Rows for the runs of this backend that this machine knows, and for the ones it finds
    /// elsewhere (made from another machine). `configured` says whether runs go to this backend
    /// by default, so a backend may look even when this machine has no runs of its own there.
    fn list(&self, known: Vec<Run>, configured: bool) -> BackendListing;
}

/// Where a backend's log lines come from.
pub(crate) trait LogSource: Iterator<Item = LogLine> + Send {
    fn poll(&mut self) -> Result<Option<Vec<LogLine>>>;
    fn poll_wait(&mut self, wait: Duration) -> Result<Option<Vec<LogLine>>>;
}

/// A job's log lines, from whichever backend runs it.
pub struct LogStream(Box<dyn LogSource>);

impl LogStream {
    pub(crate) fn new(source: impl LogSource + 'static) -> LogStream {
        LogStream(Box::new(source))
    }

    /// What is available now without waiting: `Ok(None)` at the end of the logs,
    /// `Ok(Some(empty))` when the job is still going and nothing new arrived.
    pub fn poll(&mut self) -> Result<Option<Vec<LogLine>>> {
        self.0.poll()
    }

    /// Like `poll`, but waits up to `wait` for the first line (the cluster's lines come over a
    /// channel and wake the waiter at once; the local backend's files are looked at every 30 ms).
    pub fn poll_wait(&mut self, wait: Duration) -> Result<Option<Vec<LogLine>>> {
        self.0.poll_wait(wait)
    }
}

impl Iterator for LogStream {
    type Item = LogLine;

    fn next(&mut self) -> Option<LogLine> {
        self.0.next()
    }
}
