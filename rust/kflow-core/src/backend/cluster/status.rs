//! A job's status from its conditions and its pods, with the reason a person needs: an image
//! that cannot be pulled (and which), a pod that cannot be scheduled (and why), OOMKilled,
//! CrashLoopBackOff, exit codes. `wait` watches the job and its pods; it never polls.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::Value;

use crate::backend::{JobStatus, Phase, ReplicaStatus};
use crate::kubeflow::Conditions;

/// `master-0`, `worker-1`, `launcher-0`: from the operator's labels.
pub fn replica_name(pod: &Pod) -> Option<String> {
    let labels = pod.metadata.labels.as_ref()?;
    let index = labels.get("training.kubeflow.org/replica-index");
    if let Some(rtype) = labels.get("training.kubeflow.org/replica-type") {
        return Some(format!("{}-{}", rtype.to_ascii_lowercase(), index?));
    }
    // mpi-operator (MPIJob v2beta1) labels roles, not replica types, and its one launcher has
    // no index.
    let role = labels.get("training.kubeflow.org/job-role")?;
    match (role.as_str(), index) {
        ("launcher", _) => Some("launcher-0".into()),
        ("worker", Some(i)) => Some(format!("worker-{i}")),
        _ => None,
    }
}

/// The training container: the first one (kflow's pods have one).
pub fn main_container(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()?
        .containers
        .first()
        .map(|c| c.name.clone())
}

fn container_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

/// Whether the container has produced (or can produce) logs: it runs or ran.
pub fn container_started(pod: &Pod, container: &str) -> bool {
    container_status(pod, container).is_some_and(|s| {
        let state = s.state.as_ref();
        state.is_some_and(|st| st.running.is_some() || st.terminated.is_some())
            || s.last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some())
    })
}

/// Whether this container will write no more: terminated, or its pod is finished.
pub fn container_finished(pod: &Pod, container: &str) -> bool {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    matches!(phase, "Succeeded" | "Failed")
        || container_status(pod, container)
            .is_some_and(|s| s.state.as_ref().is_some_and(|st| st.terminated.is_some()))
}

fn exit_code(s: &ContainerStatus) -> Option<i32> {
    s.state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .or_else(|| s.last_state.as_ref().and_then(|l| l.terminated.as_ref()))
        .map(|t| t.exit_code)
}

fn pod_phase(pod: &Pod) -> Phase {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => Phase::Running,
        Some("Succeeded") => Phase::Succeeded,
        Some("Failed") => Phase::Failed,
        _ => Phase::Pending,
    }
}

/// (reason, message, blocks_start) of the first thing wrong with a pod, if any.
fn problem(pod: &Pod, replica: &str) -> Option<(String, String, bool)> {
    let status = pod.status.as_ref()?;
    for cond in status.conditions.iter().flatten() {
        if cond.type_ == "PodScheduled"
            && cond.status == "False"
            && cond.reason.as_deref() == Some("Unschedulable")
        {
            let why = cond.message.clone().unwrap_or_default();
            return Some((
                "Unschedulable".into(),
                format!("{replica} cannot be scheduled: {why}"),
                true,
            ));
        }
    }
    for s in status.container_statuses.iter().flatten() {
        let state = s.state.as_ref();
        if let Some(w) = state.and_then(|st| st.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            let msg = w.message.clone().unwrap_or_default();
            match reason.as_str() {
                "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => {
                    let image = s.image.clone();
                    return Some(("ImagePullBackOff".into(), format!("{replica} cannot pull image {image:?}: check the image name and tag, and that the cluster may pull it ({msg})"), true));
                }
                "CrashLoopBackOff" => {
                    let code = exit_code(s)
                        .map(|c| format!(" (last exit code {c})"))
                        .unwrap_or_default();
                    return Some((
                        "CrashLoopBackOff".into(),
                        format!("{replica} keeps crashing{code}"),
                        false,
                    ));
                }
                "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                    return Some((reason, format!("{replica}: {msg}"), true));
                }
                _ => {}
            }
        }
        if let Some(t) = state.and_then(|st| st.terminated.as_ref()) {
            if t.reason.as_deref() == Some("OOMKilled") {
                return Some(("OOMKilled".into(), format!("{replica} was killed for using more memory than its limit (exit code {}): raise memory= or use less", t.exit_code), false));
            }
            if t.exit_code != 0 {
                return Some((
                    "Error".into(),
                    format!("{replica} exited with code {}", t.exit_code),
                    false,
                ));
            }
        }
    }
    None
}

