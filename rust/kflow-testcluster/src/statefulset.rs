//! The StatefulSet controller (`apps/v1`), which runs a Notebook's pod: pods
//! `<set>-<ordinal>` from the template, owned by the set so they go with it, made one at a time
//! (OrderedReady: the next once the one before is Running and Ready) and removed from the
//! highest ordinal down; claims from `volumeClaimTemplates` (`<template>-<set>-<ordinal>`, kept
//! when the set goes, as the default retention policy says); a template change replaces the
//! pods (RollingUpdate); a finished pod is replaced. Status as the controller writes it.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::events;
use crate::owned;
use crate::resources;
use crate::store::{EventType, Store};

const COMPONENT: &str = "statefulset-controller";
pub const REVISION_LABEL: &str = "controller-revision-hash";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The apiserver's defaults for a new StatefulSet.
pub fn default_set(obj: &mut Value) {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        return;
    }
    for (field, value) in [
        ("replicas", json!(1)),
        ("podManagementPolicy", json!("OrderedReady")),
        ("revisionHistoryLimit", json!(10)),
        ("minReadySeconds", json!(0)),
        (
            "updateStrategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
        ),
        (
            "persistentVolumeClaimRetentionPolicy",
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
        ),
    ] {
        if spec[field].is_null() {
            spec[field] = value;
        }
    }
}

/// Runs until the store's change channel closes.
pub async fn run(store: Arc<Store>) {
    let mut rx = store.subscribe();
    resync(&store);
    loop {
        match rx.recv().await {
            Ok(c) if c.resource.plural == "statefulsets" && c.kind != EventType::Deleted => {
                reconcile(&store, c.namespace(), c.name())
            }
            Ok(c) if c.resource.plural == "pods" => {
                if let Some(set) = owning_set(&c.object) {
                    reconcile(&store, c.namespace(), &set);
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => resync(&store),
            Err(RecvError::Closed) => return,
        }
    }
}

fn resync(store: &Store) {
    for set in store
        .list(resources::statefulsets(), None, None, None, &|_| true)
        .items
    {
        let ns = set["metadata"]["namespace"].as_str().unwrap_or("");
        reconcile(store, ns, set["metadata"]["name"].as_str().unwrap_or(""));
    }
}

/// The StatefulSet a pod belongs to (its controller ownerReference).
fn owning_set(pod: &Value) -> Option<String> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["kind"] == json!("StatefulSet") && o["controller"] == json!(true))
        .and_then(|o| o["name"].as_str())
        .map(str::to_string)
}

/// `<set>-<hash of the template>`, the revision pods are labelled with.
fn revision(set: &Value) -> String {
    // FNV-1a: stable across runs (a restarted cluster must not replace every pod).
    let text = set["spec"]["template"].to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let name = set["metadata"]["name"].as_str().unwrap_or("");
    format!("{name}-{:010x}", h & 0xff_ffff_ffff)
}

fn is_running_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == json!("Running")
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == json!("Ready") && c["status"] == json!("True"))
}

fn is_finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

