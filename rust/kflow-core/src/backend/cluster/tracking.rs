//! A cluster run's status: one watch per run keeps it current for every handle and call, and
//! the last one seen is saved in the run folder, so it outlives the job on the cluster.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use crate::backend::JobStatus;
use crate::error::Result;
use crate::kubeflow::{self, JobKind};
use crate::manifest;
use crate::records::{write_atomic, RunDir, RunRecord};

use super::api_errors::api_error;
use super::retry::retry;
use super::status;
use super::{pod_selector, ClusterBackend};

/// The job API of a recorded run: kind and API version come from its manifest.
pub fn jobs_api(backend: &ClusterBackend, record: &RunRecord) -> (Api<DynamicObject>, String) {
    let ns = backend.namespace_for(&record.spec);
    let ar = record.spec.kind.api_resource(&api_version_of(record));
    (Api::namespaced_with(backend.client().clone(), &ns, &ar), ns)
}

fn api_version_of(record: &RunRecord) -> String {
    record
        .manifest_yaml
        .split("---\n")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .find(|v| v["kind"] == record.spec.kind.as_str())
        .and_then(|v| v["apiVersion"].as_str().map(str::to_string))
        .unwrap_or_else(|| kubeflow::V1.to_string())
}

/// Replica names as the cluster's pods are named (the MPI launcher included).
pub fn replicas(record: &RunRecord) -> Vec<String> {
    if let Some(names) = &record.foreign_replicas {
        return names.clone();
    }
    let spec = &record.spec;
    let mut names: Vec<String> = spec.replicas().iter().map(|r| r.label()).collect();
    if spec.kind == JobKind::MPIJob {
        names.insert(0, "launcher-0".into());
    }
    names
}

pub(super) fn status_file(dir: &RunDir) -> std::path::PathBuf {
    dir.root.join("cluster-status.json")
}

pub fn last_status(dir: &RunDir) -> Option<JobStatus> {
    std::fs::read_to_string(status_file(dir))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

pub(super) fn save_status(dir: &RunDir, status: &JobStatus) {
    let _ = write_atomic(
        &status_file(dir),
        &serde_json::to_vec_pretty(status).unwrap_or_default(),
    );
}

/// The latest status of one run, kept current by a watch task.
#[derive(Debug, Default)]
pub struct StatusCell {
    latest: Mutex<Option<JobStatus>>,
}

impl StatusCell {
    fn get(&self) -> Option<JobStatus> {
        self.latest.lock().expect("status lock").clone()
    }
    fn set(&self, s: JobStatus) {
        *self.latest.lock().expect("status lock") = Some(s);
    }
    fn set_if_empty(&self, s: &JobStatus) {
        self.latest
            .lock()
            .expect("status lock")
            .get_or_insert_with(|| s.clone());
    }
}

/// One look at the job and its pods (GET + LIST). None when the job is gone (or is another
/// run's job of the same name).
async fn look(
    jobs: &Api<DynamicObject>,
    pods: &Api<Pod>,
    ns: &str,
    record: &RunRecord,
) -> Result<Option<JobStatus>> {
    let name = &record.spec.name;
    let job = retry(|| jobs.get_opt(name))
        .await
        .map_err(|e| api_error(e, "get", record.spec.kind.plural(), ns))?;
    let Some(job) = job else { return Ok(None) };
    let run_id = job
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(manifest::RUN_ID_LABEL));
    if record.foreign_replicas.is_none() && run_id != Some(&record.spec.run_id) {
        return Ok(None);
    }
    let lp = ListParams::default().labels(&pod_selector(name, &record.spec.run_id));
    let list = retry(|| pods.list(&lp))
        .await
        .map_err(|e| api_error(e, "list", "pods", ns))?;
    Ok(Some(status::derive(
        &serde_json::to_value(&job).unwrap_or_default(),
        &list.items,
        &replicas(record),
    )))
}

/// The run's status cell, starting its watch on first use.
fn watched(backend: &ClusterBackend, dir: &RunDir, record: &RunRecord) -> Arc<StatusCell> {
    // Jobs kflow did not make have no run id: their namespace and name tell them apart.
    let key = match record.foreign_replicas {
        Some(_) => format!(
            "{}/{}",
            backend.namespace_for(&record.spec),
            record.spec.name
        ),
        None => record.spec.run_id.clone(),
    };
    let mut watches = backend.watches.lock().expect("watches lock");
    if let Some(cell) = watches.get(&key) {
        return cell.clone();
    }
    let cell = Arc::new(StatusCell::default());
    watches.insert(key, cell.clone());
    let (jobs, ns) = jobs_api(backend, record);
    let pods: Api<Pod> = Api::namespaced(backend.client().clone(), &ns);
    let (task_cell, record, last_saved) = (cell.clone(), record.clone(), last_status(dir));
    backend.runtime().spawn(async move {
        let expected = replicas(&record);
        let mut ended = None;
        let selector = pod_selector(&record.spec.name, &record.spec.run_id);
        status::watch(
            jobs.clone(),
            pods.clone(),
            &record.spec.name,
            &selector,
            &expected,
            &mut |s: JobStatus| {
                if s.phase.is_terminal() {
                    ended = Some(s);
                } else {
                    task_cell.set(s);
                }
            },
        )
        .await;
        // The job's end can come before the pod update that says why: one fresh look.
        let last = match look(&jobs, &pods, &ns, &record).await {
            Ok(Some(s)) if s.phase.is_terminal() => Some(s),
            Ok(None) => Some(status::deleted(task_cell.get().or(last_saved))),
            _ => ended,
        };
        if let Some(s) = last {
            task_cell.set(s);
        }
    });
    cell
}

/// The run's status: from its watch once that has seen the job, else one GET + LIST.
pub fn status(backend: &ClusterBackend, dir: &RunDir, record: &RunRecord) -> Result<JobStatus> {
    let saved = last_status(dir);
    if let Some(s) = saved.as_ref().filter(|s| s.phase.is_terminal()) {
        // Ended and recorded: no need to ask the cluster again.
        if s.reason.as_deref() == Some("Cancelled") || s.reason.as_deref() == Some("Deleted") {
            return Ok(s.clone());
        }
    }
    let cell = watched(backend, dir, record);
    let status = match cell.get() {
        Some(s) => s,
        None => {
            let (jobs, ns) = jobs_api(backend, record);
            let pods: Api<Pod> = Api::namespaced(backend.client().clone(), &ns);
            let s = match backend.block_on(look(&jobs, &pods, &ns, record))? {
                Some(s) => s,
                None => status::deleted(saved.clone()),
            };
            cell.set_if_empty(&s);
            s
        }
    };
    if saved.as_ref() != Some(&status) {
        save_status(dir, &status);
    }
    Ok(status)
}
