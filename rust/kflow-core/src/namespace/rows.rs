//! What a listing shows of each kind of object: the rows every surface prints, serialized as
//! they are for `--json`, Python and `kflow serve`.

use std::collections::BTreeMap;

use serde::Serialize;

/// A training job of any kind the cluster serves, whoever made it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrainingJobRow {
    /// The job's name.
    pub name: String,
    /// Its kind: `PyTorchJob`, `TFJob`, `MPIJob`, `XGBoostJob`, …
    pub kind: String,
    /// Its `apiVersion`, e.g. `kubeflow.org/v1`.
    pub api_version: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, or `Suspended`.
    pub phase: String,
    /// The reason of the condition that decided the phase.
    pub reason: Option<String>,
    /// That condition's message.
    pub message: Option<String>,
    /// Replicas per replica type, as the job asks for them (`Master: 1`, `Worker: 3`).
    pub replicas: BTreeMap<String, u32>,
    /// Whether kflow made it (it then has a run record, so `restart` works from anywhere).
    pub made_by_kflow: bool,
    /// The script it runs, when kflow made it.
    pub script: Option<String>,
    /// RFC 3339.
    pub created_at: Option<String>,
}

/// A PersistentVolumeClaim.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PvcRow {
    /// The claim's name.
    pub name: String,
    /// `Pending`, `Bound` or `Lost`; `Terminating` while it is being deleted.
    pub phase: String,
    /// Its size: the bound capacity, else the requested size.
    pub size: Option<String>,
    /// Its StorageClass, when it names one.
    pub storage_class: Option<String>,
    /// `ReadWriteOnce`, `ReadWriteMany`, …
    pub access_modes: Vec<String>,
    /// The pods that mount it (any phase but ended ones).
    pub mounted_by: Vec<String>,
    /// RFC 3339.
    pub created_at: Option<String>,
}

/// A ConfigMap, by its keys and their sizes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConfigMapRow {
    /// The ConfigMap's name.
    pub name: String,
    /// Each key (of `data` and `binaryData`) with the size of its value in bytes.
    pub keys: Vec<KeySize>,
    /// The training job whose code it carries, when it is one of kflow's code parts.
    pub code_of: Option<String>,
    /// RFC 3339.
    pub created_at: Option<String>,
}

/// A ConfigMap key and the size of its value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeySize {
    /// The key.
    pub key: String,
    /// Bytes of its value.
    pub bytes: u64,
}

/// How a Notebook server is doing, as Kubeflow's notebook web app sums it up.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum NotebookState {
    /// Its pod runs and answers.
    Ready,
    /// Its pod is being scheduled or started.
    Starting,
    /// Stopped (scaled to zero by the stop annotation); its volumes stay.
    Stopped,
    /// It cannot start: see the reason (image pull, unschedulable, crash loop).
    Error,
}

impl NotebookState {
    /// The state's name as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            NotebookState::Ready => "Ready",
            NotebookState::Starting => "Starting",
            NotebookState::Stopped => "Stopped",
            NotebookState::Error => "Error",
        }
    }
}

/// A Kubeflow Notebook server.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotebookRow {
    /// The Notebook's name.
    pub name: String,
    /// How it is doing.
    pub state: NotebookState,
    /// Why, when it is not Ready: `ImagePullBackOff: …`, `Unschedulable: …`.
    pub reason: Option<String>,
    /// The server's image.
    pub image: String,
    /// CPU request, as a Kubernetes quantity.
    pub cpu: Option<String>,
    /// Memory request, as a Kubernetes quantity.
    pub memory: Option<String>,
    /// GPUs asked for.
    pub gpus: u32,
    /// The GPU resource, e.g. `nvidia.com/gpu`, when it asks for any.
    pub gpu_vendor: Option<String>,
    /// The PVCs it mounts.
    pub volumes: Vec<String>,
    /// Its path under the Kubeflow URL (`/notebook/<namespace>/<name>/`).
    pub url_path: String,
    /// RFC 3339.
    pub created_at: Option<String>,
}

/// A StorageClass.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StorageClassRow {
    /// The class's name.
    pub name: String,
    /// Its provisioner.
    pub provisioner: String,
    /// Whether PVCs that name no class get this one.
    pub default: bool,
    /// `Delete` or `Retain`.
    pub reclaim_policy: Option<String>,
    /// `Immediate` or `WaitForFirstConsumer`.
    pub volume_binding_mode: Option<String>,
}