/// The status of a job object (as JSON) and its pods. `expected` lists the replicas the spec
/// asks for, so ones without a pod yet still show as Pending.
pub fn derive(job: &Value, pods: &[Pod], expected: &[String]) -> JobStatus {
    let mut named: Vec<(String, &Pod)> = pods
        .iter()
        .filter_map(|p| replica_name(p).map(|n| (n, p)))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut replicas: Vec<ReplicaStatus> = Vec::new();
    let mut names: Vec<String> = expected.to_vec();
    for (n, _) in &named {
        if !names.contains(n) {
            names.insert(0, n.clone());
        }
    }
    for name in &names {
        let pod = named.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
        let (phase, code) = match pod {
            Some(p) => {
                let code =
                    main_container(p).and_then(|c| container_status(p, &c).and_then(exit_code));
                (pod_phase(p), code)
            }
            None => (Phase::Pending, None),
        };
        replicas.push(ReplicaStatus {
            name: name.clone(),
            phase,
            exit_code: code,
        });
    }
    let problems: Vec<(String, String, bool)> =
        named.iter().filter_map(|(n, p)| problem(p, n)).collect();
    let conditions = Conditions::of_job(job);
    let (phase, reason, message) = if conditions.phase == Phase::Failed {
        // The pod's reason (OOMKilled, exit code) says more than "PyTorchJobFailed".
        let pod_problem = problems
            .iter()
            .find(|(r, _, _)| r == "OOMKilled" || r == "Error")
            .or(problems.first());
        match pod_problem {
            Some((r, m, _)) => (
                Phase::Failed,
                Some(r.clone()),
                Some(match &conditions.message {
                    Some(cm) => format!("{m}; {cm}"),
                    None => m.clone(),
                }),
            ),
            None => (Phase::Failed, conditions.reason, conditions.message),
        }
    } else if conditions.phase == Phase::Succeeded {
        (Phase::Succeeded, conditions.reason, conditions.message)
    } else if let Some((r, m, _)) = problems.iter().find(|p| p.2) {
        (Phase::Pending, Some(r.clone()), Some(m.clone()))
    } else if let Some((r, m, _)) = problems.iter().find(|p| p.0 == "CrashLoopBackOff") {
        (Phase::Running, Some(r.clone()), Some(m.clone()))
    } else if conditions.phase == Phase::Running
        || replicas.iter().any(|r| r.phase == Phase::Running)
    {
        (Phase::Running, None, None)
    } else if named.is_empty() {
        (
            Phase::Pending,
            Some("Created".into()),
            Some("waiting for the training operator to create the pods".into()),
        )
    } else {
        let waiting = named.iter().find_map(|(n, p)| {
            let s = main_container(p).and_then(|c| container_status(p, &c).cloned())?;
            let reason = s.state?.waiting?.reason?;
            Some(format!("waiting for {n}: {reason}"))
        });
        (Phase::Pending, Some("ContainerCreating".into()), waiting)
    };
    let time = |k: &str| job["status"][k].as_str().map(str::to_string);
    JobStatus {
        phase,
        reason,
        message,
        replicas,
        started_at: time("startTime"),
        finished_at: time("completionTime"),
    }
}

/// The status when the job is gone from the cluster: the last one seen, ended.
pub fn deleted(last: Option<JobStatus>) -> JobStatus {
    match last {
        Some(s) if s.phase.is_terminal() => s,
        Some(mut s) => {
            s.phase = Phase::Failed;
            s.reason = Some("Deleted".into());
            s.message = Some("the job no longer exists on the cluster".into());
            s
        }
        None => JobStatus {
            phase: Phase::Failed,
            reason: Some("Deleted".into()),
            message: Some("the job no longer exists on the cluster".into()),
            replicas: Vec::new(),
            started_at: None,
            finished_at: None,
        },
    }
}

