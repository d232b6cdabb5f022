//! RunSpec -> the Kubernetes objects of a run: the training job (PyTorchJob, TFJob, MPIJob v1 or
//! v2beta1), the code ConfigMap and the pip-cache PVC. Objects are built as JSON values with
//! serde_json, never by string templating, and printed as YAML for the preview.

pub mod chunks;
pub mod startup;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::kubeflow::JobKind;
pub use crate::kubeflow::MpiApi;
use crate::spec::{RunSpec, PIP_CACHE_PVC};
use startup::{Finale, ARCHIVE_KEY, CODE_MOUNT, PIP_CACHE_MOUNT, WORKSPACE};

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const RUN_ID_LABEL: &str = "kflow.dev/run-id";
pub const DIGEST_ANNOTATION: &str = "kflow.dev/code-sha256";
pub const SCRIPT_ANNOTATION: &str = "kflow.dev/script";

/// The code as it goes into the ConfigMap.
#[derive(Debug, Clone)]
pub enum CodePayload {
    /// The tar.gz bytes (targz mode).
    Archive { bytes: Vec<u8>, sha256: String },
    /// Each file, keyed by its path in the project (ConfigMap mode).
    Files {
        files: Vec<(String, Vec<u8>)>,
        sha256: String,
    },
    /// For previews and run records: the digest and size only, so the YAML stays readable,
    /// and the number of ConfigMaps the archive travels in (see `chunks`).
    Elided {
        sha256: String,
        bytes: u64,
        parts: usize,
    },
}

impl CodePayload {
    pub fn sha256(&self) -> &str {
        match self {
            CodePayload::Archive { sha256, .. }
            | CodePayload::Files { sha256, .. }
            | CodePayload::Elided { sha256, .. } => sha256,
        }
    }

