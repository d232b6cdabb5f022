//! A cluster run's lifecycle after submission: status (saved in the run folder so it survives
//! the job), cancel, delete, restart from the stored record and code, and adopting a run
//! found on the cluster into this machine's records (restart from any machine).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PropagationPolicy};
use serde_json::Value;

use crate::backend::{JobStatus, Phase};
use crate::error::{Error, Result};
use crate::manifest::startup::ARCHIVE_KEY as ARCHIVE_KEY_PUBLIC;
use crate::manifest::{self, MANAGED_BY};
use crate::records::{write_atomic, RunDir, RunRecord};
use crate::spec::{JobKind, RunSpec};

use super::retry::{api_error, retry, status_code};
use super::status;
use super::{job_resource, pod_selector, ClusterBackend, RECORD_ANNOTATION};

/// The job API of a recorded run: kind and API version come from its manifest.
pub fn jobs_api(backend: &ClusterBackend, record: &RunRecord) -> (Api<DynamicObject>, String) {
    let ns = backend.namespace_for(&record.spec);
    let ar = job_resource(record.spec.kind, &api_version_of(record));
    (Api::namespaced_with(backend.client().clone(), &ns, &ar), ns)
}

fn api_version_of(record: &RunRecord) -> String {
    record
        .manifest_yaml
        .split("---\n")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .find(|v| v["kind"] == record.spec.kind.as_str())
        .and_then(|v| v["apiVersion"].as_str().map(str::to_string))
        .unwrap_or_else(|| manifest::GROUP_VERSION.to_string())
}

/// Replica names as the cluster's pods are named (the MPI launcher included).
pub fn replicas(spec: &RunSpec) -> Vec<String> {
    let mut names: Vec<String> = spec.replicas().iter().map(|r| r.label()).collect();
    if spec.kind == JobKind::MPIJob {
        names.insert(0, "launcher-0".into());
    }
    names
}

fn status_file(dir: &RunDir) -> std::path::PathBuf {
    dir.root.join("cluster-status.json")
}

pub fn last_status(dir: &RunDir) -> Option<JobStatus> {
    std::fs::read_to_string(status_file(dir))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

fn save_status(dir: &RunDir, status: &JobStatus) {
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
    let plural = format!("{}s", record.spec.kind.as_str().to_ascii_lowercase());
    let job = retry(|| jobs.get_opt(name))
        .await
        .map_err(|e| api_error(e, "get", &plural, ns))?;
    let Some(job) = job else { return Ok(None) };
    if job
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(manifest::RUN_ID_LABEL))
        != Some(&record.spec.run_id)
    {
        return Ok(None);
    }
    let lp = ListParams::default().labels(&pod_selector(name, &record.spec.run_id));
    let list = retry(|| pods.list(&lp))
        .await
        .map_err(|e| api_error(e, "list", "pods", ns))?;
    Ok(Some(status::derive(
        &serde_json::to_value(&job).unwrap_or_default(),
        &list.items,
        &replicas(&record.spec),
    )))
}

