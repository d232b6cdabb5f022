//! A cluster run's life: creating it (checks first, then the PVC, the code ConfigMaps and
//! the job), cancelling, deleting and restarting it from its stored record and code.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, PropagationPolicy};

use crate::artifacts;
use crate::backend::packaging::{self, Destination};
use crate::backend::{JobStatus, Phase};
use crate::error::{ClusterError, Error, JobError, Result};
use crate::records::{self, RunDir, RunRecord};
use crate::spec::{self, RunSpec};

use super::api_errors::{api_error, status_code};
use super::retry::retry;
use super::{access, code, submit, tracking};
use super::{pod_selector, ClusterBackend};

/// Connects, checks the kind is served and the user may create it while the project packs (a
/// restart reuses the stored archive), records locally, then creates the PVC, the code
/// ConfigMap(s) and the job.
pub(super) fn create(
    backend: &ClusterBackend,
    dir: &RunDir,
    mut spec: RunSpec,
    attempt: u32,
) -> Result<RunRecord> {
    // The record names the namespace, so status and restart find the job from anywhere.
    let ns = backend.namespace_for(&spec);
    spec.namespace = Some(ns.clone());
    std::fs::create_dir_all(&dir.root).map_err(Error::io("creating", &dir.root))?;
    // Packing is local CPU work and the checks are round trips: neither waits for the other.
    // The checks' verdict comes first, as when they ran first; the caller removes the run
    // folder, archive included, when either fails.
    let (checks, packed) = std::thread::scope(|scope| {
        let packing = scope.spawn(|| {
            if dir.archive().is_file() {
                return Ok(None);
            }
            packaging::package(&spec, &dir.archive(), Destination::Cluster).map(Some)
        });
        let checks = backend.block_on(async {
            let needs = access::submission_needs(spec.kind);
            let (caps, allowed) = futures::join!(
                backend.discover(),
                access::check(backend.client(), &ns, &needs)
            );
            let mpi = caps?.require(spec.kind)?;
            allowed.map(|()| mpi)
        });
        let packed = packing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (checks, packed)
    });
    let mpi = checks?;
    let (sha256, withheld) = match packed? {
        Some(archive) => (archive.sha256, archive.withheld),
        None => (artifacts::sha256_file(&dir.archive())?, Vec::new()),
    };
    let bytes = std::fs::read(dir.archive()).map_err(Error::io("reading", dir.archive()))?;
    let size = bytes.len() as u64;
    let manifests = packaging::manifests_with_code(&spec, bytes, &sha256, mpi)?;
    let parts = 1 + manifests.code_parts.len();
    let recorded = packaging::manifests_without_code(&spec, &sha256, size, parts, mpi);
    let record = RunRecord {
        manifest_yaml: recorded.to_yaml(),
        code_sha256: sha256,
        created_at: records::now(),
        attempt,
        spec,
        withheld,
        foreign_replicas: None,
    };
    dir.write_record(&record)?;
    let mut annotation = serde_json::to_value(&record).expect("record serializes");
    // The manifest is on the cluster already; the annotation keeps what restart needs.
    annotation["manifest_yaml"] = serde_json::json!("");
    let submission = submit::Submission {
        manifests: &manifests,
        namespace: &ns,
        kind: record.spec.kind,
        name: &record.spec.name,
        run_id: &record.spec.run_id,
        record_json: annotation.to_string(),
    };
    backend.block_on(submit::submit(backend.client(), &submission))?;
    Ok(record)
}

/// Deletes the job on the cluster and creates it again from the stored spec and code, with a
/// new run id; the old logs move to `attempts/<n>/`.
pub(super) fn restart(backend: &ClusterBackend, dir: &RunDir) -> Result<RunRecord> {
    let record = dir.read_record()?;
    if record.foreign_replicas.is_some() {
        return Err(Error::Job(JobError::NotRestartable {
            name: record.spec.name.clone(),
        }));
    }
    let archive = code::code_bytes(backend, dir, &record)?;
    records::write_atomic(&dir.archive(), &archive)?;
    delete_job(backend, &record, true)?;
    archive_attempt(dir, record.attempt)?;
    let mut spec = record.spec.clone();
    spec.run_id = spec::random_id(16);
    create(backend, dir, spec, record.attempt + 1)
}

/// Deletes the job (its pods and code ConfigMap go with it) after keeping its logs locally.
pub(super) fn cancel(
    backend: &ClusterBackend,
    dir: &RunDir,
    record: &RunRecord,
) -> Result<JobStatus> {
    let current = tracking::status(backend, dir, record)?;
    if current.phase.is_terminal() {
        return Ok(current);
    }
    snapshot_logs(backend, dir, record);
    delete_job(backend, record, false)?;
    let mut s = current;
    s.phase = Phase::Failed;
    s.reason = Some("Cancelled".into());
    s.message = Some("the job was cancelled (deleted from the cluster)".into());
    s.finished_at = Some(records::now());
    for r in &mut s.replicas {
        if !r.phase.is_terminal() {
            r.phase = Phase::Failed;
        }
    }
    tracking::save_status(dir, &s);
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
pub(super) fn delete_job(backend: &ClusterBackend, record: &RunRecord, wait: bool) -> Result<()> {
    let (jobs, ns) = tracking::jobs_api(backend, record);
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
            Err(e) => return Err(api_error(e, "delete", record.spec.kind.plural(), &ns)),
        }
        // The code ConfigMaps are owned by the job; deleting them too frees their names at
        // once on clusters whose garbage collector is slow (and covers a missing reference).
        // A job kflow did not make has none.
        let plain = DeleteParams::default();
        let parts = match record.foreign_replicas {
            Some(_) => Vec::new(),
            None => code::code_configmaps(&cms, record).await?,
        };
        for cm in parts {
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
            let cm_gone =
                matches!(code::code_configmaps(&cms, record).await, Ok(v) if v.is_empty());
            if job_gone && cm_gone {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Cluster(ClusterError::Api {
                    action: format!("delete job {name}"),
                    code: 0,
                    message: "it was still there after 60 s".into(),
                    fix:
                        "check for finalizers on the job (`kubectl get NAME -o yaml`) and try again"
                            .into(),
                }));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Moves a finished attempt's logs and saved status to `attempts/<n>/`, where they stay
/// readable, before the run starts again.
fn archive_attempt(dir: &RunDir, attempt: u32) -> Result<()> {
    let previous = dir.root.join("attempts").join(attempt.to_string());
    std::fs::create_dir_all(&previous).map_err(Error::io("creating", &previous))?;
    for path in [dir.logs(), tracking::status_file(dir)] {
        if path.exists() {
            let target = previous.join(path.file_name().unwrap_or_default());
            std::fs::rename(&path, &target).map_err(Error::io("moving", &path))?;
        }
    }
    Ok(())
}
