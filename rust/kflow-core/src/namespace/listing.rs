//! Paged listings of a namespace's objects, read leanly (see `lean`). Each is one LIST per
//! page against the API server; training jobs page across every kind the cluster serves with
//! one cursor.

use std::collections::BTreeMap;

use base64::Engine;
use kube::api::ListParams;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::backend::cluster::api_errors::api_error;
use crate::backend::cluster::retry::retry;
use crate::error::{Error, Result};
use crate::kubeflow::Conditions;
use crate::manifest::{self, MANAGED_BY};

use super::lean::{decode_page, Base64Len, ByteLen, LeanMeta, LeanObject, LeanPage};
use super::rows::*;
use crate::paging::{Page, PageRequest, DEFAULT_PAGE_SIZE};

/// A training-job resource the cluster serves: `kubeflow.org/v1` `pytorchjobs`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JobResource {
    pub api_version: String,
    pub plural: String,
    pub kind: &'static str,
}

impl JobResource {
    /// The URL of this kind's jobs in `namespace`.
    fn collection(&self, namespace: &str) -> String {
        format!(
            "/apis/{}/namespaces/{namespace}/{}",
            self.api_version, self.plural
        )
    }
}

/// The training operator's kinds (and mpi-operator's MPIJob), by plural.
pub(super) const TRAINING_KINDS: [(&str, &str); 6] = [
    ("pytorchjobs", "PyTorchJob"),
    ("tfjobs", "TFJob"),
    ("mpijobs", "MPIJob"),
    ("xgboostjobs", "XGBoostJob"),
    ("paddlejobs", "PaddleJob"),
    ("jaxjobs", "JAXJob"),
];

/// One LIST call: a page of `path` (a collection URL) decoded as `T`.
pub(super) async fn list_page<T: LeanObject>(
    client: &kube::Client,
    path: &str,
    resource: &str,
    namespace: &str,
    limit: u32,
    token: Option<&str>,
) -> Result<LeanPage<T>> {
    let mut lp = ListParams::default().limit(limit);
    if let Some(t) = token {
        lp = lp.continue_token(t);
    }
    let request = || async {
        let req = kube::core::Request::new(path)
            .list(&lp)
            .map_err(kube::Error::BuildRequest)?;
        client.request_text(req).await
    };
    let body = retry(request)
        .await
        .map_err(|e| api_error(e, "list", resource, namespace))?;
    decode_page(&body).map_err(|e| {
        Error::Cluster(crate::error::ClusterError::Api {
            action: format!("list {resource} in namespace {namespace:?}"),
            code: 0,
            message: format!("the answer is not a list: {e}"),
            fix: "check that the API server is a Kubernetes API server (`kflow doctor`)".into(),
        })
    })
}

