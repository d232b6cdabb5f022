//! What `kflow describe` shows of a job: its spec, status and conditions, each pod (phase,
//! container state and reason, exit code, restarts, node), the events of the job and its pods
//! (FailedScheduling, FailedMount, image pulls…), and the last log lines of each replica. A
//! local job has the parts that exist there: spec, status, lines.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::backend::JobStatus;
use crate::records::RunRecord;

/// How many log lines per replica a description shows.
pub const TAIL_LINES: usize = 20;

/// Everything `kflow describe` shows of one job.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    /// The job's name.
    pub name: String,
    /// The job kind, e.g. `PyTorchJob`.
    pub kind: String,
    /// The backend it runs on: `local` or `cluster`.
    pub backend: String,
    /// The namespace it was submitted to; `None`: the connection's.
    pub namespace: Option<String>,
    /// The run's [`RunSpec`](crate::RunSpec) as JSON.
    pub spec: serde_json::Value,
    /// Its status now.
    pub status: JobStatus,
    /// The training job's status conditions (cluster runs only).
    pub conditions: Vec<Condition>,
    /// Its pods (cluster runs only).
    pub pods: Vec<PodInfo>,
    /// Kubernetes events of the job and its pods (cluster runs only).
    pub events: Vec<EventInfo>,
    /// Replica name -> its last lines (at most `TAIL_LINES`).
    pub logs: BTreeMap<String, Vec<String>>,
}

/// One of the training job's conditions, as the operator set it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Condition {
    /// `Created`, `Running`, `Restarting`, `Succeeded` or `Failed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// A one-word cause.
    pub reason: Option<String>,
    /// What happened, in words.
    pub message: Option<String>,
    /// When the condition last changed (RFC 3339).
    pub last_transition_time: Option<String>,
}

/// One pod of the job.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PodInfo {
    /// The pod's name.
    pub name: String,
    /// The replica it runs (`master-0`, `worker-1`, …), when its labels say.
    pub replica: Option<String>,
    /// The pod's phase (`Pending`, `Running`, `Succeeded`, `Failed`).
    pub phase: String,
    /// The node it was scheduled on.
    pub node: Option<String>,
    /// "waiting", "running" or "terminated" (the training container's).
    pub state: Option<String>,
    /// The state's reason (ImagePullBackOff, OOMKilled, Completed…), or the pod's own.
    pub reason: Option<String>,
    /// The state's or the pod's message.
    pub message: Option<String>,
    /// The training container's exit code, once it ended (or before its last restart).
    pub exit_code: Option<i32>,
    /// How often the training container restarted.
    pub restarts: i32,
}

/// An event of the job or one of its pods.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EventInfo {
    /// "PyTorchJob/train-x" or "Pod/train-x-worker-0".
    pub object: String,
    /// "Normal" or "Warning".
    #[serde(rename = "type")]
    pub type_: String,
    /// A one-word cause (`FailedScheduling`, `Pulled`, …).
    pub reason: String,
    /// What happened, in words.
    pub message: String,
    /// How often it happened.
    pub count: i32,
    /// When it last happened (RFC 3339).
    pub last_seen: Option<String>,
}

/// The last `n` lines of a text file (a replica's local log copy); empty when there is none.
pub(crate) fn tail_file(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

impl Description {
    /// The parts every backend has: spec, status and the last lines of each replica.
    pub(crate) fn of_record(
        record: &RunRecord,
        status: JobStatus,
        logs: BTreeMap<String, Vec<String>>,
    ) -> Description {
        Description {
            name: record.spec.name.clone(),
            kind: record.spec.kind.to_string(),
            backend: record.spec.backend.as_str().to_string(),
            namespace: record.spec.namespace.clone(),
            spec: serde_json::to_value(&record.spec).unwrap_or_default(),
            status,
            conditions: Vec::new(),
            pods: Vec::new(),
            events: Vec::new(),
            logs,
        }
    }
}
