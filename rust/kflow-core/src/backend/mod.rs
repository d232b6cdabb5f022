//! Where jobs run. The status and log types are shared by every backend so the surfaces show
//! local and cluster runs the same way.

pub mod local;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
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

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// `master-0`, `worker-1`, …
    pub name: String,
    pub phase: Phase,
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub phase: Phase,
    /// A one-word cause, as Kubernetes gives them: `InstallingDependencies`, `Error`, `Cancelled`…
    pub reason: Option<String>,
    pub message: Option<String>,
    pub replicas: Vec<ReplicaStatus>,
    /// RFC 3339.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub replica: String,
    pub text: String,
}