/// Every item of a collection, 500 a page.
pub(super) async fn list_all<T: LeanObject>(
    client: &kube::Client,
    path: &str,
    resource: &str,
    namespace: &str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page: LeanPage<T> =
            list_page(client, path, resource, namespace, 500, token.as_deref()).await?;
        out.extend(page.items);
        match page.next {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// Where a training-job listing goes on: which resource, and its `continue` token there.
fn encode_cursor(resource: &JobResource, token: Option<&str>) -> String {
    let text = format!(
        "{}/{}:{}",
        resource.api_version,
        resource.plural,
        token.unwrap_or("")
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor(served: &[JobResource], cursor: &str) -> Result<(usize, Option<String>)> {
    let bad = || {
        Error::invalid(
            "cursor",
            cursor,
            "not a cursor of a training-job listing (or the cluster's job kinds changed)",
            "pass the `next` of the page before, or start again without a cursor",
        )
    };
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (resource, token) = text.split_once(':').ok_or_else(bad)?;
    let index = served
        .iter()
        .position(|r| format!("{}/{}", r.api_version, r.plural) == resource)
        .ok_or_else(bad)?;
    Ok((index, (!token.is_empty()).then(|| token.to_string())))
}

/// A page of training jobs of every served kind, in the order of `served`.
pub(super) async fn training_jobs(
    client: &kube::Client,
    namespace: &str,
    served: &[JobResource],
    page: &PageRequest,
) -> Result<Page<TrainingJobRow>> {
    let limit = page_limit(page);
    let (mut index, mut token) = match &page.cursor {
        Some(c) => decode_cursor(served, c)?,
        None => (0, None),
    };
    let mut items = Vec::new();
    let mut remaining_here = None;
    while index < served.len() && items.len() < limit as usize {
        let resource = &served[index];
        let path = resource.collection(namespace);
        let want = limit - items.len() as u32;
        let listed: LeanPage<LeanJob> = list_page(
            client,
            &path,
            &resource.plural,
            namespace,
            want,
            token.as_deref(),
        )
        .await?;
        remaining_here = listed.remaining;
        items.extend(listed.items.into_iter().map(|j| j.row(resource)));
        match listed.next {
            Some(t) => token = Some(t),
            None => {
                index += 1;
                token = None;
            }
        }
    }
    // The total is told on the first page only: later pages cannot know how many came before.
    let total = if page.cursor.is_some() {
        None
    } else if token.is_some() {
        let later = count_kinds(client, namespace, &served[index + 1..]).await;
        remaining_here
            .zip(later)
            .map(|(here, later)| items.len() as u64 + here + later)
    } else {
        count_kinds(client, namespace, &served[index..])
            .await
            .map(|later| items.len() as u64 + later)
    };
    let next = served
        .get(index)
        .map(|r| encode_cursor(r, token.as_deref()));
    Ok(Page { items, next, total })
}

/// How many jobs of these kinds there are (one LIST of one item per kind, together), or
/// `None` when the API server does not say for one of them.
async fn count_kinds(client: &kube::Client, namespace: &str, kinds: &[JobResource]) -> Option<u64> {
    let counts = futures::future::join_all(kinds.iter().map(|resource| async move {
        let path = resource.collection(namespace);
        list_page::<LeanJob>(client, &path, &resource.plural, namespace, 1, None)
            .await
            .ok()
            .and_then(|p| p.total_from_first())
    }))
    .await;
    counts.into_iter().sum()
}

fn page_limit(page: &PageRequest) -> u32 {
    page.limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 5000)
}

/// One page of a single collection, mapped to rows.
pub(super) async fn simple_page<T: LeanObject, R>(
    client: &kube::Client,
    path: &str,
    resource: &str,
    namespace: &str,
    page: &PageRequest,
    row: impl Fn(T) -> R,
) -> Result<Page<R>> {
    let listed: LeanPage<T> = list_page(
        client,
        path,
        resource,
        namespace,
        page_limit(page),
        page.cursor.as_deref(),
    )
    .await?;
    let total = if page.cursor.is_none() {
        listed.total_from_first()
    } else {
        None
    };
    Ok(Page {
        items: listed.items.into_iter().map(row).collect(),
        next: listed.next,
        total,
    })
}

// Training jobs.

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LeanJob {
    metadata: LeanMeta,
    spec: LeanJobSpec,
    status: LeanJobStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct LeanJobSpec {
    pytorch_replica_specs: Option<BTreeMap<String, LeanReplicaSpec>>,
    tf_replica_specs: Option<BTreeMap<String, LeanReplicaSpec>>,
    mpi_replica_specs: Option<BTreeMap<String, LeanReplicaSpec>>,
    xgb_replica_specs: Option<BTreeMap<String, LeanReplicaSpec>>,
    paddle_replica_specs: Option<BTreeMap<String, LeanReplicaSpec>>,
    jax_replica_specs: Option<BTreeMap<String, LeanReplicaSpec>>,
    run_policy: Option<LeanRunPolicy>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LeanReplicaSpec {
    replicas: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LeanRunPolicy {
    suspend: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LeanJobStatus {
    conditions: Vec<Value>,
}

impl LeanObject for LeanJob {
    fn from_odd(item: &Value) -> LeanJob {
        LeanJob {
            metadata: LeanMeta::from_value(item),
            spec: LeanJobSpec::default(),
            status: LeanJobStatus {
                conditions: item["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            },
        }
    }
}

impl LeanJob {
    pub(super) fn row(self, resource: &JobResource) -> TrainingJobRow {
        let LeanJob {
            metadata,
            spec,
            status,
        } = self;
        let suspended_by = status
            .conditions
            .iter()
            .find(|c| c["type"] == "Suspended" && c["status"] == "True")
            .cloned();
        let mut conditions =
            Conditions::of_job(&json!({"status": {"conditions": status.conditions}}));
        let suspended = spec.run_policy.as_ref().and_then(|p| p.suspend) == Some(true);
        let phase = if suspended && !conditions.ended() {
            let text = |k: &str| {
                suspended_by
                    .as_ref()
                    .and_then(|c| c[k].as_str().map(str::to_string))
            };
            conditions.reason = text("reason").or(Some("Suspended".into()));
            conditions.message = text("message");
            "Suspended".to_string()
        } else {
            conditions.phase.as_str().to_string()
        };
        let replicas = [
            spec.pytorch_replica_specs,
            spec.tf_replica_specs,
            spec.mpi_replica_specs,
            spec.xgb_replica_specs,
            spec.paddle_replica_specs,
            spec.jax_replica_specs,
        ]
        .into_iter()
        .flatten()
        .flatten()
        .map(|(kind, r)| {
            (
                kind,
                r.replicas.unwrap_or(1).clamp(0, u32::MAX as i64) as u32,
            )
        })
        .collect();
        TrainingJobRow {
            made_by_kflow: metadata
                .labels
                .get(MANAGED_BY)
                .is_some_and(|v| v == "kflow"),
            script: metadata
                .annotations
                .get(manifest::SCRIPT_ANNOTATION)
                .cloned(),
            name: metadata.name,
            kind: resource.kind.to_string(),
            api_version: resource.api_version.clone(),
            phase,
            reason: conditions.reason,
            message: conditions.message,
            replicas,
            created_at: metadata.creation_timestamp,
        }
    }
}

// PersistentVolumeClaims and the pods that mount them.

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LeanPvc {
    metadata: LeanMeta,
    spec: LeanPvcSpec,
    status: LeanPvcStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct LeanPvcSpec {
    storage_class_name: Option<String>,
    access_modes: Vec<String>,
    resources: LeanResources,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LeanResources {
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LeanPvcStatus {
    phase: Option<String>,
    capacity: BTreeMap<String, String>,
}

impl LeanObject for LeanPvc {
    fn from_odd(item: &Value) -> LeanPvc {
        LeanPvc {
            metadata: LeanMeta::from_value(item),
            ..Default::default()
        }
    }
}

impl LeanPvc {
    pub(super) fn row(self, mounts: &PodMounts) -> PvcRow {
        let phase = if self.metadata.deletion_timestamp.is_some() {
            "Terminating".to_string()
        } else {
            self.status.phase.unwrap_or_else(|| "Pending".into())
        };
        PvcRow {
            mounted_by: mounts.of(&self.metadata.name),
            phase,
            size: self
                .status
                .capacity
                .get("storage")
                .or(self.spec.resources.requests.get("storage"))
                .cloned(),
            storage_class: self.spec.storage_class_name,
            access_modes: self.spec.access_modes,
            name: self.metadata.name,
            created_at: self.metadata.creation_timestamp,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LeanPod {
    metadata: LeanMeta,
    spec: LeanPodSpec,
    status: LeanPodStatus,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LeanPodSpec {
    volumes: Vec<LeanVolume>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct LeanVolume {
    pub persistent_volume_claim: Option<LeanClaimRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct LeanClaimRef {
    pub claim_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LeanPodStatus {
    phase: Option<String>,
}

impl LeanObject for LeanPod {
    fn from_odd(item: &Value) -> LeanPod {
        LeanPod {
            metadata: LeanMeta::from_value(item),
            ..Default::default()
        }
    }
}

/// Which pods mount which claims; ended pods (Succeeded, Failed) hold no claim.
#[derive(Debug, Default)]
pub(super) struct PodMounts {
    /// (claim, pod, running) for each mount.
    mounts: Vec<(String, String, bool)>,
}

impl PodMounts {
    pub fn of_pods(pods: Vec<LeanPod>) -> PodMounts {
        let mut mounts = Vec::new();
        for pod in pods {
            let phase = pod.status.phase.as_deref().unwrap_or("Pending");
            if matches!(phase, "Succeeded" | "Failed") {
                continue;
            }
            for v in pod.spec.volumes {
                if let Some(claim) = v.persistent_volume_claim {
                    mounts.push((
                        claim.claim_name,
                        pod.metadata.name.clone(),
                        phase == "Running",
                    ));
                }
            }
        }
        PodMounts { mounts }
    }

    /// The pods that mount `claim`.
    pub fn of(&self, claim: &str) -> Vec<String> {
        self.mounts
            .iter()
            .filter(|(c, _, _)| c == claim)
            .map(|(_, pod, _)| pod.clone())
            .collect()
    }

    /// The running pods that mount `claim`.
    pub fn running(&self, claim: &str) -> Vec<String> {
        self.mounts
            .iter()
            .filter(|(c, _, running)| c == claim && *running)
            .map(|(_, pod, _)| pod.clone())
            .collect()
    }
}

// ConfigMaps.

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct LeanConfigMap {
    metadata: LeanMeta,
    data: BTreeMap<String, ByteLen>,
    binary_data: BTreeMap<String, Base64Len>,
}

impl LeanObject for LeanConfigMap {
    fn from_odd(item: &Value) -> LeanConfigMap {
        LeanConfigMap {
            metadata: LeanMeta::from_value(item),
            ..Default::default()
        }
    }
}

impl LeanConfigMap {
    pub(super) fn row(self) -> ConfigMapRow {
        let meta = self.metadata;
        let kflow_code = meta.labels.get(MANAGED_BY).is_some_and(|v| v == "kflow")
            && meta.labels.contains_key(manifest::RUN_ID_LABEL);
        let code_of = kflow_code.then(|| {
            meta.owner_references
                .iter()
                .find(|o| o.kind.ends_with("Job"))
                .map(|o| o.name.clone())
                .unwrap_or_else(|| job_of_code_part(&meta.name))
        });
        let mut keys: Vec<KeySize> = self
            .data
            .into_iter()
            .map(|(key, len)| KeySize { key, bytes: len.0 })
            .chain(
                self.binary_data
                    .into_iter()
                    .map(|(key, len)| KeySize { key, bytes: len.0 }),
            )
            .collect();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        ConfigMapRow {
            name: meta.name,
            keys,
            code_of,
            created_at: meta.creation_timestamp,
        }
    }
}

/// `train-x-code` and its slices `train-x-code-003` belong to job `train-x`.
fn job_of_code_part(name: &str) -> String {
    let whole = name
        .rsplit_once('-')
        .filter(|(_, n)| n.len() == 3 && n.chars().all(|c| c.is_ascii_digit()))
        .map_or(name, |(head, _)| head);
    whole.strip_suffix("-code").unwrap_or(whole).to_string()
}

// Notebooks.

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LeanNotebook {
    metadata: LeanMeta,
    spec: LeanNotebookSpec,
    status: LeanNotebookStatus,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LeanNotebookSpec {
    template: LeanPodTemplate,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LeanPodTemplate {
    spec: LeanNotebookPodSpec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LeanNotebookPodSpec {
    containers: Vec<LeanContainer>,
    volumes: Vec<LeanVolume>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LeanContainer {
    image: String,
    resources: LeanResources,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct LeanNotebookStatus {
    pub ready_replicas: Option<i64>,
    pub container_state: BTreeMap<String, LeanContainerState>,
    pub conditions: Vec<LeanCondition>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct LeanContainerState {
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct LeanCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl LeanObject for LeanNotebook {
    fn from_odd(item: &Value) -> LeanNotebook {
        LeanNotebook {
            metadata: LeanMeta::from_value(item),
            ..Default::default()
        }
    }
}

/// Kubeflow's stop annotation: its presence scales a Notebook to zero.
pub const STOP_ANNOTATION: &str = "kubeflow-resource-stopped";

/// Waiting reasons that mean the server will not start without a change.
const STUCK_REASONS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "RunContainerError",
];

/// The state a Notebook's status adds up to, and why.
pub(super) fn notebook_state(
    stopped: bool,
    status: &LeanNotebookStatus,
) -> (NotebookState, Option<String>) {
    let ready = status.ready_replicas.unwrap_or(0) >= 1;
    if stopped {
        let reason = ready.then(|| "Stopping: the server is shutting down".to_string());
        return (NotebookState::Stopped, reason);
    }
    if ready {
        return (NotebookState::Ready, None);
    }
    let text = |reason: &Option<String>, message: &Option<String>| match (reason, message) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
        (Some(r), _) => r.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => String::new(),
    };
    if let Some(waiting) = status.container_state.get("waiting") {
        let stuck = waiting
            .reason
            .as_deref()
            .is_some_and(|r| STUCK_REASONS.contains(&r));
        if stuck {
            return (
                NotebookState::Error,
                Some(text(&waiting.reason, &waiting.message)),
            );
        }
    }
    if let Some(terminated) = status.container_state.get("terminated") {
        return (
            NotebookState::Error,
            Some(text(&terminated.reason, &terminated.message)),
        );
    }
    let unschedulable = status
        .conditions
        .iter()
        .find(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"));
    if let Some(c) = unschedulable {
        return (NotebookState::Error, Some(text(&c.reason, &c.message)));
    }
    let reason = status
        .container_state
        .get("waiting")
        .map(|w| text(&w.reason, &w.message))
        .filter(|t| !t.is_empty());
    (NotebookState::Starting, reason)
}

/// The GPU resources Kubeflow's spawner offers, by vendor.
pub const GPU_RESOURCES: [&str; 3] = ["nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915"];

impl LeanNotebook {
    pub(super) fn row(self, namespace: &str) -> NotebookRow {
        let meta = self.metadata;
        let (state, reason) =
            notebook_state(meta.annotations.contains_key(STOP_ANNOTATION), &self.status);
        let container = self.spec.template.spec.containers.into_iter().next();
        let resources = container.as_ref().map(|c| &c.resources);
        let gpu = resources.and_then(|r| {
            GPU_RESOURCES
                .iter()
                .find_map(|g| r.limits.get(*g).map(|n| (g.to_string(), n.clone())))
        });
        NotebookRow {
            url_path: format!("/notebook/{namespace}/{}/", meta.name),
            name: meta.name,
            state,
            reason,
            cpu: resources.and_then(|r| r.requests.get("cpu").cloned()),
            memory: resources.and_then(|r| r.requests.get("memory").cloned()),
            gpus: gpu.as_ref().and_then(|(_, n)| n.parse().ok()).unwrap_or(0),
            gpu_vendor: gpu.map(|(vendor, _)| vendor),
            image: container.map(|c| c.image).unwrap_or_default(),
            volumes: self
                .spec
                .template
                .spec
                .volumes
                .into_iter()
                .filter_map(|v| v.persistent_volume_claim.map(|c| c.claim_name))
                .collect(),
            created_at: meta.creation_timestamp,
        }
    }
}

// StorageClasses.

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct LeanStorageClass {
    metadata: LeanMeta,
    provisioner: String,
    reclaim_policy: Option<String>,
    volume_binding_mode: Option<String>,
}

impl LeanObject for LeanStorageClass {
    fn from_odd(item: &Value) -> LeanStorageClass {
        LeanStorageClass {
            metadata: LeanMeta::from_value(item),
            ..Default::default()
        }
    }
}

/// The annotations that mark a StorageClass as the default (the beta one is still honoured).
const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

impl LeanStorageClass {
    pub(super) fn row(self) -> StorageClassRow {
        let default = DEFAULT_CLASS_ANNOTATIONS.iter().any(|a| {
            self.metadata
                .annotations
                .get(*a)
                .is_some_and(|v| v == "true")
        });
        StorageClassRow {
            name: self.metadata.name,
            provisioner: self.provisioner,
            default,
            reclaim_policy: self.reclaim_policy,
            volume_binding_mode: self.volume_binding_mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_parts_name_their_job() {
        assert_eq!(job_of_code_part("train-x-code"), "train-x");
        assert_eq!(job_of_code_part("train-x-code-003"), "train-x");
        assert_eq!(job_of_code_part("other-cm"), "other-cm");
    }

    #[test]
    fn odd_training_jobs_still_list() {
        let body = r#"{"items":[
            {"metadata":{"name":"bare"}},
            {"metadata":{"name":"weird"},"spec":{"pytorchReplicaSpecs":{"Chief":{"replicas":"two"}}}},
            {"metadata":{"name":"ok","labels":{"app.kubernetes.io/managed-by":"kflow"}},
             "spec":{"runPolicy":{"suspend":true},"pytorchReplicaSpecs":{"Master":{"replicas":1},"Worker":{"replicas":3},"Helper":{}}},
             "status":{"conditions":[{"type":"Created","status":"True","reason":"Created"}]}}]}"#;
        let page = decode_page::<LeanJob>(body).unwrap();
        let res = JobResource {
            api_version: "kubeflow.org/v1".into(),
            plural: "pytorchjobs".into(),
            kind: "PyTorchJob",
        };
        let rows: Vec<TrainingJobRow> = page.items.into_iter().map(|j| j.row(&res)).collect();
        assert_eq!(rows[0].phase, "Pending");
        assert_eq!(rows[1].name, "weird");
        assert_eq!(rows[2].phase, "Suspended");
        assert!(rows[2].made_by_kflow);
        assert_eq!(
            rows[2].replicas,
            [
                ("Helper".to_string(), 1),
                ("Master".into(), 1),
                ("Worker".into(), 3)
            ]
            .into()
        );
    }

    #[test]
    fn notebook_states() {
        let status = |v: Value| serde_json::from_value::<LeanNotebookStatus>(v).unwrap();
        let s = status(json!({"readyReplicas": 1}));
        assert_eq!(notebook_state(false, &s).0, NotebookState::Ready);
        assert_eq!(notebook_state(true, &s).0, NotebookState::Stopped);
        let pull = status(
            json!({"containerState": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}),
        );
        assert_eq!(
            notebook_state(false, &pull),
            (
                NotebookState::Error,
                Some("ImagePullBackOff: no such image".into())
            )
        );
        let gpu = status(
            json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes: Insufficient nvidia.com/gpu"}]}),
        );
        assert_eq!(notebook_state(false, &gpu).0, NotebookState::Error);
        let starting =
            status(json!({"containerState": {"waiting": {"reason": "ContainerCreating"}}}));
        assert_eq!(
            notebook_state(false, &starting),
            (NotebookState::Starting, Some("ContainerCreating".into()))
        );
    }
}
