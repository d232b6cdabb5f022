//! What the kernel needs from "something that runs jobs": the seam between the Jupyter side
//! (protocol, magics) and kflow-core. Kept synchronous on purpose: a runner blocks a worker
//! thread while it follows a job, so the async socket loops never wait on it.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::options::KernelOptions;

/// Where a job's script comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// The cell's text is the script (written into the packaged project as a file).
    Cell(String),
    /// A file of the project (`%kflow_run train.py`), relative to the project root.
    File(PathBuf),
}

/// Everything one submission needs, already resolved from magics and the session's options.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub script: Script,
    pub options: KernelOptions,
    pub args: Vec<String>,
}

/// How a cell ended; the kernel turns this into the execute_reply.
#[derive(Debug, Clone, PartialEq)]
pub enum CellOutcome {
    Ok,
    Error {
        ename: String,
        evalue: String,
        traceback: Vec<String>,
    },
}

impl CellOutcome {
    pub fn error(ename: &str, evalue: impl Into<String>) -> Self {
        let evalue = evalue.into();
        CellOutcome::Error {
            ename: ename.to_string(),
            traceback: vec![format!("\x1b[0;31m{ename}\x1b[0m: {evalue}")],
            evalue,
        }
    }

    pub fn interrupted(what: &str) -> Self {
        Self::error("KeyboardInterrupt", what)
    }
}

/// Output of a cell. The kernel's implementation batches stream text (~100 ms) before it goes
/// to iopub, so a runner may call `stdout` once per log line without flooding clients.
pub trait OutputSink: Send {
    fn stdout(&mut self, text: &str);
    fn stderr(&mut self, text: &str);
    /// The one updating line shown while a job is pending (pod phase, image pull). `None`
    /// removes it.
    fn status_line(&mut self, text: Option<&str>);
    /// An execute_result (the cell's value), e.g. a magic's summary.
    fn result(&mut self, data: Map<String, Value>);
    fn display(&mut self, data: Map<String, Value>);
}

/// Interrupt signal for a running cell, set from the control channel's interrupt_request.
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        let (lock, cv) = &*self.inner;
        if let Ok(mut c) = lock.lock() {
            *c = true;
        }
        cv.notify_all();
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.0.lock().map(|c| *c).unwrap_or(true)
    }

    /// Sleep up to `d`, waking early on cancel. Returns true when cancelled.
    pub fn sleep(&self, d: Duration) -> bool {
        let (lock, cv) = &*self.inner;
        let Ok(guard) = lock.lock() else { return true };
        match cv.wait_timeout_while(guard, d, |c| !*c) {
            Ok((g, _)) => *g,
            Err(_) => true,
        }
    }
}

/// A short view of a job for `%kflow_jobs` / `%kflow_status`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    pub name: String,
    pub phase: String,
    pub detail: String,
}

/// The jobs side of the kernel. Errors are user-facing strings (they end up in an `error`
/// output), since each implementation has its own error type.
pub trait CellRunner: Send + Sync {
    /// Submit the job, stream its logs into `sink` until it ends (or `cancel` fires, which
    /// must cancel the job) and report the outcome: a failed job is an `Error` whose evalue
    /// carries the failure reason.
    fn run(&self, req: &JobRequest, sink: &mut dyn OutputSink, cancel: &CancelToken)
        -> CellOutcome;
    /// The manifest the request would submit, as YAML, without submitting.
    fn manifest_yaml(&self, req: &JobRequest) -> Result<String, String>;
    /// Jobs this kernel knows of, newest last.
    fn jobs(&self) -> Result<Vec<JobSummary>, String>;
    fn status(&self, name: &str) -> Result<JobSummary, String>;
    /// Stream a job's logs (following while it runs) until it ends or `cancel` fires; a cancel
    /// here only stops following, it does not cancel the job.
    fn logs(
        &self,
        name: &str,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<(), String>;
    fn cancel(&self, name: &str) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn cancel_wakes_sleepers() {
        let t = CancelToken::new();
        let t2 = t.clone();
        let start = Instant::now();
        let h = std::thread::spawn(move || t2.sleep(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        t.cancel();
        assert!(h.join().unwrap());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(!CancelToken::new().sleep(Duration::from_millis(1)));
    }
}
