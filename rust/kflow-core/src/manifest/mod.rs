//! RunSpec -> the Kubernetes objects of a run: the training job (PyTorchJob, TFJob, MPIJob v1 or
//! v2beta1), the code ConfigMap(s) and the pip-cache PVC. Objects are typed (k8s-openapi's
//! core types, `training_job`'s for the CRDs), never templated strings; they become JSON only
//! to be printed as YAML or sent as a training job.

pub mod chunks;
pub mod cron_job;
pub mod startup;
mod training_job;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, KeyToPath,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec,
    PodTemplateSpec, ResourceRequirements, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use serde_json::Value;

use crate::kubeflow::JobKind;
pub use crate::kubeflow::MpiApi;
use crate::spec::{RunSpec, PIP_CACHE_PVC};
use startup::{Finale, ARCHIVE_KEY, CODE_MOUNT, PIP_CACHE_MOUNT, WORKSPACE};
pub use training_job::{ReplicaSpec, RunPolicy, TrainingJob, TrainingJobSpec};

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

/// The objects of one run, in the types the API server takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifests {
    /// The training job.
    pub job: TrainingJob,
    /// The code ConfigMap, or the first slice of a large archive.
    pub code: ConfigMap,
    /// The further slices of a large archive.
    pub code_parts: Vec<ConfigMap>,
    /// The pip-cache claim, when the run mounts one.
    pub pip_cache: Option<PersistentVolumeClaim>,
}

impl Manifests {
    /// In creation order, as JSON: the PVC and the code must exist before the job's pods start.
    pub fn objects(&self) -> Vec<Value> {
        let mut objects: Vec<Value> = self.pip_cache.iter().map(as_json).collect();
        objects.extend(self.code_parts.iter().map(as_json));
        objects.push(as_json(&self.code));
        objects.push(as_json(&self.job));
        objects
    }

    /// The objects as one multi-document YAML stream.
    pub fn to_yaml(&self) -> String {
        yaml_documents(&self.objects())
    }
}

fn as_json(object: &impl serde::Serialize) -> Value {
    serde_json::to_value(object).expect("manifest objects serialize")
}

