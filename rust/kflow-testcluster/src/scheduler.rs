//! The default scheduler for the one node: a pod is bound only when its resource requests fit
//! in the node's allocatable minus what bound, unfinished pods use. Otherwise it stays Pending
//! with `PodScheduled=False/Unschedulable`, the real scheduler's message and a
//! `FailedScheduling` event, and is retried whenever capacity frees. Its claims must exist and
//! be bound, or (a `WaitForFirstConsumer` class) are provisioned for it before it binds.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::events;
use crate::node::{self, NODE_NAME};
use crate::resources;
use crate::storage;
use crate::store::{now_rfc3339, Store};

/// Amounts in milli-units (cpu "500m" = 500, memory "1Ki" = 1_024_000), by resource name.
pub type Amounts = BTreeMap<String, i128>;

/// A Kubernetes quantity ("64Mi", "1.5", "500m", "1e3", or a JSON number) in milli-units.
pub fn quantity_milli(q: &Value) -> Option<i128> {
    if let Some(n) = q.as_f64() {
        return Some((n * 1000.0).round() as i128);
    }
    let s = q.as_str()?.trim();
    let suffixes: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (num, mult) = suffixes
        .iter()
        .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m)))
        .unwrap_or((s, 1.0));
    let n: f64 = num.parse().ok()?;
    Some((n * mult * 1000.0).round() as i128)
}

/// One container's requests; a resource with only a limit requests its limit (the apiserver
/// defaults requests from limits, which is how `nvidia.com/gpu` is usually written).
fn container_requests(c: &Value) -> Amounts {
    let mut out = Amounts::new();
    for key in ["limits", "requests"] {
        for (name, q) in c["resources"][key].as_object().into_iter().flatten() {
            if let Some(v) = quantity_milli(q) {
                out.insert(name.clone(), v);
            }
        }
    }
    out
}

/// What the pod asks of the node: the sum over its containers, or the largest init container
/// when that is more (init containers run one at a time, before the others), plus one pod.
pub fn pod_requests(pod: &Value) -> Amounts {
    let mut total = Amounts::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        for (k, v) in container_requests(c) {
            *total.entry(k).or_default() += v;
        }
    }
    for c in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for (k, v) in container_requests(c) {
            let e = total.entry(k).or_default();
            *e = (*e).max(v);
        }
    }
    total.insert("pods".into(), 1000);
    total
}

/// Whether a pod holds node resources: bound here and not finished.
fn holds_resources(pod: &Value) -> bool {
    pod["spec"]["nodeName"].as_str() == Some(NODE_NAME)
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

/// None when `want` fits in `allocatable - used`; else the scheduler's message, e.g.
/// "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: …".
pub fn misfit(allocatable: &Value, used: &Amounts, want: &Amounts) -> Option<String> {
    let mut reasons: Vec<String> = Vec::new();
    for (name, amount) in want {
        if *amount == 0 {
            continue;
        }
        let have = allocatable
            .get(name.as_str())
            .and_then(quantity_milli)
            .unwrap_or(0);
        let in_use = used.get(name).copied().unwrap_or(0);
        if in_use + amount > have {
            reasons.push(if name == "pods" {
                "1 Too many pods".to_string()
            } else {
                format!("1 Insufficient {name}")
            });
        }
    }
    if reasons.is_empty() {
        return None;
    }
    reasons.sort();
    Some(format!(
        "0/1 nodes are available: {}. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
        reasons.join(", ")
    ))
}

/// The VolumeBinding plugin's view of a pod's claims.
enum Claims {
    Ready,
    /// Why the pod cannot go anywhere (a missing or an unbound `Immediate` claim).
    Unusable(String),
    /// Claims of `WaitForFirstConsumer` classes not yet bound: provisioned before the pod binds.
    Unbound(Vec<String>),
}

fn check_claims(store: &Store, pod: &Value) -> Claims {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let mut waiting = Vec::new();
    let mut immediate_unbound = false;
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() else {
            continue;
        };
        match store.get(resources::pvcs(), ns, claim) {
            None => {
                return Claims::Unusable(format!("persistentvolumeclaim \"{claim}\" not found"))
            }
            Some(pvc) if storage::is_bound(&pvc) => {}
            Some(pvc) if storage::waits_for_consumer(store, &pvc) => {
                waiting.push(claim.to_string())
            }
            Some(_) => immediate_unbound = true,
        }
    }
    if immediate_unbound {
        return Claims::Unusable("pod has unbound immediate PersistentVolumeClaims".into());
    }
    if waiting.is_empty() {
        Claims::Ready
    } else {
        Claims::Unbound(waiting)
    }
}

/// The message of a pod no node can take for a reason preemption cannot help with.
fn unresolvable(reason: &str) -> String {
    format!("0/1 nodes are available: {reason}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
}

pub enum Decision {
    Bound,
    Unschedulable(String),
    /// Fits, and waits for its claims to be provisioned (they are asked for).
    WaitingForVolumes,
    /// The pod was deleted or replaced meanwhile.
    Gone,
}

pub struct Scheduler {
    /// Serialises fit-and-bind so two pods never both take the last GPU.
    bind_lock: Mutex<()>,
    /// Bumped whenever capacity may have freed (a pod finished or was deleted, the node changed).
    freed: watch::Sender<u64>,
    /// What bound pods use, kept between attempts (a bind adds to it) and summed afresh after
    /// capacity frees: thousands of pending pods retrying must not each walk every pod.
    used: Mutex<Option<Amounts>>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            bind_lock: Mutex::new(()),
            freed: watch::channel(0).0,
            used: Mutex::new(None),
        }
    }
}

