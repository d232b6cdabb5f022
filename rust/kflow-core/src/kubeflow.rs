//! The Kubeflow Training Operator's vocabulary, said once: the job kinds with their API group,
//! versions and plurals, and the conditions a training job reports its progress with.

use std::fmt;
use std::str::FromStr;

use kube::api::ApiResource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::status::Phase;

/// The API group of every training job kind.
pub const GROUP: &str = "kubeflow.org";
/// The training operator's version of every kind (MPIJob also has mpi-operator's v2beta1).
pub const V1: &str = "kubeflow.org/v1";
/// mpi-operator's MPIJob.
pub const MPI_V2BETA1: &str = "kubeflow.org/v2beta1";

/// A training job kind of the Kubeflow Training Operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum JobKind {
    /// PyTorch's torchrun-style job: a master and workers.
    #[default]
    #[serde(alias = "pytorch", alias = "pytorchjob")]
    PyTorchJob,
    /// TensorFlow's job: workers with `TF_CONFIG`.
    #[serde(alias = "tf", alias = "tfjob", alias = "tensorflow")]
    TFJob,
    /// An MPI job: a launcher that starts ranks on the workers.
    #[serde(alias = "mpi", alias = "mpijob")]
    MPIJob,
}

impl JobKind {
    /// Every kind, in the order listings show them.
    pub const ALL: [JobKind; 3] = [JobKind::PyTorchJob, JobKind::TFJob, JobKind::MPIJob];

    /// The Kubernetes kind: `PyTorchJob`, `TFJob`, `MPIJob`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::PyTorchJob => "PyTorchJob",
            JobKind::TFJob => "TFJob",
            JobKind::MPIJob => "MPIJob",
        }
    }

    /// The resource name in API paths and RBAC rules: `pytorchjobs`, `tfjobs`, `mpijobs`.
    pub fn plural(self) -> &'static str {
        match self {
            JobKind::PyTorchJob => "pytorchjobs",
            JobKind::TFJob => "tfjobs",
            JobKind::MPIJob => "mpijobs",
        }
    }

    /// The `apiVersion` a manifest of this kind uses for the given MPI API.
    pub fn api_version(self, mpi: MpiApi) -> &'static str {
        match (self, mpi) {
            (JobKind::MPIJob, MpiApi::V2beta1) => MPI_V2BETA1,
            _ => V1,
        }
    }

    /// The versions an operator may serve this kind under, in the order a job is looked for
    /// by name (the training operator's first).
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            JobKind::MPIJob => &[V1, MPI_V2BETA1],
            _ => &[V1],
        }
    }

    /// The API resource of this kind at `api_version` (`group/version`).
    pub(crate) fn api_resource(self, api_version: &str) -> ApiResource {
        let (group, version) = api_version.split_once('/').unwrap_or((GROUP, api_version));
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: self.as_str().into(),
            plural: self.plural().into(),
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<JobKind, Error> {
        match s.to_ascii_lowercase().as_str() {
            "pytorch" | "pytorchjob" | "torch" => Ok(JobKind::PyTorchJob),
            "tf" | "tfjob" | "tensorflow" => Ok(JobKind::TFJob),
            "mpi" | "mpijob" => Ok(JobKind::MPIJob),
            _ => Err(Error::invalid(
                "kind",
                s,
                "not a training job kind",
                "use pytorch, tf or mpi",
            )),
        }
    }
}

/// Which MPIJob API the cluster serves: the training operator's v1 or mpi-operator's v2beta1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MpiApi {
    /// `kubeflow.org/v1` (the training operator): the launcher execs ranks in idle workers.
    #[default]
    V1,
    /// `kubeflow.org/v2beta1` (mpi-operator): the launcher reaches the workers over ssh.
    V2beta1,
}

/// What a training job's `status.conditions` say, read once for listing, status and logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Conditions {
    /// The job's phase by its conditions alone: `Failed` over `Succeeded` over `Running`, else
    /// `Pending`.
    pub phase: Phase,
    /// The reason and message of the condition that decided the phase (`Created` while pending).
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl Conditions {
    /// From a training job object (its `status.conditions`); odd entries are skipped.
    pub fn of_job(job: &Value) -> Conditions {
        let all = job["status"]["conditions"].as_array();
        let holds = |t: &str| {
            all.into_iter()
                .flatten()
                .find(|c| c["type"] == t && c["status"] == "True")
        };
        let (phase, deciding) = if let Some(c) = holds("Failed") {
            (Phase::Failed, Some(c))
        } else if let Some(c) = holds("Succeeded") {
            (Phase::Succeeded, Some(c))
        } else if let Some(c) = holds("Running") {
            (Phase::Running, Some(c))
        } else {
            (Phase::Pending, holds("Created"))
        };
        let text = |k: &str| deciding.and_then(|c| c[k].as_str().map(str::to_string));
        Conditions {
            phase,
            reason: text("reason"),
            message: text("message"),
        }
    }

    /// Whether the job has ended by its conditions.
    pub fn ended(&self) -> bool {
        self.phase.is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_know_their_api() {
        assert_eq!(JobKind::TFJob.plural(), "tfjobs");
        assert_eq!(JobKind::MPIJob.api_version(MpiApi::V2beta1), MPI_V2BETA1);
        assert_eq!(JobKind::PyTorchJob.api_version(MpiApi::V2beta1), V1);
        let ar = JobKind::MPIJob.api_resource(MPI_V2BETA1);
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.plural.as_str()),
            ("kubeflow.org", "v2beta1", "mpijobs")
        );
    }

    #[test]
    fn failed_outranks_the_other_conditions() {
        let job = json!({"status": {"conditions": [
            {"type": "Created", "status": "True", "reason": "Created"},
            {"type": "Running", "status": "False"},
            {"type": "Failed", "status": "True", "reason": "PyTorchJobFailed", "message": "m"},
        ]}});
        let c = Conditions::of_job(&job);
        assert_eq!(c.phase, Phase::Failed);
        assert_eq!(c.reason.as_deref(), Some("PyTorchJobFailed"));
        assert!(c.ended());
        let created = Conditions::of_job(
            &json!({"status": {"conditions": [{"type": "Created", "status": "True", "reason": "JobCreated"}]}}),
        );
        assert_eq!(
            (created.phase, created.reason.as_deref()),
            (Phase::Pending, Some("JobCreated"))
        );
        assert_eq!(Conditions::of_job(&json!({})).phase, Phase::Pending);
    }
}
