//! A cluster run's code and record as the cluster keeps them: the archive in its code
//! ConfigMap(s), the record in the job's annotation, so a run can be restarted, or adopted
//! from another machine.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, ListParams};

use crate::error::{ClusterError, Error, JobError, Result};
use crate::kubeflow::JobKind;
use crate::manifest::chunks::PART_KEY;
use crate::manifest::startup::ARCHIVE_KEY;
use crate::manifest::{self, MANAGED_BY};
use crate::records::{RunDir, RunRecord};

use super::api_errors::api_error;
use super::retry::retry;
use super::{ClusterBackend, RECORD_ANNOTATION};

/// The code archive of a run: the local copy, else the one in its code ConfigMap.
pub fn code_bytes(backend: &ClusterBackend, dir: &RunDir, record: &RunRecord) -> Result<Vec<u8>> {
    if let Ok(bytes) = std::fs::read(dir.archive()) {
        return Ok(bytes);
    }
    let ns = backend.namespace_for(&record.spec);
    let cms: Api<ConfigMap> = Api::namespaced(backend.client().clone(), &ns);
    let cm_name = manifest::code_configmap_name(&record.spec.name);
    let found = backend.block_on(code_configmaps(&cms, record))?;
    // One ConfigMap with the archive, or slices named -000, -001, … joined in order.
    let whole = found
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(&cm_name))
        .and_then(|c| {
            c.binary_data
                .as_ref()?
                .get(ARCHIVE_KEY)
                .map(|b| b.0.clone())
        });
    let mut slices: Vec<(String, Vec<u8>)> = found
        .iter()
        .filter_map(|c| {
            Some((
                c.metadata.name.clone()?,
                c.binary_data.as_ref()?.get(PART_KEY)?.0.clone(),
            ))
        })
        .collect();
    slices.sort();
    let joined =
        (!slices.is_empty()).then(|| slices.into_iter().flat_map(|(_, b)| b).collect::<Vec<u8>>());
    whole.or(joined).ok_or_else(|| {
        Error::Cluster(ClusterError::Api {
            action: format!("read the code of {}", record.spec.name),
            code: 0,
            message: format!("ConfigMap {cm_name} holds no {ARCHIVE_KEY}"),
            fix: "run the job again from its project folder (`kflow run`)".into(),
        })
    })
}

/// The code ConfigMaps of a run (one, or its slices), found by its run id.
pub(super) async fn code_configmaps(
    cms: &Api<ConfigMap>,
    record: &RunRecord,
) -> Result<Vec<ConfigMap>> {
    let lp = ListParams::default().labels(&format!(
        "{}={}",
        manifest::RUN_ID_LABEL,
        record.spec.run_id
    ));
    let list = retry(|| cms.list(&lp))
        .await
        .map_err(|e| api_error(e, "list", "configmaps", cms.namespace().unwrap_or("")))?;
    let prefix = manifest::code_configmap_name(&record.spec.name);
    Ok(list
        .items
        .into_iter()
        .filter(|c| {
            c.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect())
}

/// A training job found by name on the cluster.
pub enum FoundJob {
    /// One of kflow's, with the record from its annotation.
    Kflow(RunRecord),
    /// Anyone else's, with a record read from the job itself (no code to restart from).
    Foreign(RunRecord),
}

/// Finds a training job by name in the connection's namespace: kflow's with its stored record,
/// or anyone else's with what a record needs to follow it.
pub fn find_job(backend: &ClusterBackend, name: &str) -> Result<Option<FoundJob>> {
    let ns = backend.namespace.clone();
    backend.block_on(async {
        for kind in JobKind::ALL {
            for version in kind.api_versions() {
                let ar = kind.api_resource(version);
                let api: Api<DynamicObject> =
                    Api::namespaced_with(backend.client().clone(), &ns, &ar);
                let found = match retry(|| api.get_opt(name)).await {
                    Ok(found) => found,
                    // Kind not served, or not allowed: look at the next one.
                    Err(_) => continue,
                };
                let Some(job) = found else { continue };
                let managed = job
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(MANAGED_BY))
                    .is_some_and(|v| v == "kflow");
                let record = job
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(RECORD_ANNOTATION));
                let yaml = serde_yaml::to_string(&job).unwrap_or_default();
                if let (true, Some(text)) = (managed, record) {
                    let mut record: RunRecord = serde_json::from_str(text).map_err(|e| {
                        Error::Job(JobError::CorruptRecord {
                            path: format!("{ns}/{name} annotation {RECORD_ANNOTATION}").into(),
                            problem: e.to_string(),
                        })
                    })?;
                    record.manifest_yaml = yaml;
                    return Ok(Some(FoundJob::Kflow(record)));
                }
                return Ok(Some(FoundJob::Foreign(foreign_record(
                    kind, &ns, &job, yaml,
                ))));
            }
        }
        Ok(None)
    })
}

/// A record for a job kflow did not make: enough to watch, describe and delete it.
fn foreign_record(kind: JobKind, ns: &str, job: &DynamicObject, yaml: String) -> RunRecord {
    let specs = job.data["spec"]
        .as_object()
        .and_then(|spec| {
            spec.iter()
                .find(|(key, value)| key.ends_with("ReplicaSpecs") && value.is_object())
        })
        .and_then(|(_, v)| v.as_object().cloned())
        .unwrap_or_default();
    // The operator's order: the coordinating replica first, then the others by name.
    let mut types: Vec<(&String, &serde_json::Value)> = specs.iter().collect();
    types.sort_by_key(|(t, _)| {
        let lead = matches!(t.as_str(), "Master" | "Chief" | "Launcher");
        (!lead, t.to_ascii_lowercase())
    });
    let mut replicas = Vec::new();
    let mut image = String::new();
    for (rtype, spec) in types {
        let count = spec["replicas"].as_u64().unwrap_or(1).min(1024);
        for i in 0..count {
            replicas.push(format!("{}-{i}", rtype.to_ascii_lowercase()));
        }
        if image.is_empty() {
            image = spec["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
    }
    let spec = crate::spec::RunSpec {
        name: job.metadata.name.clone().unwrap_or_default(),
        run_id: String::new(),
        kind,
        image,
        gpu: 0,
        cpu: None,
        memory: None,
        workers: replicas.len() as u32,
        pip: Vec::new(),
        apt: Vec::new(),
        env: Default::default(),
        args: Vec::new(),
        namespace: Some(ns.to_string()),
        script: String::new(),
        project_root: Default::default(),
        code_mode: Default::default(),
        pip_cache: false,
        pip_cache_size: String::new(),
        backend: crate::spec::BackendKind::Cluster,
        template: None,
    };
    RunRecord {
        spec,
        manifest_yaml: yaml,
        code_sha256: String::new(),
        created_at: job
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        attempt: 1,
        withheld: Vec::new(),
        foreign_replicas: Some(replicas),
    }
}
