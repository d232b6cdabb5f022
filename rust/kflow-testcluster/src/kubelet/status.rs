//! The pod's status as the kubelet writes it: per-container states, and the phase and
//! conditions derived from them.

use serde_json::{json, Value};

use super::Kubelet;
use crate::resources;
use crate::store::now_rfc3339;

impl Kubelet {
    /// Read-modify-write of the pod's status; false when the pod is gone or was replaced.
    pub(super) fn update_pod(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        f: impl FnOnce(&mut Value),
    ) -> bool {
        self.store
            .update_instance(resources::pods(), ns, name, uid, |old| {
                let mut new = old.clone();
                f(&mut new);
                recompute_phase(&mut new);
                new
            })
            .is_ok()
    }
}

/// A container status that has not started yet, waiting for `reason`.
pub(super) fn waiting(c: &Value, reason: &str) -> Value {
    json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "started": false,
           "restartCount": 0, "state": {"waiting": {"reason": reason}}, "lastState": {}})
}

pub(super) fn with_status(pod: &mut Value, init: bool, cname: &str, f: impl FnOnce(&mut Value)) {
    let key = if init {
        "initContainerStatuses"
    } else {
        "containerStatuses"
    };
    if let Some(s) = pod["status"][key]
        .as_array_mut()
        .and_then(|a| a.iter_mut().find(|s| s["name"].as_str() == Some(cname)))
    {
        f(s);
    }
}

/// Pod phase and conditions from the container states, as the kubelet computes them.
fn recompute_phase(pod: &mut Value) {
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let inits = pod["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let started = |s: &Value| {
        !s["state"]["running"].is_null()
            || !s["state"]["terminated"].is_null()
            || !s["lastState"]["terminated"].is_null()
    };
    let init_failed = inits.iter().any(|s| {
        s["state"]["terminated"]["exitCode"]
            .as_i64()
            .is_some_and(|c| c != 0)
    }) && pod["spec"]["restartPolicy"] == json!("Never");
    let all_terminated =
        !statuses.is_empty() && statuses.iter().all(|s| !s["state"]["terminated"].is_null());
    let phase = if init_failed {
        "Failed"
    } else if all_terminated {
        if statuses
            .iter()
            .all(|s| s["state"]["terminated"]["exitCode"] == json!(0))
        {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if !statuses.is_empty() && statuses.iter().all(started) {
        "Running"
    } else {
        "Pending"
    };
    pod["status"]["phase"] = json!(phase);
    let ready = !statuses.is_empty() && statuses.iter().all(|s| !s["state"]["running"].is_null());
    let initialized = inits
        .iter()
        .all(|s| s["state"]["terminated"]["exitCode"] == json!(0));
    let now = now_rfc3339();
    let mut conds = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut set = |t: &str, ok: bool, reason: Option<&str>| {
        let status = if ok { "True" } else { "False" };
        match conds.iter_mut().find(|c| c["type"] == json!(t)) {
            Some(c) if c["status"] == json!(status) => {}
            Some(c) => {
                c["status"] = json!(status);
                c["lastTransitionTime"] = json!(now);
                c["reason"] = reason.map(|r| json!(r)).unwrap_or(Value::Null);
            }
            None => {
                let mut c = json!({"type": t, "status": status, "lastTransitionTime": now, "lastProbeTime": null});
                if let Some(r) = reason {
                    c["reason"] = json!(r);
                }
                conds.push(c);
            }
        }
    };
    let done = matches!(phase, "Succeeded" | "Failed");
    let why = if done {
        Some("PodCompleted")
    } else if ready {
        None
    } else {
        Some("ContainersNotReady")
    };
    set(
        "Initialized",
        initialized || done,
        if initialized {
            None
        } else {
            Some("ContainersNotInitialized")
        },
    );
    set("ContainersReady", ready, why);
    set("Ready", ready, why);
    pod["status"]["conditions"] = json!(conds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases() {
        let mut p = json!({"spec": {"restartPolicy": "Never"}, "status": {"containerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 0}}},
            {"name": "b", "state": {"running": {}}}]}});
        recompute_phase(&mut p);
        assert_eq!(p["status"]["phase"], "Running");
        p["status"]["containerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 2}});
        recompute_phase(&mut p);
        assert_eq!(p["status"]["phase"], "Failed");
        p["status"]["containerStatuses"][1]["state"] =
            json!({"waiting": {"reason": "ContainerCreating"}});
        recompute_phase(&mut p);
        assert_eq!(p["status"]["phase"], "Pending");
    }
}