impl Scheduler {
    pub fn capacity_freed(&self) {
        *self.used.lock().expect("scheduler lock") = None;
        self.freed.send_modify(|n| *n += 1);
    }

    /// A claim changed: pods waiting on claims try again (what they use is unchanged).
    pub fn claims_changed(&self) {
        self.freed.send_modify(|n| *n += 1);
    }

    /// Subscribe before `try_bind`, then wait on it: a release in between is not missed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.freed.subscribe()
    }

    /// Binds the pod to the node when it fits (sets `spec.nodeName`); otherwise records it as
    /// unschedulable (status condition, and an event when the message is new).
    pub fn try_bind(&self, store: &Store, ns: &str, name: &str, uid: &str) -> Decision {
        let _guard = self.bind_lock.lock();
        let Some(pod) = store
            .get(resources::pods(), ns, name)
            .filter(|p| p["metadata"]["uid"] == json!(uid))
        else {
            return Decision::Gone;
        };
        if pod["spec"]["nodeName"] == json!(NODE_NAME) {
            return Decision::Bound;
        }
        let mut cached = self.used.lock().expect("scheduler lock");
        let used = cached.get_or_insert_with(|| {
            let mut used = Amounts::new();
            store.visit(resources::pods(), &mut |p| {
                if holds_resources(p) {
                    for (k, v) in pod_requests(p) {
                        *used.entry(k).or_default() += v;
                    }
                }
            });
            used
        });
        let wanted = pod_requests(&pod);
        let claims = check_claims(store, &pod);
        let message = match &claims {
            Claims::Unusable(reason) => Some(unresolvable(reason)),
            _ => misfit(&node::allocatable(store), used, &wanted),
        };
        if let (None, Claims::Unbound(waiting)) = (&message, &claims) {
            for claim in waiting {
                let _ = store.update_with(resources::pvcs(), ns, claim, false, |old| {
                    let mut new = old.clone();
                    if !new["metadata"]["annotations"].is_object() {
                        new["metadata"]["annotations"] = json!({});
                    }
                    new["metadata"]["annotations"][storage::SELECTED_NODE] = json!(NODE_NAME);
                    Ok(new)
                });
            }
            return Decision::WaitingForVolumes;
        }
        let mut changed = false;
        let result = store.update_instance(resources::pods(), ns, name, uid, |old| {
            let mut new = old.clone();
            match &message {
                None => new["spec"]["nodeName"] = json!(NODE_NAME),
                Some(msg) => {
                    let cond = &old["status"]["conditions"][0];
                    changed = cond["message"] != json!(msg);
                    if changed {
                        new["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                            "reason": "Unschedulable", "message": msg, "lastProbeTime": null,
                            "lastTransitionTime": now_rfc3339()}]);
                    }
                }
            }
            new
        });
        let Ok(updated) = result else {
            return Decision::Gone;
        };
        match message {
            None => {
                for (k, v) in wanted {
                    *used.entry(k).or_default() += v;
                }
                Decision::Bound
            }
            Some(msg) => {
                if changed {
                    events::record(
                        store,
                        &updated,
                        "Warning",
                        "FailedScheduling",
                        &msg,
                        "default-scheduler",
                    );
                }
                Decision::Unschedulable(msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_milli(&json!("500m")), Some(500));
        assert_eq!(quantity_milli(&json!("2")), Some(2000));
        assert_eq!(quantity_milli(&json!(1)), Some(1000));
        assert_eq!(
            quantity_milli(&json!("8Gi")),
            Some(8 * 1_073_741_824 * 1000)
        );
        assert_eq!(quantity_milli(&json!("1e3")), Some(1_000_000));
        assert_eq!(quantity_milli(&json!("x")), None);
    }

    #[test]
    fn requests_default_from_limits_and_init_max() {
        let pod = json!({"spec": {
            "initContainers": [{"resources": {"requests": {"cpu": "3"}}}],
            "containers": [
                {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2", "nvidia.com/gpu": 1}}},
                {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}});
        let r = pod_requests(&pod);
        assert_eq!(r["cpu"], 3000, "init container's 3 beats 1 + 0.5");
        assert_eq!(r["nvidia.com/gpu"], 1000, "limit stands in for the request");
        assert_eq!(r["pods"], 1000);
    }

    #[test]
    fn misfit_messages() {
        let alloc = json!({"cpu": "4", "memory": "8Gi", "pods": "2", "nvidia.com/gpu": "0"});
        let want: Amounts = [
            ("cpu".into(), 2000),
            ("nvidia.com/gpu".into(), 1000),
            ("pods".into(), 1000),
        ]
        .into();
        let mut used = Amounts::new();
        assert_eq!(
            misfit(&alloc, &used, &want).unwrap(),
            "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
        used.insert("cpu".into(), 3000);
        used.insert("pods".into(), 2000);
        assert!(misfit(&alloc, &used, &want)
            .unwrap()
            .contains("1 Insufficient cpu, 1 Insufficient nvidia.com/gpu, 1 Too many pods."));
        let small: Amounts = [("cpu".into(), 1000)].into();
        assert_eq!(misfit(&alloc, &Amounts::new(), &small), None);
    }
}
