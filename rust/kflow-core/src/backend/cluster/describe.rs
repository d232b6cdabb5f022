//! `kflow describe`: one look at everything that explains a job — its spec, status and
//! conditions, each pod (phase, container state and reason, exit code, restarts, node), the
//! events of the job and its pods (FailedScheduling, FailedMount, image pulls…), and the last
//! log lines of each replica. Local jobs get the parts that exist there: spec, status, lines.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;

use crate::backend::JobStatus;
use crate::error::Result;
use crate::records::{RunDir, RunRecord};

use super::retry::{api_error, retry};
use super::status::{main_container, replica_name};
use super::{ops, pod_selector, ClusterBackend};

/// How many log lines per replica a description shows.
pub const TAIL_LINES: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub name: String,
    pub kind: String,
    pub backend: String,
    pub namespace: Option<String>,
    pub spec: serde_json::Value,
    pub status: JobStatus,
    pub conditions: Vec<Condition>,
    pub pods: Vec<PodInfo>,
    pub events: Vec<EventInfo>,
    /// Replica name -> its last lines (at most `TAIL_LINES`).
    pub logs: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub replica: Option<String>,
    pub phase: String,
    pub node: Option<String>,
    /// "waiting", "running" or "terminated" (the training container's).
    pub state: Option<String>,
    /// The state's reason (ImagePullBackOff, OOMKilled, Completed…), or the pod's own.
    pub reason: Option<String>,
    pub message: Option<String>,
    pub exit_code: Option<i32>,
    pub restarts: i32,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EventInfo {
    /// "PyTorchJob/train-x" or "Pod/train-x-worker-0".
    pub object: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    pub last_seen: Option<String>,
}

/// The last `n` lines of a text file (a replica's local log copy); empty when there is none.
pub fn tail_file(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Spec, status and the last lines of a local run.
pub fn local(
    dir: &RunDir,
    record: &RunRecord,
    status: JobStatus,
    replicas: &[String],
) -> Description {
    let logs = replicas
        .iter()
        .map(|r| (r.clone(), tail_file(&dir.log_file(r), TAIL_LINES)))
        .collect();
    base(record, status, logs)
}

fn base(record: &RunRecord, status: JobStatus, logs: BTreeMap<String, Vec<String>>) -> Description {
    Description {
        name: record.spec.name.clone(),
        kind: record.spec.kind.to_string(),
        backend: record.spec.backend.as_str().to_string(),
        namespace: record.spec.namespace.clone(),
        spec: serde_json::to_value(&record.spec).unwrap_or_default(),
        status,
        conditions: Vec::new(),
        pods: Vec::new(),
        events: Vec::new(),
        logs,
    }
}

fn pod_info(pod: &Pod) -> PodInfo {
    let status = pod.status.clone().unwrap_or_default();
    let container = main_container(pod).unwrap_or_default();
    let cs = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == container);
    let (mut state, mut reason, mut message, mut exit_code) =
        (None, status.reason.clone(), status.message.clone(), None);
    if let Some(st) = cs.and_then(|c| c.state.as_ref()) {
        if let Some(w) = &st.waiting {
            (state, reason, message) = (
                Some("waiting"),
                w.reason.clone().or(reason),
                w.message.clone().or(message),
            );
        } else if let Some(t) = &st.terminated {
            (state, reason, message, exit_code) = (
                Some("terminated"),
                t.reason.clone().or(reason),
                t.message.clone().or(message),
                Some(t.exit_code),
            );
        } else if st.running.is_some() {
            state = Some("running");
        }
    }
    // A container that ran before a restart: its exit code explains the restart.
    if exit_code.is_none() {
        exit_code = cs
            .and_then(|c| c.last_state.as_ref()?.terminated.as_ref())
            .map(|t| t.exit_code);
    }
    // A pod that cannot be scheduled has no container status; its condition says why.
    if reason.is_none() {
        if let Some(c) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        {
            (reason, message) = (c.reason.clone(), c.message.clone());
        }
    }
    PodInfo {
        name: pod.metadata.name.clone().unwrap_or_default(),
        replica: replica_name(pod),
        phase: status.phase.clone().unwrap_or_else(|| "Pending".into()),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        state: state.map(str::to_string),
        reason,
        message,
        exit_code,
        restarts: cs.map(|c| c.restart_count).unwrap_or(0),
    }
}

