//! Kubeflow's notebook-controller: for each Notebook (`kubeflow.org` v1 or v1beta1, one set of
//! objects) a StatefulSet `<name>` of one pod (none while the `kubeflow-resource-stopped`
//! annotation is set) running the Notebook's pod template, its first container given
//! `NB_PREFIX=/notebook/<ns>/<name>`, port 8888 (`notebook-port`) and `/home/jovyan`, and a
//! Service `<name>` port 80 -> 8888; both owned by the Notebook. The status is the controller's:
//! `readyReplicas` from the StatefulSet, `containerState` of the pod's container named like the
//! Notebook, the pod's conditions mirrored; events about the pod and the StatefulSet are
//! re-issued on the Notebook.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::events;
use crate::resources;
use crate::statefulset;
use crate::store::{now_rfc3339, EventType, Store};

pub const STOP_ANNOTATION: &str = "kubeflow-resource-stopped";
pub const NAME_LABEL: &str = "notebook-name";
pub const CONTAINER_PORT: i64 = 8888;
pub const SERVING_PORT: i64 = 80;
const COMPONENT: &str = "notebook-controller";

/// Runs until the store's change channel closes.
pub async fn run(store: Arc<Store>) {
    let mut rx = store.subscribe();
    resync(&store);
    loop {
        match rx.recv().await {
            Ok(c) => match c.resource.plural {
                "notebooks" if c.kind != EventType::Deleted => {
                    reconcile(&store, c.namespace(), c.name())
                }
                "pods" => {
                    if let Some(nb) = c.object["metadata"]["labels"][NAME_LABEL].as_str() {
                        reconcile(&store, c.namespace(), nb);
                    }
                }
                "statefulsets" | "services" => {
                    if let Some(nb) = owning_notebook(&c.object) {
                        reconcile(&store, c.namespace(), &nb);
                    }
                }
                "events" if c.kind == EventType::Added => reissue(&store, &c.object),
                _ => {}
            },
            Err(RecvError::Lagged(_)) => resync(&store),
            Err(RecvError::Closed) => return,
        }
    }
}

fn resync(store: &Store) {
    for nb in store
        .list(resources::notebooks(), None, None, None, &|_| true)
        .items
    {
        let ns = nb["metadata"]["namespace"].as_str().unwrap_or("");
        reconcile(store, ns, nb["metadata"]["name"].as_str().unwrap_or(""));
    }
}

fn owning_notebook(obj: &Value) -> Option<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["kind"] == json!("Notebook") && o["controller"] == json!(true))
        .and_then(|o| o["name"].as_str())
        .map(str::to_string)
}

/// The Notebook as the controller reads it: its Go types are v1beta1.
fn notebook_v1beta1() -> &'static resources::ResourceType {
    resources::find("kubeflow.org", "v1beta1", "notebooks").expect("notebooks is in the table")
}

