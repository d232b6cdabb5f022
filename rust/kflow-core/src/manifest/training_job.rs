//! The Kubeflow training-job objects kflow creates, as small serde types: only the fields kflow
//! sets, in the shape of the training operator's CRDs (PyTorchJob, TFJob and MPIJob v1, and
//! mpi-operator's MPIJob v2beta1). Pods are k8s-openapi's own types.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

/// A PyTorchJob, TFJob or MPIJob.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJob {
    /// `kubeflow.org/v1`, or `kubeflow.org/v2beta1` for mpi-operator's MPIJob.
    pub api_version: String,
    /// `PyTorchJob`, `TFJob` or `MPIJob`.
    pub kind: String,
    /// Name, namespace, kflow's labels and annotations.
    pub metadata: ObjectMeta,
    /// The replicas and how the operator runs them.
    pub spec: TrainingJobSpec,
}

/// A training job's spec; the replica map's key depends on the kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJobSpec {
    /// MPI: ranks per worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots_per_worker: Option<i32>,
    /// mpi-operator: the MPI implementation (`OpenMPI`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mpi_implementation: Option<String>,
    /// mpi-operator: where the launcher's ssh keys are mounted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_auth_mount_path: Option<String>,
    /// What the operator does with pods when the job ends.
    pub run_policy: RunPolicy,
    /// PyTorchJob: `Master` and `Worker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pytorch_replica_specs: Option<BTreeMap<String, ReplicaSpec>>,
    /// TFJob: `Worker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tf_replica_specs: Option<BTreeMap<String, ReplicaSpec>>,
    /// MPIJob: `Launcher` and `Worker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mpi_replica_specs: Option<BTreeMap<String, ReplicaSpec>>,
}

/// The operator's run policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPolicy {
    /// `None` keeps every pod (and its logs) after the job; `Running` removes running ones.
    pub clean_pod_policy: String,
    /// Holds the job's pods back while true (operators that know it); set only while kflow
    /// uploads the code of a job it has just created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// One replica type: how many, restarted how, from which pod template.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpec {
    /// How many pods of this type.
    pub replicas: i32,
    /// `Never` for kflow's jobs: a failed run is restarted by `kflow restart`.
    pub restart_policy: String,
    /// The pod each replica runs.
    pub template: PodTemplateSpec,
}
