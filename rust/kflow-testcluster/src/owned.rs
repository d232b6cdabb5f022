//! What the workload controllers (`statefulset`, `batch`) share about the objects they make:
//! ownership (a controller ownerReference, so the garbage collector takes them along) and pods
//! made from a template.

use serde_json::{json, Value};

use crate::resources;
use crate::store::Store;

/// Whether `obj` has an ownerReference to the object with `uid`.
pub fn owned_by(uid: &str) -> impl Fn(&Value) -> bool + '_ {
    move |o: &Value| {
        o["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == json!(uid)))
    }
}

/// The objects of `res` in `ns` that the object with `uid` owns.
pub fn list(
    store: &Store,
    res: &'static resources::ResourceType,
    ns: &str,
    uid: &str,
) -> Vec<Value> {
    store.list(res, Some(ns), None, None, &owned_by(uid)).items
}

/// A pod `pod_name` from `template` (its labels and annotations, `labels` added), running
/// `spec`, owned by `owner` (apiVersion, kind, name, uid) as its controller. The create is the
/// caller's: each controller words its events its own way.
pub fn pod_from_template(
    template: &Value,
    ns: &str,
    pod_name: &str,
    labels: &[(&str, &str)],
    spec: Value,
    owner: (&str, &str, &str, &Value),
) -> Value {
    let mut pod_labels = template["metadata"]["labels"].clone();
    if !pod_labels.is_object() {
        pod_labels = json!({});
    }
    for (k, v) in labels {
        pod_labels[*k] = json!(v);
    }
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    let (api_version, kind, name, uid) = owner;
    let owner = json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true}]);
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": ns, "labels": pod_labels, "annotations": annotations,
                     "ownerReferences": owner},
        "spec": spec, "status": {"phase": "Pending", "qosClass": "BestEffort"}})
}
