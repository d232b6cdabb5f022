//! `kflow describe` of a cluster run: the job's conditions, its pods, the events of both and
//! the last lines of each replica, in one round of requests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};

use crate::backend::description::{
    tail_file, Condition, Description, EventInfo, PodInfo, TAIL_LINES,
};
use crate::error::Result;
use crate::records::{RunDir, RunRecord};

use super::api_errors::api_error;
use super::retry::retry;
use super::status::{main_container, replica_name};
use super::{pod_selector, tracking, ClusterBackend};

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
pub(super) fn describe(
    backend: &ClusterBackend,
    dir: &RunDir,
    record: &RunRecord,
) -> Result<Description> {
    let status = tracking::status(backend, dir, record)?;
    let replicas = tracking::replicas(record);
    let (jobs, ns) = tracking::jobs_api(backend, record);
    let pods_api: Api<Pod> = Api::namespaced(backend.client().clone(), &ns);
    let events_api: Api<Event> = Api::namespaced(backend.client().clone(), &ns);
    let name = record.spec.name.clone();
    backend.block_on(async {
        let job = retry(|| jobs.get_opt(&name))
            .await
            .map_err(|e| api_error(e, "get", record.spec.kind.plural(), &ns))?;
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
        let mut d = Description::of_record(record, status, logs);
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
