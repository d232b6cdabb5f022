//! Storage as on a cluster with the local-path provisioner: StorageClasses (one the default),
//! the DefaultStorageClass admission plugin, and the PersistentVolume controller with the
//! provisioner, which binds each claim to a new PersistentVolume `pvc-<claim uid>` backed by
//! the claim's folder under the state dir (what `volumes` mounts).
//!
//! A claim of an `Immediate` class is provisioned at once; one of a `WaitForFirstConsumer`
//! class once the scheduler picks the node for a pod that uses it (the
//! `volume.kubernetes.io/selected-node` annotation); a claim of a class that does not exist
//! stays Pending with the PV controller's `ProvisioningFailed` warning.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::events;
use crate::node::NODE_NAME;
use crate::resources;
use crate::store::{EventType, Store};
use crate::volumes::pvc_dir;

pub const PROVISIONER: &str = "rancher.io/local-path";
/// The default class, provisioned at once (like minikube's `standard`).
pub const DEFAULT_CLASS: &str = "standard";
/// A class whose claims wait for their first pod (like kind's and k3s's `local-path`).
pub const WAIT_CLASS: &str = "local-path";
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// Set by the scheduler on a waiting claim: the node its first pod goes to.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const PV_CONTROLLER: &str = "persistentvolume-controller";
/// The provisioner's event source, as local-path-provisioner's pod names it.
const PROVISIONER_COMPONENT: &str = "rancher.io/local-path_local-path-provisioner-kflow";

/// Creates the two classes unless they exist (a test may have changed or deleted them).
pub fn seed(store: &Store) {
    let classes = [
        (DEFAULT_CLASS, "Immediate", true),
        (WAIT_CLASS, "WaitForFirstConsumer", false),
    ];
    for (name, binding, default) in classes {
        if store.get(resources::storage_classes(), "", name).is_some() {
            continue;
        }
        let mut sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name}, "provisioner": PROVISIONER, "reclaimPolicy": "Delete",
            "volumeBindingMode": binding, "allowVolumeExpansion": false});
        if default {
            sc["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
        }
        let _ = store.create(resources::storage_classes(), sc, false);
    }
}