fn owner_reference(nb: &Value) -> Value {
    json!([{"apiVersion": notebook_v1beta1().api_version(), "kind": "Notebook",
        "name": nb["metadata"]["name"], "uid": nb["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true}])
}

/// The StatefulSet `generateStatefulSet` makes.
fn desired_set(nb: &Value) -> Option<Value> {
    let name = nb["metadata"]["name"].as_str()?;
    let ns = nb["metadata"]["namespace"].as_str()?;
    let stopped = nb["metadata"]["annotations"].get(STOP_ANNOTATION).is_some();
    let mut labels = json!({"statefulset": name, NAME_LABEL: name});
    for (k, v) in nb["metadata"]["labels"].as_object().into_iter().flatten() {
        labels[k] = v.clone();
    }
    let mut annotations = json!({});
    for (k, v) in nb["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !k.contains("kubectl") && !k.contains("notebook") {
            annotations[k] = v.clone();
        }
    }
    let mut spec = nb["spec"]["template"]["spec"].clone();
    let container = spec["containers"].get_mut(0)?;
    if container["workingDir"].as_str().unwrap_or("").is_empty() {
        container["workingDir"] = json!("/home/jovyan");
    }
    if container["ports"].is_null() {
        container["ports"] =
            json!([{"containerPort": CONTAINER_PORT, "name": "notebook-port", "protocol": "TCP"}]);
    }
    let prefix = format!("/notebook/{ns}/{name}");
    let mut env = container["env"].as_array().cloned().unwrap_or_default();
    match env.iter_mut().find(|e| e["name"] == json!("NB_PREFIX")) {
        Some(e) => e["value"] = json!(prefix),
        None => env.push(json!({"name": "NB_PREFIX", "value": prefix})),
    }
    container["env"] = json!(env);
    if spec["securityContext"].is_null() {
        spec["securityContext"] = json!({"fsGroup": 100});
    }
    let mut set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": owner_reference(nb)},
        "spec": {"replicas": if stopped { 0 } else { 1 },
                 "selector": {"matchLabels": {"statefulset": name}},
                 "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}}});
    statefulset::default_set(&mut set);
    Some(set)
}

/// The Service `generateService` makes: port 80 to the first container's first port.
fn desired_service(nb: &Value) -> Option<Value> {
    let name = nb["metadata"]["name"].as_str()?;
    let ns = nb["metadata"]["namespace"].as_str()?;
    let target = nb["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        .as_i64()
        .unwrap_or(CONTAINER_PORT);
    Some(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": owner_reference(nb)},
        "spec": {"type": "ClusterIP", "selector": {"statefulset": name},
                 "ports": [{"name": format!("http-{name}"), "port": SERVING_PORT,
                            "targetPort": target, "protocol": "TCP"}]},
        "status": {"loadBalancer": {}}}))
}

pub fn reconcile(store: &Store, ns: &str, name: &str) {
    let Some(nb) = store.get(notebook_v1beta1(), ns, name) else {
        return;
    };
    let (Some(set), Some(service)) = (desired_set(&nb), desired_service(&nb)) else {
        return;
    };
    let sts = resources::statefulsets();
    let found = match store.get(sts, ns, name) {
        None => match store.create(sts, set.clone(), false) {
            Ok(created) => created,
            Err(e) => {
                events::record(store, &nb, "Warning", "FailedCreate", &e.message, COMPONENT);
                return;
            }
        },
        // CopyStatefulSetFields: replicas and the pod template's spec.
        Some(found)
            if found["spec"]["replicas"] != set["spec"]["replicas"]
                || found["spec"]["template"]["spec"] != set["spec"]["template"]["spec"] =>
        {
            store
                .update_with(sts, ns, name, false, |old| {
                    let mut new = old.clone();
                    new["spec"]["replicas"] = set["spec"]["replicas"].clone();
                    new["spec"]["template"]["spec"] = set["spec"]["template"]["spec"].clone();
                    Ok(new)
                })
                .unwrap_or(found)
        }
        Some(found) => found,
    };
    match store.get(resources::services(), ns, name) {
        None => {
            let _ = store.create(resources::services(), service, false);
        }
        // CopyServiceFields: the selector and the ports.
        Some(found)
            if found["spec"]["selector"] != service["spec"]["selector"]
                || found["spec"]["ports"] != service["spec"]["ports"] =>
        {
            let _ = store.update_with(resources::services(), ns, name, false, |old| {
                let mut new = old.clone();
                new["spec"]["selector"] = service["spec"]["selector"].clone();
                new["spec"]["ports"] = service["spec"]["ports"].clone();
                Ok(new)
            });
        }
        Some(_) => {}
    }
    let pod = store.get(resources::pods(), ns, &format!("{name}-0"));
    let status = notebook_status(name, &found, pod.as_ref(), &nb["status"]);
    let uid = nb["metadata"]["uid"].as_str().unwrap_or("");
    let _ = store.update_instance(notebook_v1beta1(), ns, name, uid, |old| {
        let mut new = old.clone();
        new["status"] = status;
        new
    });
}

/// `createNotebookStatus`: readyReplicas from the set; with a pod, the state of its container
/// named like the Notebook and its conditions. Times the pod leaves null are filled in, the
/// first time only (the controller writes "now"; kept after that so the status settles).
fn notebook_status(name: &str, set: &Value, pod: Option<&Value>, old: &Value) -> Value {
    let ready = set["status"]["readyReplicas"].as_i64().unwrap_or(0);
    let mut status = json!({"conditions": [], "readyReplicas": ready, "containerState": {}});
    let Some(pod) = pod.filter(|p| p["status"].is_object()) else {
        return status;
    };
    if let Some(cs) = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == json!(name))
    {
        status["containerState"] = cs["state"].clone();
    }
    let now = now_rfc3339();
    let conditions: Vec<Value> = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut nc = json!({"type": c["type"], "status": c["status"]});
            for key in ["reason", "message"] {
                if c[key].as_str().is_some_and(|s| !s.is_empty()) {
                    nc[key] = c[key].clone();
                }
            }
            let before = old["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["type"] == c["type"] && o["status"] == c["status"]);
            for key in ["lastProbeTime", "lastTransitionTime"] {
                nc[key] = match (c[key].as_str(), before.and_then(|b| b[key].as_str())) {
                    (Some(t), _) | (None, Some(t)) => json!(t),
                    (None, None) => json!(now),
                };
            }
            nc
        })
        .collect();
    status["conditions"] = json!(conditions);
    status
}

/// An event about a Notebook's pod or StatefulSet, issued again on the Notebook.
fn reissue(store: &Store, event: &Value) {
    let involved = &event["involvedObject"];
    let ns = involved["namespace"].as_str().unwrap_or("");
    let name = involved["name"].as_str().unwrap_or("");
    let nb_name = match involved["kind"].as_str() {
        Some("StatefulSet") => Some(name.to_string()),
        Some("Pod") => store.get(resources::pods(), ns, name).and_then(|p| {
            p["metadata"]["labels"][NAME_LABEL]
                .as_str()
                .map(str::to_string)
        }),
        _ => None,
    };
    let Some(nb) = nb_name.and_then(|n| store.get(notebook_v1beta1(), ns, &n)) else {
        return;
    };
    let kind = involved["kind"].as_str().unwrap_or("").to_lowercase();
    events::record(
        store,
        &nb,
        event["type"].as_str().unwrap_or("Normal"),
        event["reason"].as_str().unwrap_or(""),
        &format!(
            "Reissued from {kind}/{name}: {}",
            event["message"].as_str().unwrap_or("")
        ),
        COMPONENT,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_service_as_the_controller_makes_them() {
        let nb = json!({"metadata": {"name": "nb", "namespace": "u", "uid": "1",
            "labels": {"app": "x"}, "annotations": {STOP_ANNOTATION: "2024-01-01T00:00:00Z", "team": "a",
                "notebooks.kubeflow.org/server-type": "jupyter"}},
            "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "jupyter",
                "env": [{"name": "NB_PREFIX", "value": "/wrong"}]}]}}}});
        let set = desired_set(&nb).unwrap();
        assert_eq!(set["spec"]["replicas"], 0, "stopped");
        let tpl = &set["spec"]["template"];
        assert_eq!(
            tpl["metadata"]["labels"],
            json!({"statefulset": "nb", "notebook-name": "nb", "app": "x"})
        );
        // Only names with "kubectl" or "notebook" in them stay off the pod.
        assert_eq!(
            tpl["metadata"]["annotations"],
            json!({STOP_ANNOTATION: "2024-01-01T00:00:00Z", "team": "a"})
        );
        let c = &tpl["spec"]["containers"][0];
        assert_eq!(
            c["env"],
            json!([{"name": "NB_PREFIX", "value": "/notebook/u/nb"}])
        );
        assert_eq!(c["ports"][0]["name"], "notebook-port");
        assert_eq!(c["workingDir"], "/home/jovyan");
        assert_eq!(
            set["metadata"]["ownerReferences"][0]["apiVersion"],
            "kubeflow.org/v1beta1"
        );
        let svc = desired_service(&nb).unwrap();
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"name": "http-nb", "port": 80, "targetPort": 8888, "protocol": "TCP"})
        );
    }

    #[test]
    fn status_mirrors_the_pod() {
        let set = json!({"status": {"readyReplicas": 1}});
        assert_eq!(
            notebook_status("nb", &set, None, &Value::Null),
            json!({"conditions": [], "readyReplicas": 1, "containerState": {}})
        );
        let pod = json!({"status": {"containerStatuses": [
                {"name": "sidecar", "state": {"running": {}}},
                {"name": "nb", "state": {"waiting": {"reason": "ImagePullBackOff"}}}],
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t", "lastProbeTime": null}]}});
        let s = notebook_status("nb", &set, Some(&pod), &Value::Null);
        assert_eq!(s["containerState"]["waiting"]["reason"], "ImagePullBackOff");
        assert_eq!(s["conditions"][0]["lastTransitionTime"], "t");
        assert!(s["conditions"][0]["lastProbeTime"].is_string());
        let mut old = s.clone();
        old["conditions"][0]["lastProbeTime"] = json!("earlier");
        let again = notebook_status("nb", &set, Some(&pod), &old);
        assert_eq!(again["conditions"][0]["lastProbeTime"], "earlier");
    }
}