    /// How many ConfigMaps carry the code: one, or the slices of a large archive.
    pub fn parts(&self) -> usize {
        match self {
            CodePayload::Archive { bytes, .. } => chunks::count(bytes.len()),
            CodePayload::Files { .. } => 1,
            CodePayload::Elided { parts, .. } => (*parts).max(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Manifests {
    pub job: Value,
    /// The code ConfigMap, or the first slice of a large archive.
    pub code: Value,
    /// The further slices of a large archive.
    pub code_parts: Vec<Value>,
    pub pip_cache: Option<Value>,
}

impl Manifests {
    /// In creation order: the PVC and the code must exist before the job's pods start.
    pub fn objects(&self) -> Vec<&Value> {
        self.pip_cache
            .iter()
            .chain(&self.code_parts)
            .chain([&self.code, &self.job])
            .collect()
    }

    pub fn to_yaml(&self) -> String {
        yaml_documents(&self.objects())
    }
}

/// Objects as one multi-document YAML stream.
pub fn yaml_documents(objects: &[&Value]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml::to_string(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// On a previewed code ConfigMap whose archive was left out.
pub const CODE_OMITTED_ANNOTATION: &str = "kflow.dev/code-omitted";

pub fn code_configmap_name(job: &str) -> String {
    format!("{job}-code")
}

pub fn build(spec: &RunSpec, code: &CodePayload, mpi: MpiApi) -> Manifests {
    let mut code_cm = code_configmap(spec, code);
    let mut code_parts = Vec::new();
    if let CodePayload::Archive { bytes, .. } = code {
        if chunks::needed(bytes.len()) {
            code_parts = chunks::slices(&code_cm, &spec.name, bytes);
            code_cm = code_parts.remove(0);
        }
    }
    Manifests {
        job: job(spec, code, mpi),
        code: code_cm,
        code_parts,
        pip_cache: spec.pip_cache.then(|| pip_cache_pvc(spec)),
    }
}

fn metadata(spec: &RunSpec, name: &str) -> Value {
    let mut meta = json!({
        "name": name,
        "labels": { MANAGED_BY: "kflow", RUN_ID_LABEL: spec.run_id },
    });
    if let Some(ns) = &spec.namespace {
        meta["namespace"] = json!(ns);
    }
    meta
}

pub fn job(spec: &RunSpec, code: &CodePayload, mpi: MpiApi) -> Value {
    let api_version = spec.kind.api_version(mpi);
    let mut meta = metadata(spec, &spec.name);
    meta["annotations"] =
        json!({ SCRIPT_ANNOTATION: spec.script, DIGEST_ANNOTATION: code.sha256() });
    let replica = |finale: Finale, container: &str, replicas: u32| {
        json!({
            "replicas": replicas,
            "restartPolicy": "Never",
            "template": pod_template(spec, code, container, &finale),
        })
    };
    let body = match spec.kind {
        JobKind::PyTorchJob => {
            let mut replicas = Map::new();
            replicas.insert("Master".into(), replica(Finale::Python, "pytorch", 1));
            if spec.workers > 1 {
                replicas.insert(
                    "Worker".into(),
                    replica(Finale::Python, "pytorch", spec.workers - 1),
                );
            }
            json!({ "runPolicy": { "cleanPodPolicy": "None" }, "pytorchReplicaSpecs": replicas })
        }
        JobKind::TFJob => json!({
            "runPolicy": { "cleanPodPolicy": "None" },
            "tfReplicaSpecs": { "Worker": replica(Finale::Python, "tensorflow", spec.workers) },
        }),
        JobKind::MPIJob => {
            let worker_finale = match mpi {
                MpiApi::V1 => Finale::Idle,
                MpiApi::V2beta1 => Finale::Sshd,
            };
            let replicas = json!({
                "Launcher": replica(Finale::MpiLaunch { ranks: spec.workers }, "mpi", 1),
                "Worker": replica(worker_finale, "mpi", spec.workers),
            });
            match mpi {
                MpiApi::V1 => {
                    json!({ "slotsPerWorker": 1, "runPolicy": { "cleanPodPolicy": "Running" }, "mpiReplicaSpecs": replicas })
                }
                MpiApi::V2beta1 => json!({
                    "slotsPerWorker": 1,
                    "mpiImplementation": "OpenMPI",
                    "sshAuthMountPath": "/root/.ssh",
                    "runPolicy": { "cleanPodPolicy": "Running" },
                    "mpiReplicaSpecs": replicas,
                }),
            }
        }
    };
    json!({ "apiVersion": api_version, "kind": spec.kind.as_str(), "metadata": meta, "spec": body })
}

fn pod_template(
    spec: &RunSpec,
    code: &CodePayload,
    container_name: &str,
    finale: &Finale,
) -> Value {
    let mut env = vec![json!({ "name": "PYTHONUNBUFFERED", "value": "1" })];
    if spec.pip_cache {
        env.push(json!({ "name": "PIP_CACHE_DIR", "value": PIP_CACHE_MOUNT }));
    }
    env.extend(
        spec.env
            .iter()
            .map(|(k, v)| json!({ "name": k, "value": v })),
    );

    let parts = code.parts();
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    if parts == 1 {
        mounts.push(json!({ "name": "kflow-code", "mountPath": CODE_MOUNT, "readOnly": true }));
        volumes.push(json!({ "name": "kflow-code", "configMap": code_volume_source(spec, code) }));
    }
    mounts.push(json!({ "name": "kflow-workspace", "mountPath": WORKSPACE }));
    volumes.push(json!({ "name": "kflow-workspace", "emptyDir": {} }));
    if spec.pip_cache {
        mounts.push(json!({ "name": "pip-cache", "mountPath": PIP_CACHE_MOUNT }));
        volumes.push(
            json!({ "name": "pip-cache", "persistentVolumeClaim": { "claimName": PIP_CACHE_PVC } }),
        );
    }
    // A sliced archive: every slice mounted side by side, joined by the startup script.
    for i in (0..parts).filter(|_| parts > 1) {
        let volume = format!("kflow-code-{i:03}");
        mounts.push(json!({ "name": volume, "mountPath": format!("{}/{i:03}", chunks::PARTS_MOUNT), "readOnly": true }));
        volumes.push(
            json!({ "name": volume, "configMap": { "name": chunks::chunk_name(&spec.name, i) } }),
        );
    }

    let mut container = json!({
        "name": container_name,
        "image": spec.image,
        "command": ["/bin/sh", "-c", startup::script(spec, finale, parts)],
        "workingDir": WORKSPACE,
        "env": env,
        "volumeMounts": mounts,
    });
    let resources = resources(spec, finale);
    if !resources.is_empty() {
        container["resources"] = Value::Object(resources);
    }
    json!({
        "metadata": {
            "labels": { MANAGED_BY: "kflow", RUN_ID_LABEL: spec.run_id },
            "annotations": { "sidecar.istio.io/inject": "false" },
        },
        "spec": { "containers": [container], "volumes": volumes },
    })
}

fn resources(spec: &RunSpec, finale: &Finale) -> Map<String, Value> {
    let mut requests = Map::new();
    let mut limits = Map::new();
    for (key, value) in [("cpu", &spec.cpu), ("memory", &spec.memory)] {
        if let Some(v) = value {
            requests.insert(key.into(), json!(v));
            limits.insert(key.into(), json!(v));
        }
    }
    // The MPI launcher only starts ranks; GPUs belong to the workers.
    if spec.gpu > 0 && !matches!(finale, Finale::MpiLaunch { .. }) {
        limits.insert("nvidia.com/gpu".into(), json!(spec.gpu));
    }
    let mut out = Map::new();
    if !requests.is_empty() {
        out.insert("requests".into(), Value::Object(requests));
    }
    if !limits.is_empty() {
        out.insert("limits".into(), Value::Object(limits));
    }
    out
}

/// ConfigMap mode maps each key back to the file's path, so the volume shows the project tree.
fn code_volume_source(spec: &RunSpec, code: &CodePayload) -> Value {
    let mut source = json!({ "name": code_configmap_name(&spec.name) });
    if let CodePayload::Files { files, .. } = code {
        let items: Vec<Value> = files
            .iter()
            .enumerate()
            .map(|(i, (path, _))| json!({ "key": file_key(i, path), "path": path }))
            .collect();
        source["items"] = Value::Array(items);
    }
    source
}

/// ConfigMap keys allow `[-._a-zA-Z0-9]`; paths are mapped to keys and back through `items`.
fn file_key(index: usize, path: &str) -> String {
    let base: String = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("f{index:04}-{base}")
}

pub fn code_configmap(spec: &RunSpec, code: &CodePayload) -> Value {
    let mut cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(spec, &code_configmap_name(&spec.name)),
    });
    cm["metadata"]["annotations"] = json!({ DIGEST_ANNOTATION: code.sha256() });
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match code {
        CodePayload::Archive { bytes, .. } => cm["binaryData"] = json!({ ARCHIVE_KEY: b64(bytes) }),
        CodePayload::Elided { bytes, sha256, .. } => {
            // A note in an annotation and no data: the object stays valid for an API server
            // (a placeholder in binaryData is not base64), and nobody mistakes it for the code.
            cm["metadata"]["annotations"][CODE_OMITTED_ANNOTATION] = json!(format!(
                "the {bytes}-byte archive (sha256 {sha256}) is filled in at submission; `kflow yaml --with-code` includes it"
            ));
        }
        CodePayload::Files { files, .. } => {
            let mut data = Map::new();
            let mut binary = Map::new();
            for (i, (path, bytes)) in files.iter().enumerate() {
                let key = file_key(i, path);
                match std::str::from_utf8(bytes) {
                    Ok(text) => data.insert(key, json!(text)),
                    Err(_) => binary.insert(key, json!(b64(bytes))),
                };
            }
            cm["data"] = Value::Object(data);
            if !binary.is_empty() {
                cm["binaryData"] = Value::Object(binary);
            }
        }
    }
    cm
}

pub fn pip_cache_pvc(spec: &RunSpec) -> Value {
    let mut meta = json!({ "name": PIP_CACHE_PVC, "labels": { MANAGED_BY: "kflow" } });
    if let Some(ns) = &spec.namespace {
        meta["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": spec.pip_cache_size } },
        },
    })
}

#[cfg(test)]
mod tests;