pub fn reconcile(store: &Store, ns: &str, name: &str) {
    let Some(set) = store.get(resources::statefulsets(), ns, name) else {
        return;
    };
    let uid = set["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let replicas = set["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let rev = revision(&set);
    let mut pods: Vec<(i64, Value)> = owned::list(store, resources::pods(), ns, &uid)
        .into_iter()
        .filter_map(|p| {
            let ordinal = p["metadata"]["name"]
                .as_str()?
                .strip_prefix(&format!("{name}-"))?
                .parse::<i64>()
                .ok()?;
            Some((ordinal, p))
        })
        .collect();
    pods.sort_by_key(|(i, _)| *i);
    // Scale down, and pods to replace (finished, or of an older template), highest first.
    for (i, p) in pods.iter().rev() {
        let stale = p["metadata"]["labels"][REVISION_LABEL] != json!(rev);
        if *i >= replicas || is_finished(p) || stale {
            let pod_name = p["metadata"]["name"].as_str().unwrap_or("");
            if store
                .delete(resources::pods(), ns, pod_name, false, true)
                .is_ok()
            {
                events::record(
                    store,
                    &set,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("delete Pod {pod_name} in StatefulSet {name} successful"),
                    COMPONENT,
                );
            }
            // One change per pass, as the controller waits for each pod to go.
            write_status(store, &set, &rev);
            return;
        }
    }
    let ordered = set["spec"]["podManagementPolicy"] != json!("Parallel");
    for i in 0..replicas {
        match pods.iter().find(|(o, _)| *o == i) {
            Some((_, p)) if ordered && !is_running_ready(p) => break,
            Some(_) => continue,
            None => {
                create_pod(store, &set, i, &rev);
                if ordered {
                    break;
                }
            }
        }
    }
    write_status(store, &set, &rev);
}

fn create_pod(store: &Store, set: &Value, ordinal: i64, rev: &str) {
    let ns = set["metadata"]["namespace"].as_str().unwrap_or("");
    let name = set["metadata"]["name"].as_str().unwrap_or("");
    let pod_name = format!("{name}-{ordinal}");
    let template = &set["spec"]["template"];
    let mut spec = template["spec"].clone();
    if spec["restartPolicy"].is_null() {
        spec["restartPolicy"] = json!("Always");
    }
    spec["hostname"] = json!(pod_name);
    if let Some(svc) = set["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        spec["subdomain"] = json!(svc);
    }
    for claim in set["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let volume = claim["metadata"]["name"].as_str().unwrap_or("");
        let claim_name = format!("{volume}-{name}-{ordinal}");
        ensure_claim(store, set, claim, &claim_name, &pod_name);
        let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        volumes.retain(|v| v["name"] != json!(volume));
        volumes.push(json!({"name": volume, "persistentVolumeClaim": {"claimName": claim_name}}));
        spec["volumes"] = json!(volumes);
    }
    let ordinal = ordinal.to_string();
    let pod = owned::pod_from_template(
        template,
        ns,
        &pod_name,
        &[
            (REVISION_LABEL, rev),
            (POD_NAME_LABEL, &pod_name),
            (POD_INDEX_LABEL, &ordinal),
        ],
        spec,
        ("apps/v1", "StatefulSet", name, &set["metadata"]["uid"]),
    );
    let (t, reason, msg) = match store.create(resources::pods(), pod, false) {
        Ok(_) => (
            "Normal",
            "SuccessfulCreate",
            format!("create Pod {pod_name} in StatefulSet {name} successful"),
        ),
        Err(e) => (
            "Warning",
            "FailedCreate",
            format!(
                "create Pod {pod_name} in StatefulSet {name} failed error: {}",
                e.message
            ),
        ),
    };
    events::record(store, set, t, reason, &msg, COMPONENT);
}

/// The claim a volumeClaimTemplate asks for, made (through the apiserver's defaults: the
/// default StorageClass) unless it exists.
fn ensure_claim(store: &Store, set: &Value, template: &Value, claim_name: &str, pod_name: &str) {
    let ns = set["metadata"]["namespace"].as_str().unwrap_or("");
    if store.get(resources::pvcs(), ns, claim_name).is_some() {
        return;
    }
    let mut labels = set["spec"]["selector"]["matchLabels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim_name, "namespace": ns, "labels": labels},
        "spec": template["spec"]});
    let name = set["metadata"]["name"].as_str().unwrap_or("");
    let made = crate::admission::for_create(
        store,
        &crate::validation::CrdSchemas::default(),
        resources::pvcs(),
        ns,
        claim,
    )
    .and_then(|c| store.create(resources::pvcs(), c, false));
    if made.is_ok() {
        events::record(
            store,
            set,
            "Normal",
            "SuccessfulCreate",
            &format!("create Claim {claim_name} Pod {pod_name} in StatefulSet {name} success"),
            COMPONENT,
        );
    }
}

fn write_status(store: &Store, set: &Value, rev: &str) {
    let ns = set["metadata"]["namespace"].as_str().unwrap_or("");
    let name = set["metadata"]["name"].as_str().unwrap_or("");
    let uid = set["metadata"]["uid"].as_str().unwrap_or("");
    let pods = owned::list(store, resources::pods(), ns, uid);
    let current = pods
        .iter()
        .filter(|p| p["metadata"]["labels"][REVISION_LABEL] == json!(rev))
        .count();
    let ready = pods.iter().filter(|p| is_running_ready(p)).count();
    let mut status = json!({"observedGeneration": set["metadata"]["generation"].clone(),
        "replicas": pods.len(), "availableReplicas": ready, "currentRevision": rev,
        "updateRevision": rev, "collisionCount": 0});
    // The counts below are omitted when zero, as the API's omitempty fields are.
    for (field, n) in [
        ("readyReplicas", ready),
        ("currentReplicas", current),
        ("updatedReplicas", current),
    ] {
        if n > 0 {
            status[field] = json!(n);
        }
    }
    let _ = store.update_instance(resources::statefulsets(), ns, name, uid, |old| {
        let mut new = old.clone();
        new["status"] = status;
        new
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_follows_the_template() {
        let a = json!({"metadata": {"name": "nb"}, "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
        let mut b = a.clone();
        assert_eq!(revision(&a), revision(&b));
        assert!(revision(&a).starts_with("nb-"));
        b["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b");
        assert_ne!(revision(&a), revision(&b));
    }
}
