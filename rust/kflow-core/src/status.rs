//! What the surfaces show of a run, whichever backend runs it: its phase and status, its log
//! lines, and its row in a listing.

use serde::{Deserialize, Serialize};

use crate::records::RunRecord;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Phase {
    /// Accepted but not started yet: queued, scheduling, pulling images, installing dependencies.
    #[default]
    Pending,
    /// Started and not yet finished.
    Running,
    /// Finished, every replica with exit code 0.
    Succeeded,
    /// Finished with an error, or cancelled.
    Failed,
}

impl Phase {
    /// Whether the run has ended (succeeded or failed) and will not change phase again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }

    /// The exit code the CLI gives for a job that ended in this phase.
    pub fn exit_code(self) -> i32 {
        match self {
            Phase::Succeeded => 0,
            _ => 1,
        }
    }

    /// The phase's name as shown and stored, e.g. `"Running"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
}

/// The state of one replica (process) of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// `master-0`, `worker-1`, …
    pub name: String,
    /// Where this replica is in its life.
    pub phase: Phase,
    /// The process's exit code, once it has ended.
    pub exit_code: Option<i32>,
}

/// A run's state as its backend reports it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The run's phase as a whole.
    pub phase: Phase,
    /// A one-word cause, as Kubernetes gives them: `InstallingDependencies`, `Error`, `Cancelled`…
    pub reason: Option<String>,
    /// A human-readable explanation of the phase or reason, when the backend gives one.
    pub message: Option<String>,
    /// Each replica's state.
    pub replicas: Vec<ReplicaStatus>,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// When the run ended (RFC 3339), once it has.
    pub finished_at: Option<String>,
}

/// One line of a run's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The replica that printed it, e.g. `worker-1`.
    pub replica: String,
    /// The line, without its newline.
    pub text: String,
}

/// How a log line should stand out: errors and warnings are highlighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// An ordinary line.
    Normal,
    /// A warning or deprecation notice.
    Warning,
    /// An error, exception, traceback or kill.
    Error,
}

impl LogLine {
    /// `[worker-1] text` when the job has several replicas, the bare text otherwise.
    pub fn render(&self, prefixed: bool) -> String {
        if prefixed {
            format!("[{}] {}", self.replica, self.text)
        } else {
            self.text.clone()
        }
    }

    /// How the line should stand out, guessed from words in its text.
    pub fn severity(&self) -> Severity {
        let lower = self.text.to_ascii_lowercase();
        const ERROR_MARKS: [&str; 5] = [
            "error",
            "traceback (most recent call last)",
            "exception",
            "fatal",
            "killed",
        ];
        if ERROR_MARKS.iter().any(|m| lower.contains(m)) {
            Severity::Error
        } else if lower.contains("warning") || lower.contains("warn:") || lower.contains("deprecat")
        {
            Severity::Warning
        } else {
            Severity::Normal
        }
    }
}

/// A run as `kflow jobs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    /// The run's name.
    pub name: String,
    /// The job kind, e.g. `PyTorchJob`.
    pub kind: String,
    /// The backend it runs on: `local` or `cluster`.
    pub backend: String,
    /// Its phase, as [`Phase::as_str`] names it.
    pub phase: String,
    /// A one-word cause of the phase, when there is one.
    pub reason: Option<String>,
    /// The script it runs.
    pub script: String,
    /// When it was submitted (RFC 3339).
    pub created_at: String,
    /// The phase is the last one this machine saw, not a fresh reading from the cluster.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

impl JobSummary {
    /// The row of a run this machine knows, with the phase its backend gives.
    pub(crate) fn of_record(
        record: &RunRecord,
        phase: String,
        reason: Option<String>,
    ) -> JobSummary {
        let spec = &record.spec;
        JobSummary {
            name: spec.name.clone(),
            kind: spec.kind.to_string(),
            backend: spec.backend.as_str().to_string(),
            phase,
            reason,
            script: spec.script.clone(),
            created_at: record.created_at.clone(),
            stale: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_and_prefix() {
        let line = |t: &str| LogLine {
            replica: "worker-1".into(),
            text: t.into(),
        };
        assert_eq!(
            line("RuntimeError: CUDA out of memory").severity(),
            Severity::Error
        );
        assert_eq!(
            line("UserWarning: deprecated").severity(),
            Severity::Warning
        );
        assert_eq!(line("epoch 1 loss 0.3").severity(), Severity::Normal);
        assert_eq!(line("hi").render(true), "[worker-1] hi");
        assert_eq!(line("hi").render(false), "hi");
    }
}