/// Watches the job and its pods and hands every new status to `sink`, until the job ends or
/// is deleted (the last status handed over is then terminal).
/// `selector` picks the run's pods (see `pod_selector`).
pub async fn watch(
    jobs: Api<DynamicObject>,
    pods: Api<Pod>,
    name: &str,
    selector: &str,
    expected: &[String],
    sink: &mut (dyn FnMut(JobStatus) + Send),
) {
    let mut job_events = watcher::watcher(
        jobs,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .boxed();
    let mut pod_events = watcher::watcher(pods, watcher::Config::default().labels(selector))
        .default_backoff()
        .boxed();
    let mut job: Option<Value> = None;
    let mut seen_job = false;
    let mut listed_job = false;
    let mut pod_map: BTreeMap<String, Pod> = BTreeMap::new();
    let mut last: Option<JobStatus> = None;
    loop {
        tokio::select! {
            Some(ev) = job_events.next() => match ev {
                Ok(Event::Apply(o) | Event::InitApply(o)) => {
                    seen_job = true;
                    job = serde_json::to_value(&o).ok();
                }
                Ok(Event::Delete(_)) | Ok(Event::Init) => job = None,
                Ok(Event::InitDone) => listed_job = true,
                Err(_) => {}
            },
            Some(ev) = pod_events.next() => match ev {
                Ok(Event::Apply(p) | Event::InitApply(p)) => {
                    pod_map.insert(p.metadata.name.clone().unwrap_or_default(), p);
                }
                Ok(Event::Delete(p)) => {
                    pod_map.remove(&p.metadata.name.clone().unwrap_or_default());
                }
                Ok(Event::Init) => pod_map.clear(),
                Ok(Event::InitDone) | Err(_) => {}
            },
        }
        let current = match &job {
            Some(j) => derive(j, &pod_map.values().cloned().collect::<Vec<_>>(), expected),
            // Seen and gone, or not there at all once listed: deleted.
            None if seen_job || listed_job => {
                sink(deleted(last.take()));
                return;
            }
            None => continue,
        };
        let done = current.phase.is_terminal();
        if last.as_ref() != Some(&current) {
            last = Some(current.clone());
            sink(current);
        }
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(rtype: &str, index: u32, phase: &str, status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("j-{rtype}-{index}"), "labels": {
                "training.kubeflow.org/replica-type": rtype, "training.kubeflow.org/replica-index": index.to_string()}},
            "spec": {"containers": [{"name": "pytorch", "image": "python:3.12"}]},
            "status": {"phase": phase, "containerStatuses": [status]},
        }))
        .unwrap()
    }

    fn cs(state: Value) -> Value {
        json!({"name": "pytorch", "image": "python:3.12", "imageID": "", "ready": false, "restartCount": 0, "state": state})
    }

    #[test]
    fn replica_names_from_v1_types_and_v2beta1_roles() {
        let labelled = |labels: Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "labels": labels}})).unwrap()
        };
        let v1 = labelled(
            json!({"training.kubeflow.org/replica-type": "Worker", "training.kubeflow.org/replica-index": "1"}),
        );
        assert_eq!(replica_name(&v1).as_deref(), Some("worker-1"));
        let launcher = labelled(json!({"training.kubeflow.org/job-role": "launcher"}));
        assert_eq!(replica_name(&launcher).as_deref(), Some("launcher-0"));
        let worker = labelled(
            json!({"training.kubeflow.org/job-role": "worker", "training.kubeflow.org/replica-index": "0"}),
        );
        assert_eq!(replica_name(&worker).as_deref(), Some("worker-0"));
        assert_eq!(replica_name(&labelled(json!({"app": "x"}))), None);
    }

    #[test]
    fn reasons_from_pods_and_conditions() {
        let expected = vec!["master-0".to_string(), "worker-0".to_string()];
        let created = json!({"status": {"conditions": [{"type": "Created", "status": "True"}]}});
        let s = derive(&created, &[], &expected);
        assert_eq!(
            (s.phase, s.reason.as_deref()),
            (Phase::Pending, Some("Created"))
        );
        assert_eq!(s.replicas.len(), 2);

        let bad_image = pod(
            "master",
            0,
            "Pending",
            json!({"name": "pytorch", "image": "nosuch/img:1", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}),
        );
        let s = derive(&created, &[bad_image], &expected);
        assert_eq!(s.phase, Phase::Pending);
        assert_eq!(s.reason.as_deref(), Some("ImagePullBackOff"));
        assert!(s.message.unwrap().contains("\"nosuch/img:1\""));

        let unsched: Pod = serde_json::from_value(json!({"metadata": {"name": "j-worker-0", "labels": {
            "training.kubeflow.org/replica-type": "worker", "training.kubeflow.org/replica-index": "0"}},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}})).unwrap();
        let s = derive(&created, &[unsched], &expected);
        assert_eq!(s.reason.as_deref(), Some("Unschedulable"));
        assert!(s.message.unwrap().contains("Insufficient nvidia.com/gpu"));

        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PyTorchJobFailed", "message": "PyTorchJob j is failed"}]}});
        let oom = pod(
            "worker",
            0,
            "Failed",
            cs(json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})),
        );
        let ok = pod(
            "master",
            0,
            "Succeeded",
            cs(json!({"terminated": {"exitCode": 0, "reason": "Completed"}})),
        );
        let s = derive(&failed, &[ok, oom], &expected);
        assert_eq!(
            (s.phase, s.reason.as_deref()),
            (Phase::Failed, Some("OOMKilled"))
        );
        assert_eq!(s.replicas[1].exit_code, Some(137));

        let crash = pod(
            "master",
            0,
            "Failed",
            cs(json!({"terminated": {"exitCode": 3, "reason": "Error"}})),
        );
        let s = derive(&failed, &[crash], &expected);
        assert_eq!(s.reason.as_deref(), Some("Error"));
        assert!(s
            .message
            .unwrap()
            .starts_with("master-0 exited with code 3"));

        let running = json!({"status": {"conditions": [{"type": "Running", "status": "True"}], "startTime": "2026-01-01T00:00:00Z"}});
        let looping = pod(
            "master",
            0,
            "Running",
            json!({"name": "pytorch", "image": "x", "imageID": "", "ready": false, "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}}),
        );
        let s = derive(&running, &[looping], &expected);
        assert_eq!(
            (s.phase, s.reason.as_deref()),
            (Phase::Running, Some("CrashLoopBackOff"))
        );
        assert!(s.message.unwrap().contains("last exit code 1"));
        assert_eq!(s.started_at.as_deref(), Some("2026-01-01T00:00:00Z"));
    }
}