fn is_default(sc: &Value) -> bool {
    sc["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == json!("true")
}

/// The DefaultStorageClass admission plugin: a new claim that names no class (neither
/// `spec.storageClassName` nor the beta annotation; an explicit "" opts out) gets the default
/// class, the newest one when several are marked default.
pub fn default_class(store: &Store, pvc: &mut Value) {
    let beta = &pvc["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"];
    if !pvc["spec"]["storageClassName"].is_null() || !beta.is_null() || !pvc["spec"].is_object() {
        return;
    }
    let defaults = store
        .list(resources::storage_classes(), None, None, None, &is_default)
        .items;
    let newest = defaults.iter().max_by(|a, b| {
        let created = |o: &Value| {
            o["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        created(a).cmp(&created(b))
    });
    if let Some(sc) = newest {
        pvc["spec"]["storageClassName"] = sc["metadata"]["name"].clone();
    }
}

/// The claim's class, None when it names none.
pub fn class_of(pvc: &Value) -> Option<&str> {
    pvc["spec"]["storageClassName"]
        .as_str()
        .or(pvc["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].as_str())
}

pub fn is_bound(pvc: &Value) -> bool {
    pvc["status"]["phase"] == json!("Bound")
}

/// Whether an unbound claim waits for a pod before it is provisioned.
pub fn waits_for_consumer(store: &Store, pvc: &Value) -> bool {
    class_of(pvc)
        .filter(|c| !c.is_empty())
        .and_then(|c| store.get(resources::storage_classes(), "", c))
        .is_some_and(|sc| sc["volumeBindingMode"] == json!("WaitForFirstConsumer"))
}

/// The PV controller and the provisioner, until the store's change channel closes.
pub async fn run(store: Arc<Store>, state_dir: PathBuf) {
    let mut rx = store.subscribe();
    // Claims already told why they wait (one event each, as the aggregated events read).
    let mut told: HashSet<String> = HashSet::new();
    resync(&store, &state_dir, &mut told);
    loop {
        match rx.recv().await {
            Ok(c) if c.resource.plural == "persistentvolumeclaims" => match c.kind {
                EventType::Deleted => reclaim(&store, &state_dir, &c.object),
                _ => reconcile(&store, &state_dir, &c.object, &mut told),
            },
            // A class made after its claims: they bind now.
            Ok(c) if c.resource.plural == "storageclasses" && c.kind == EventType::Added => {
                resync(&store, &state_dir, &mut told)
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => resync(&store, &state_dir, &mut told),
            Err(RecvError::Closed) => return,
        }
    }
}

fn resync(store: &Store, state_dir: &Path, told: &mut HashSet<String>) {
    let claims = store
        .list(resources::pvcs(), None, None, None, &|p| !is_bound(p))
        .items;
    for pvc in claims {
        reconcile(store, state_dir, &pvc, told);
    }
}

fn reconcile(store: &Store, state_dir: &Path, pvc: &Value, told: &mut HashSet<String>) {
    if is_bound(pvc) {
        return;
    }
    let uid = pvc["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let mut tell_once = |t: &str, reason: &str, msg: &str, component: &str| {
        if told.insert(format!("{uid}/{reason}")) {
            events::record(store, pvc, t, reason, msg, component);
        }
    };
    let class = match class_of(pvc) {
        Some(c) if !c.is_empty() => c.to_string(),
        // No class: only a pre-made PersistentVolume could bind it, and there are none.
        _ => {
            tell_once(
                "Normal",
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
                PV_CONTROLLER,
            );
            return;
        }
    };
    let Some(sc) = store.get(resources::storage_classes(), "", &class) else {
        tell_once(
            "Warning",
            "ProvisioningFailed",
            &format!("storageclass.storage.k8s.io \"{class}\" not found"),
            PV_CONTROLLER,
        );
        return;
    };
    if sc["volumeBindingMode"] == json!("WaitForFirstConsumer")
        && pvc["metadata"]["annotations"][SELECTED_NODE].is_null()
    {
        tell_once(
            "Normal",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
            PV_CONTROLLER,
        );
        return;
    }
    provision(store, state_dir, pvc, &sc);
}

/// Makes the claim's volume and binds the two, as the provisioner and the PV controller do.
fn provision(store: &Store, state_dir: &Path, pvc: &Value, sc: &Value) {
    let ns = pvc["metadata"]["namespace"].as_str().unwrap_or("");
    let name = pvc["metadata"]["name"].as_str().unwrap_or("");
    let uid = pvc["metadata"]["uid"].as_str().unwrap_or("");
    let pv_name = format!("pvc-{uid}");
    events::record(
        store,
        pvc,
        "Normal",
        "Provisioning",
        &format!("External provisioner is provisioning volume for claim \"{ns}/{name}\""),
        PROVISIONER_COMPONENT,
    );
    let dir = pvc_dir(state_dir, ns, name);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        events::record(
            store,
            pvc,
            "Warning",
            "ProvisioningFailed",
            &format!(
                "failed to provision volume with StorageClass \"{}\": creating {}: {e}",
                sc["metadata"]["name"].as_str().unwrap_or(""),
                dir.display()
            ),
            PROVISIONER_COMPONENT,
        );
        return;
    }
    let storage = pvc["spec"]["resources"]["requests"]["storage"].clone();
    let access = pvc["spec"]["accessModes"].clone();
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER,
                                                      "local.path.provisioner/selected-node": NODE_NAME},
                     "finalizers": ["kubernetes.io/pv-protection"]},
        "spec": {
            "accessModes": access, "capacity": {"storage": storage},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": name, "namespace": ns,
                         "uid": uid, "resourceVersion": pvc["metadata"]["resourceVersion"]},
            "hostPath": {"path": dir.to_string_lossy(), "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}]}]}},
            "persistentVolumeReclaimPolicy": sc["reclaimPolicy"].as_str().unwrap_or("Delete"),
            "storageClassName": sc["metadata"]["name"],
            "volumeMode": pvc["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
        },
        "status": {"phase": "Bound"},
    });
    if store
        .create(resources::persistent_volumes(), pv, false)
        .is_err()
    {
        // Made by an earlier pass whose claim update lost a race: bind to it below.
        if store
            .get(resources::persistent_volumes(), "", &pv_name)
            .is_none()
        {
            return;
        }
    }
    let bound = store.update_instance(resources::pvcs(), ns, name, uid, |old| {
        let mut new = old.clone();
        new["spec"]["volumeName"] = json!(pv_name);
        if !new["metadata"]["annotations"].is_object() {
            new["metadata"]["annotations"] = json!({});
        }
        for (k, v) in [
            ("pv.kubernetes.io/bind-completed", "yes"),
            ("pv.kubernetes.io/bound-by-controller", "yes"),
            ("volume.beta.kubernetes.io/storage-provisioner", PROVISIONER),
            ("volume.kubernetes.io/storage-provisioner", PROVISIONER),
        ] {
            new["metadata"]["annotations"][k] = json!(v);
        }
        new["status"] =
            json!({"phase": "Bound", "accessModes": access, "capacity": {"storage": storage}});
        new
    });
    if bound.is_ok() {
        events::record(
            store,
            pvc,
            "Normal",
            "ProvisioningSucceeded",
            &format!("Successfully provisioned volume {pv_name}"),
            PROVISIONER_COMPONENT,
        );
    }
}

/// A deleted claim's volume under its reclaim policy: `Delete` (the classes' default) removes
/// the PersistentVolume and the data; `Retain` leaves both, the volume Released.
fn reclaim(store: &Store, state_dir: &Path, pvc: &Value) {
    let Some(pv_name) = pvc["spec"]["volumeName"].as_str() else {
        return;
    };
    let Some(pv) = store.get(resources::persistent_volumes(), "", pv_name) else {
        return;
    };
    if pv["spec"]["claimRef"]["uid"] != pvc["metadata"]["uid"] {
        return;
    }
    if pv["spec"]["persistentVolumeReclaimPolicy"] == json!("Delete") {
        let _ = store.delete(resources::persistent_volumes(), "", pv_name, false, false);
        let ns = pvc["metadata"]["namespace"].as_str().unwrap_or("");
        let name = pvc["metadata"]["name"].as_str().unwrap_or("");
        let _ = std::fs::remove_dir_all(pvc_dir(state_dir, ns, name));
    } else {
        let _ = store.update_with(resources::persistent_volumes(), "", pv_name, false, |old| {
            let mut new = old.clone();
            new["status"] = json!({"phase": "Released"});
            Ok(new)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_class_only_when_none_is_named() {
        let store = Store::new(None, 100).unwrap();
        seed(&store);
        let mut pvc = json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}});
        default_class(&store, &mut pvc);
        assert_eq!(pvc["spec"]["storageClassName"], DEFAULT_CLASS);
        let mut opted_out = json!({"spec": {"storageClassName": ""}});
        default_class(&store, &mut opted_out);
        assert_eq!(opted_out["spec"]["storageClassName"], "");
        let mut named = json!({"spec": {"storageClassName": WAIT_CLASS}});
        default_class(&store, &mut named);
        assert!(waits_for_consumer(&store, &named));
        assert!(!waits_for_consumer(&store, &pvc));
    }
}
