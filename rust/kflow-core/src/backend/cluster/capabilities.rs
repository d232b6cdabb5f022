//! Which Kubeflow job kinds the cluster serves, from discovery (`/apis/kubeflow.org/<version>`),
//! so a missing operator reads as such instead of a 404 on create, and MPIJob manifests follow
//! whichever MPI operator is installed.

use serde::Serialize;

use crate::error::{ClusterError, Error, Result};
use crate::kubeflow::{self, JobKind, MpiApi};

use super::api_errors::api_error;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub pytorchjob: bool,
    pub tfjob: bool,
    /// The training operator's MPIJob (kubeflow.org/v1).
    pub mpijob_v1: bool,
    /// mpi-operator's MPIJob (kubeflow.org/v2beta1).
    pub mpijob_v2beta1: bool,
}

impl Capabilities {
    /// From the resource names (plurals) listed for kubeflow.org/v1 and kubeflow.org/v2beta1.
    pub fn from_resources(v1: &[String], v2beta1: &[String]) -> Capabilities {
        let has = |list: &[String], plural: &str| list.iter().any(|r| r == plural);
        Capabilities {
            pytorchjob: has(v1, "pytorchjobs"),
            tfjob: has(v1, "tfjobs"),
            mpijob_v1: has(v1, "mpijobs"),
            mpijob_v2beta1: has(v2beta1, "mpijobs"),
        }
    }

    /// Checks the kind is served and says which MPI API to build for. When both MPI versions
    /// are served, v2beta1 wins: the CRD then belongs to mpi-operator, whose controller is the
    /// one acting on it.
    pub fn require(&self, kind: JobKind) -> Result<MpiApi> {
        let missing = |what: &str| {
            Err(Error::Cluster(ClusterError::OperatorMissing {
                what: what.to_string(),
            }))
        };
        match kind {
            JobKind::PyTorchJob if !self.pytorchjob => missing("kubeflow.org/v1 PyTorchJob"),
            JobKind::TFJob if !self.tfjob => missing("kubeflow.org/v1 TFJob"),
            JobKind::MPIJob if self.mpijob_v2beta1 => Ok(MpiApi::V2beta1),
            JobKind::MPIJob if !self.mpijob_v1 => {
                missing("neither kubeflow.org/v1 nor kubeflow.org/v2beta1 MPIJob")
            }
            _ => Ok(MpiApi::V1),
        }
    }

    /// The version a kind is served under, the one kflow builds for; `None` when not served.
    pub fn version_of(&self, kind: JobKind) -> Option<&'static str> {
        match kind {
            JobKind::PyTorchJob => self.pytorchjob.then_some(kubeflow::V1),
            JobKind::TFJob => self.tfjob.then_some(kubeflow::V1),
            JobKind::MPIJob if self.mpijob_v2beta1 => Some(kubeflow::MPI_V2BETA1),
            JobKind::MPIJob => self.mpijob_v1.then_some(kubeflow::V1),
        }
    }

    /// The kinds served, for `doctor`-style summaries.
    pub fn served(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.pytorchjob {
            out.push("PyTorchJob (kubeflow.org/v1)");
        }
        if self.tfjob {
            out.push("TFJob (kubeflow.org/v1)");
        }
        if self.mpijob_v1 {
            out.push("MPIJob (kubeflow.org/v1)");
        }
        if self.mpijob_v2beta1 {
            out.push("MPIJob (kubeflow.org/v2beta1)");
        }
        out
    }
}

/// Resource plurals of one group/version; a group/version that is not served is an empty list.
pub(crate) async fn resources(client: &kube::Client, group_version: &str) -> Result<Vec<String>> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(e) => Err(api_error(e, "discover", "the Kubeflow APIs", "")),
    }
}

/// What the server serves. When it serves no Kubeflow group, it is asked for `/version` too:
/// an address that is no Kubernetes API (the Kubeflow gateway taken for the API server) must
/// say so, not read as a cluster without the operator.
pub async fn detect(client: &kube::Client, server: &str) -> Result<Capabilities> {
    let (v1, v2) = futures::join!(
        resources(client, "kubeflow.org/v1"),
        resources(client, "kubeflow.org/v2beta1")
    );
    let (v1, v2) = (v1?, v2?);
    if v1.is_empty() && v2.is_empty() {
        if let Err(e) = client.apiserver_version().await {
            let problem = match &e {
                kube::Error::Api(status) => format!("GET /version answered HTTP {}", status.code),
                other => format!("GET /version failed ({other})"),
            };
            return Err(Error::Cluster(ClusterError::NotKubernetesApi {
                server: server.to_string(),
                problem,
            }));
        }
    }
    Ok(Capabilities::from_resources(&v1, &v2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_kinds_and_mpi_choice() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let caps = Capabilities::from_resources(
            &s(&["pytorchjobs", "pytorchjobs/status", "mpijobs"]),
            &s(&[]),
        );
        assert_eq!(caps.require(JobKind::PyTorchJob).unwrap(), MpiApi::V1);
        assert_eq!(caps.require(JobKind::MPIJob).unwrap(), MpiApi::V1);
        let err = caps.require(JobKind::TFJob).unwrap_err().to_string();
        assert!(err.starts_with("the Kubeflow Training Operator is not installed here (kubeflow.org/v1 TFJob is not served)"), "{err}");
        let v2 = Capabilities::from_resources(&s(&["pytorchjobs"]), &s(&["mpijobs"]));
        assert_eq!(v2.require(JobKind::MPIJob).unwrap(), MpiApi::V2beta1);
        let none = Capabilities::default();
        let err = none.require(JobKind::PyTorchJob).unwrap_err().to_string();
        assert!(
            err.contains("(kubeflow.org/v1 PyTorchJob is not served)"),
            "{err}"
        );
    }
}