/// Objects as one multi-document YAML stream.
pub fn yaml_documents(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml::to_string(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// On a previewed code ConfigMap whose archive was left out.
pub const CODE_OMITTED_ANNOTATION: &str = "kflow.dev/code-omitted";

/// The code ConfigMap of job `job` (slices add `-000`, `-001`, …).
pub fn code_configmap_name(job: &str) -> String {
    format!("{job}-code")
}

/// The objects a run creates, with its code as `code` says.
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

fn strings<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn kflow_labels(spec: &RunSpec) -> BTreeMap<String, String> {
    strings([(MANAGED_BY, "kflow"), (RUN_ID_LABEL, &spec.run_id)])
}

fn metadata(spec: &RunSpec, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: spec.namespace.clone(),
        labels: Some(kflow_labels(spec)),
        ..Default::default()
    }
}

/// The training job of a run: its replicas by kind, each running the startup chain.
pub fn job(spec: &RunSpec, code: &CodePayload, mpi: MpiApi) -> TrainingJob {
    let mut metadata = metadata(spec, &spec.name);
    metadata.annotations = Some(strings([
        (SCRIPT_ANNOTATION, &spec.script),
        (DIGEST_ANNOTATION, code.sha256()),
    ]));
    let replica = |finale: Finale, container: &str, replicas: u32| ReplicaSpec {
        replicas: replicas as i32,
        restart_policy: "Never".into(),
        template: pod_template(spec, code, container, &finale),
    };
    let run_policy = |clean: &str| RunPolicy {
        clean_pod_policy: clean.into(),
        suspend: None,
    };
    let mut body = TrainingJobSpec {
        slots_per_worker: None,
        mpi_implementation: None,
        ssh_auth_mount_path: None,
        run_policy: run_policy("None"),
        pytorch_replica_specs: None,
        tf_replica_specs: None,
        mpi_replica_specs: None,
    };
    match spec.kind {
        JobKind::PyTorchJob => {
            let mut replicas = BTreeMap::new();
            replicas.insert("Master".into(), replica(Finale::Python, "pytorch", 1));
            if spec.workers > 1 {
                replicas.insert(
                    "Worker".into(),
                    replica(Finale::Python, "pytorch", spec.workers - 1),
                );
            }
            body.pytorch_replica_specs = Some(replicas);
        }
        JobKind::TFJob => {
            let worker = replica(Finale::Python, "tensorflow", spec.workers);
            body.tf_replica_specs = Some(BTreeMap::from([("Worker".into(), worker)]));
        }
        JobKind::MPIJob => {
            let worker_finale = match mpi {
                MpiApi::V1 => Finale::Idle,
                MpiApi::V2beta1 => Finale::Sshd,
            };
            let launcher = replica(
                Finale::MpiLaunch {
                    ranks: spec.workers,
                },
                "mpi",
                1,
            );
            let workers = replica(worker_finale, "mpi", spec.workers);
            body.mpi_replica_specs = Some(BTreeMap::from([
                ("Launcher".into(), launcher),
                ("Worker".into(), workers),
            ]));
            body.slots_per_worker = Some(1);
            body.run_policy = run_policy("Running");
            if mpi == MpiApi::V2beta1 {
                body.mpi_implementation = Some("OpenMPI".into());
                body.ssh_auth_mount_path = Some("/root/.ssh".into());
            }
        }
    }
    TrainingJob {
        api_version: spec.kind.api_version(mpi).into(),
        kind: spec.kind.as_str().into(),
        metadata,
        spec: body,
    }
}

fn pod_template(
    spec: &RunSpec,
    code: &CodePayload,
    container_name: &str,
    finale: &Finale,
) -> PodTemplateSpec {
    let var = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    };
    let mut env = vec![var("PYTHONUNBUFFERED", "1")];
    if spec.pip_cache {
        env.push(var("PIP_CACHE_DIR", PIP_CACHE_MOUNT));
    }
    env.extend(spec.env.iter().map(|(k, v)| var(k, v)));

    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    let parts = code.parts();
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    if parts == 1 {
        mounts.push(mount("kflow-code", CODE_MOUNT, true));
        volumes.push(Volume {
            name: "kflow-code".into(),
            config_map: Some(code_volume_source(spec, code)),
            ..Default::default()
        });
    }
    mounts.push(mount("kflow-workspace", WORKSPACE, false));
    volumes.push(Volume {
        name: "kflow-workspace".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    if spec.pip_cache {
        mounts.push(mount("pip-cache", PIP_CACHE_MOUNT, false));
        volumes.push(Volume {
            name: "pip-cache".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: PIP_CACHE_PVC.into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    // A sliced archive: every slice mounted side by side, joined by the startup script.
    for i in (0..parts).filter(|_| parts > 1) {
        let volume = format!("kflow-code-{i:03}");
        mounts.push(mount(
            &volume,
            &format!("{}/{i:03}", chunks::PARTS_MOUNT),
            true,
        ));
        volumes.push(Volume {
            name: volume,
            config_map: Some(ConfigMapVolumeSource {
                name: chunks::chunk_name(&spec.name, i),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    let container = Container {
        name: container_name.into(),
        image: Some(spec.image.clone()),
        command: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            startup::script(spec, finale, parts),
        ]),
        working_dir: Some(WORKSPACE.into()),
        env: Some(env),
        volume_mounts: Some(mounts),
        resources: resources(spec, finale),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(kflow_labels(spec)),
            annotations: Some(strings([("sidecar.istio.io/inject", "false")])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            ..Default::default()
        }),
    }
}

fn resources(spec: &RunSpec, finale: &Finale) -> Option<ResourceRequirements> {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    for (key, value) in [("cpu", &spec.cpu), ("memory", &spec.memory)] {
        if let Some(v) = value {
            requests.insert(key.to_string(), Quantity(v.clone()));
            limits.insert(key.to_string(), Quantity(v.clone()));
        }
    }
    // The MPI launcher only starts ranks; GPUs belong to the workers.
    if spec.gpu > 0 && !matches!(finale, Finale::MpiLaunch { .. }) {
        limits.insert("nvidia.com/gpu".into(), Quantity(spec.gpu.to_string()));
    }
    (!requests.is_empty() || !limits.is_empty()).then(|| ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    })
}

/// ConfigMap mode maps each key back to the file's path, so the volume shows the project tree.
fn code_volume_source(spec: &RunSpec, code: &CodePayload) -> ConfigMapVolumeSource {
    let items = match code {
        CodePayload::Files { files, .. } => Some(
            files
                .iter()
                .enumerate()
                .map(|(i, (path, _))| KeyToPath {
                    key: file_key(i, path),
                    path: path.clone(),
                    ..Default::default()
                })
                .collect(),
        ),
        _ => None,
    };
    ConfigMapVolumeSource {
        name: code_configmap_name(&spec.name),
        items,
        ..Default::default()
    }
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

/// The code ConfigMap: the archive, the files (ConfigMap mode), or a note of what was left out.
pub fn code_configmap(spec: &RunSpec, code: &CodePayload) -> ConfigMap {
    let mut metadata = metadata(spec, &code_configmap_name(&spec.name));
    let mut annotations = strings([(DIGEST_ANNOTATION, code.sha256())]);
    let mut cm = ConfigMap::default();
    match code {
        CodePayload::Archive { bytes, .. } => {
            cm.binary_data = Some(BTreeMap::from([(
                ARCHIVE_KEY.to_string(),
                ByteString(bytes.clone()),
            )]));
        }
        CodePayload::Elided { bytes, sha256, .. } => {
            // A note in an annotation and no data: the object stays valid for an API server,
            // and nobody mistakes it for the code.
            annotations.insert(
                CODE_OMITTED_ANNOTATION.into(),
                format!("the {bytes}-byte archive (sha256 {sha256}) is filled in at submission; `kflow yaml --with-code` includes it"),
            );
        }
        CodePayload::Files { files, .. } => {
            let mut data = BTreeMap::new();
            let mut binary = BTreeMap::new();
            for (i, (path, bytes)) in files.iter().enumerate() {
                let key = file_key(i, path);
                match std::str::from_utf8(bytes) {
                    Ok(text) => {
                        data.insert(key, text.to_string());
                    }
                    Err(_) => {
                        binary.insert(key, ByteString(bytes.clone()));
                    }
                }
            }
            cm.data = Some(data);
            cm.binary_data = (!binary.is_empty()).then_some(binary);
        }
    }
    metadata.annotations = Some(annotations);
    cm.metadata = metadata;
    cm
}

/// The claim that keeps pip's cache between runs.
pub fn pip_cache_pvc(spec: &RunSpec) -> PersistentVolumeClaim {
    let metadata = ObjectMeta {
        name: Some(PIP_CACHE_PVC.into()),
        namespace: spec.namespace.clone(),
        labels: Some(strings([(MANAGED_BY, "kflow")])),
        ..Default::default()
    };
    read_write_once_claim(metadata, &spec.pip_cache_size)
}

/// A ReadWriteOnce claim of `size` in the cluster's default StorageClass.
fn read_write_once_claim(metadata: ObjectMeta, size: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(size.to_string()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