/// Everything about a cluster run, in one round of requests (job, pods, events, log tails).
pub fn cluster(backend: &ClusterBackend, dir: &RunDir, record: &RunRecord) -> Result<Description> {
    let status = ops::status(backend, dir, record)?;
    let replicas = ops::replicas(&record.spec);
    let (jobs, ns) = ops::jobs_api(backend, record);
    let pods_api: Api<Pod> = Api::namespaced(backend.client().clone(), &ns);
    let events_api: Api<Event> = Api::namespaced(backend.client().clone(), &ns);
    let name = record.spec.name.clone();
    let plural = format!("{}s", record.spec.kind.as_str().to_ascii_lowercase());
    backend.block_on(async {
        let job = retry(|| jobs.get_opt(&name))
            .await
            .map_err(|e| api_error(e, "get", &plural, &ns))?;
        let conditions = job
            .as_ref()
            .and_then(|j| j.data["status"]["conditions"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().map(str::to_string);
                Condition {
                    type_: s("type").unwrap_or_default(),
                    status: s("status").unwrap_or_default(),
                    reason: s("reason"),
                    message: s("message"),
                    last_transition_time: s("lastTransitionTime"),
                }
            })
            .collect();
        let lp = ListParams::default().labels(&pod_selector(&name, &record.spec.run_id));
        let mut pods = retry(|| pods_api.list(&lp))
            .await
            .map_err(|e| api_error(e, "list", "pods", &ns))?
            .items;
        pods.sort_by_key(|p| replica_name(p).unwrap_or_default());
        // Events are listed once and matched here: a field selector per object would be one
        // request per pod, and not every API server indexes involvedObject fields.
        let pod_names: Vec<String> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let every = ListParams::default();
        let all = retry(|| events_api.list(&every))
            .await
            .map_err(|e| api_error(e, "list", "events", &ns))?
            .items;
        let job_uid = job.as_ref().and_then(|j| j.metadata.uid.clone());
        let mut events: Vec<EventInfo> = all
            .into_iter()
            .filter(|e| {
                let o = &e.involved_object;
                let name_of = o.name.clone().unwrap_or_default();
                let kind = o.kind.as_deref().unwrap_or("");
                (kind == record.spec.kind.as_str()
                    && name_of == name
                    && (job_uid.is_none() || o.uid == job_uid))
                    || (kind == "Pod" && pod_names.contains(&name_of))
            })
            .map(|e| EventInfo {
                object: format!(
                    "{}/{}",
                    e.involved_object.kind.clone().unwrap_or_default(),
                    e.involved_object.name.clone().unwrap_or_default()
                ),
                type_: e.type_.clone().unwrap_or_default(),
                reason: e.reason.clone().unwrap_or_default(),
                message: e.message.clone().unwrap_or_default(),
                count: e.count.unwrap_or(1),
                last_seen: e
                    .last_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string())),
            })
            .collect();
        events.sort_by(|a, b| a.last_seen.cmp(&b.last_seen));
        // The last lines: from the pod while it has a log, else from the local copy.
        let mut logs = BTreeMap::new();
        for replica in &replicas {
            let pod = pods
                .iter()
                .find(|p| replica_name(p).as_deref() == Some(replica.as_str()));
            let mut lines = None;
            if let Some(pod) = pod.filter(|p| {
                main_container(p).is_some_and(|c| super::status::container_started(p, &c))
            }) {
                let lp = LogParams {
                    container: main_container(pod),
                    tail_lines: Some(TAIL_LINES as i64),
                    ..Default::default()
                };
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                if let Ok(text) = retry(|| pods_api.logs(&pod_name, &lp)).await {
                    lines = Some(text.lines().map(str::to_string).collect::<Vec<_>>());
                }
            }
            logs.insert(
                replica.clone(),
                lines.unwrap_or_else(|| tail_file(&dir.log_file(replica), TAIL_LINES)),
            );
        }
        let mut d = base(record, status, logs);
        d.conditions = conditions;
        d.pods = pods.iter().map(pod_info).collect();
        d.events = events;
        Ok(d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_info_reads_waiting_terminated_restarts_and_unschedulable() {
        let pod = |status: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "j-worker-0", "labels": {"training.kubeflow.org/replica-type": "worker", "training.kubeflow.org/replica-index": "0"}},
                "spec": {"nodeName": "node-a", "containers": [{"name": "pytorch", "image": "x"}]},
                "status": status,
            }))
            .unwrap()
        };
        let waiting = pod_info(&pod(
            serde_json::json!({"phase": "Pending", "containerStatuses": [{"name": "pytorch", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}}]}),
        ));
        assert_eq!(
            (
                waiting.replica.as_deref(),
                waiting.state.as_deref(),
                waiting.reason.as_deref()
            ),
            (Some("worker-0"), Some("waiting"), Some("ImagePullBackOff"))
        );
        assert_eq!(waiting.node.as_deref(), Some("node-a"));
        let restarted = pod_info(&pod(
            serde_json::json!({"phase": "Running", "containerStatuses": [{"name": "pytorch", "image": "x", "imageID": "", "ready": true, "restartCount": 2,
            "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
        ));
        assert_eq!(
            (
                restarted.state.as_deref(),
                restarted.exit_code,
                restarted.restarts
            ),
            (Some("running"), Some(137), 2)
        );
        let unschedulable = pod_info(&pod(
            serde_json::json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}]}),
        ));
        assert_eq!(unschedulable.reason.as_deref(), Some("Unschedulable"));
        assert!(unschedulable
            .message
            .unwrap()
            .contains("Insufficient nvidia.com/gpu"));
    }

    #[test]
    fn tail_file_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("master-0.log");
        std::fs::write(
            &f,
            (0..50).map(|i| format!("line {i}\n")).collect::<String>(),
        )
        .unwrap();
        let tail = tail_file(&f, TAIL_LINES);
        assert_eq!(tail.len(), 20);
        assert_eq!(
            (tail[0].as_str(), tail[19].as_str()),
            ("line 30", "line 49")
        );
        assert!(tail_file(&dir.path().join("none.log"), 5).is_empty());
    }
}