/// The run's status cell, starting its watch on first use.
fn watched(backend: &ClusterBackend, dir: &RunDir, record: &RunRecord) -> Arc<StatusCell> {
    let key = record.spec.run_id.clone();
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
        let expected = replicas(&record.spec);
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

/// Waits on the run's watch until the job ends (or the timeout / interruption).
pub fn wait(
    backend: &ClusterBackend,
    dir: &RunDir,
    record: &RunRecord,
    timeout: Option<Duration>,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<JobStatus> {
    let start = Instant::now();
    loop {
        // Served by the run's watch: no request per round.
        let current = status(backend, dir, record)?;
        if current.phase.is_terminal() {
            return Ok(current);
        }
        if let Some(limit) = timeout {
            if start.elapsed() >= limit {
                return Err(Error::WaitTimeout {
                    name: record.spec.name.clone(),
                    seconds: limit.as_secs_f64(),
                    phase: current.phase.as_str().to_string(),
                });
            }
        }
        if interrupted() {
            return Ok(current);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deletes the job (its pods and code ConfigMap go with it) after keeping its logs locally.
pub fn cancel(backend: &ClusterBackend, dir: &RunDir, record: &RunRecord) -> Result<JobStatus> {
    let current = status(backend, dir, record)?;
    if current.phase.is_terminal() {
        return Ok(current);
    }
    snapshot_logs(backend, dir, record);
    delete_job(backend, record, false)?;
    let mut s = current;
    s.phase = Phase::Failed;
    s.reason = Some("Cancelled".into());
    s.message = Some("the job was cancelled (deleted from the cluster)".into());
    s.finished_at =
        Some(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
    for r in &mut s.replicas {
        if !r.phase.is_terminal() {
            r.phase = Phase::Failed;
        }
    }
    save_status(dir, &s);
    Ok(s)
}

/// Rewrites the local copy of the logs from the pods, before they are deleted.
fn snapshot_logs(backend: &ClusterBackend, dir: &RunDir, record: &RunRecord) {
    let ns = backend.namespace_for(&record.spec);
    let pods: Api<Pod> = Api::namespaced(backend.client().clone(), &ns);
    let (tx, _rx) = std::sync::mpsc::channel();
    backend.block_on(super::logs::snapshot(
        pods,
        pod_selector(&record.spec.name, &record.spec.run_id),
        dir.logs(),
        tx,
    ));
}

/// Deletes the job and, with `wait`, returns once it and its code ConfigMap are gone (so the
/// names are free for a restart).
pub fn delete_job(backend: &ClusterBackend, record: &RunRecord, wait: bool) -> Result<()> {
    let (jobs, ns) = jobs_api(backend, record);
    let name = record.spec.name.clone();
    let cms: Api<ConfigMap> = Api::namespaced(backend.client().clone(), &ns);
    backend.block_on(async {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match retry(|| jobs.delete(&name, &dp)).await {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => {
                return Err(api_error(
                    e,
                    "delete",
                    &format!("{}s", record.spec.kind.as_str().to_ascii_lowercase()),
                    &ns,
                ))
            }
        }
        // The code ConfigMaps are owned by the job; deleting them too frees their names at
        // once on clusters whose garbage collector is slow (and covers a missing reference).
        let plain = DeleteParams::default();
        for cm in code_configmaps(&cms, record).await? {
            let cm_name = cm.metadata.name.unwrap_or_default();
            match retry(|| cms.delete(&cm_name, &plain)).await {
                Ok(_) => {}
                Err(e) if status_code(&e) == Some(404) => {}
                Err(e) => return Err(api_error(e, "delete", "configmaps", &ns)),
            }
        }
        if !wait {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job_gone = matches!(retry(|| jobs.get_opt(&name)).await, Ok(None));
            let cm_gone = matches!(code_configmaps(&cms, record).await, Ok(v) if v.is_empty());
            if job_gone && cm_gone {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::ClusterApi {
                    action: format!("delete job {name}"),
                    code: 0,
                    message: "it was still there after 60 s".into(),
                    fix:
                        "check for finalizers on the job (`kubectl get NAME -o yaml`) and try again"
                            .into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

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
                .get(ARCHIVE_KEY_PUBLIC)
                .map(|b| b.0.clone())
        });
    let mut slices: Vec<(String, Vec<u8>)> = found
        .iter()
        .filter_map(|c| {
            Some((
                c.metadata.name.clone()?,
                c.binary_data
                    .as_ref()?
                    .get(super::chunks::PART_KEY)?
                    .0
                    .clone(),
            ))
        })
        .collect();
    slices.sort();
    let joined =
        (!slices.is_empty()).then(|| slices.into_iter().flat_map(|(_, b)| b).collect::<Vec<u8>>());
    whole.or(joined).ok_or_else(|| Error::ClusterApi {
        action: format!("read the code of {}", record.spec.name),
        code: 0,
        message: format!("ConfigMap {cm_name} holds no {ARCHIVE_KEY_PUBLIC}"),
        fix: "run the job again from its project folder (`kflow run`)".into(),
    })
}

/// The code ConfigMaps of a run (one, or its slices), found by its run id.
async fn code_configmaps(cms: &Api<ConfigMap>, record: &RunRecord) -> Result<Vec<ConfigMap>> {
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

/// Finds a kflow job by name on the cluster and returns its stored record.
pub fn find_record(backend: &ClusterBackend, name: &str) -> Result<Option<RunRecord>> {
    let ns = backend.namespace.clone();
    backend.block_on(async {
        for kind in JobKind::ALL {
            for version in ["kubeflow.org/v1", "kubeflow.org/v2beta1"] {
                if kind != JobKind::MPIJob && version.ends_with("v2beta1") {
                    continue;
                }
                let ar = job_resource(kind, version);
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
                if let (true, Some(text)) = (managed, record) {
                    let mut record: RunRecord =
                        serde_json::from_str(text).map_err(|e| Error::CorruptRecord {
                            path: format!("{ns}/{name} annotation {RECORD_ANNOTATION}").into(),
                            problem: e.to_string(),
                        })?;
                    if let Ok(yaml) = serde_yaml::to_string(&job) {
                        record.manifest_yaml = yaml;
                    }
                    return Ok(Some(record));
                }
            }
        }
        Ok(None)
    })
}

/// Moves a finished attempt's logs and saved status to `attempts/<n>/`, where they stay
/// readable, before the run starts again.
pub fn archive_attempt(dir: &RunDir, attempt: u32) -> Result<()> {
    let previous = dir.root.join("attempts").join(attempt.to_string());
    std::fs::create_dir_all(&previous).map_err(Error::io("creating", &previous))?;
    for path in [dir.logs(), status_file(dir)] {
        if path.exists() {
            let target = previous.join(path.file_name().unwrap_or_default());
            std::fs::rename(&path, &target).map_err(Error::io("moving", &path))?;
        }
    }
    Ok(())
}

/// A training job as a listing shows it: only the fields a list needs, read leniently.
#[derive(Debug, Clone)]
pub struct ListedJob {
    pub name: String,
    pub kind: String,
    pub run_id: Option<String>,
    pub managed: bool,
    pub phase: String,
    pub reason: Option<String>,
    pub script: String,
    pub created_at: String,
}

/// Reads one listed object; odd or partial objects still give a row.
pub fn listed_job(kind: &str, o: &DynamicObject) -> ListedJob {
    let labels = o.metadata.labels.clone().unwrap_or_default();
    let annotations = o.metadata.annotations.clone().unwrap_or_default();
    let conditions = o.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let holds = |t: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == t && c["status"] == "True")
    };
    let (phase, cond) = if let Some(c) = holds("Failed") {
        ("Failed", Some(c))
    } else if let Some(c) = holds("Succeeded") {
        ("Succeeded", Some(c))
    } else if let Some(c) = holds("Running") {
        ("Running", Some(c))
    } else {
        ("Pending", holds("Created"))
    };
    ListedJob {
        name: o.metadata.name.clone().unwrap_or_default(),
        kind: kind.to_string(),
        run_id: labels.get(manifest::RUN_ID_LABEL).cloned(),
        managed: labels.get(MANAGED_BY).is_some_and(|v| v == "kflow"),
        phase: phase.to_string(),
        reason: cond.and_then(|c| c["reason"].as_str().map(str::to_string)),
        script: annotations
            .get(manifest::SCRIPT_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        created_at: o
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
    }
}

/// Every training job of the served kinds in the connection's namespace, paged 500 at a time.
pub fn list_jobs(backend: &ClusterBackend) -> Result<Vec<ListedJob>> {
    let caps = backend.capabilities()?;
    let ns = backend.namespace.clone();
    let mut kinds = Vec::new();
    if caps.pytorchjob {
        kinds.push((JobKind::PyTorchJob, "kubeflow.org/v1"));
    }
    if caps.tfjob {
        kinds.push((JobKind::TFJob, "kubeflow.org/v1"));
    }
    if caps.mpijob_v2beta1 {
        kinds.push((JobKind::MPIJob, "kubeflow.org/v2beta1"));
    } else if caps.mpijob_v1 {
        kinds.push((JobKind::MPIJob, "kubeflow.org/v1"));
    }
    backend.block_on(async {
        let mut out = Vec::new();
        for (kind, version) in kinds {
            let ar = job_resource(kind, version);
            let api: Api<DynamicObject> = Api::namespaced_with(backend.client().clone(), &ns, &ar);
            let mut token: Option<String> = None;
            loop {
                let mut lp = ListParams::default().limit(500);
                if let Some(t) = &token {
                    lp = lp.continue_token(t);
                }
                let page = retry(|| api.list(&lp))
                    .await
                    .map_err(|e| api_error(e, "list", &ar.plural, &ns))?;
                out.extend(page.items.iter().map(|o| listed_job(kind.as_str(), o)));
                token = page.metadata.continue_.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    })
}
