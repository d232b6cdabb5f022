//! What the apiserver does to an object on its way into the store: the defaults and checks of
//! a create, the status subresource split of an update, secrets' `stringData`, then validation
//! and the training operator's webhook.

use base64::Engine;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::operator;
use crate::resources::ResourceType;
use crate::storage;
use crate::store::Store;
use crate::validation::{self, CrdSchemas};

/// A new object as the apiserver stores it: apiVersion/kind and namespace checked against the
/// URL, generateName, server-set fields dropped, initial status, then admission (which may
/// read the store: the default StorageClass).
pub fn for_create(
    store: &Store,
    crds: &CrdSchemas,
    res: &'static ResourceType,
    ns: &str,
    mut obj: Value,
) -> ApiResult<Value> {
    let want_av = res.api_version();
    match obj["apiVersion"].as_str() {
        None => obj["apiVersion"] = json!(want_av),
        Some(av) if av != want_av => {
            return Err(ApiError::bad_request(format!("the API version in the data ({av}) does not match the expected API version ({want_av})")))
        }
        _ => {}
    }
    match obj["kind"].as_str() {
        None => obj["kind"] = json!(res.kind),
        Some(k) if k != res.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )))
        }
        _ => {}
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if res.namespaced {
        match obj["metadata"]["namespace"].as_str() {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"))
            }
            _ => obj["metadata"]["namespace"] = json!(ns),
        }
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    if obj["metadata"]["name"].as_str().unwrap_or("").is_empty() {
        if let Some(g) = obj["metadata"]["generateName"].as_str() {
            obj["metadata"]["name"] = json!(format!("{g}{}", random_suffix()));
        }
    }
    for f in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "managedFields",
    ] {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove(f);
        }
    }
    if res.subresources.contains(&"status") {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    if res.plural == "pods" {
        obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        if obj["spec"]["restartPolicy"].is_null() && obj["spec"].is_object() {
            obj["spec"]["restartPolicy"] = json!("Always");
        }
    }
    if res.plural == "namespaces" {
        obj["status"] = json!({"phase": "Active"});
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    if res.plural == "persistentvolumeclaims" {
        // Bound later by the PV controller (`storage`).
        obj["status"] = json!({"phase": "Pending"});
        storage::default_class(store, &mut obj);
    }
    if res.plural == "statefulsets" {
        crate::statefulset::default_set(&mut obj);
    }
    if res.group == "batch" && res.plural == "jobs" {
        crate::batch::default_job_spec(&mut obj["spec"]);
    }
    if res.group == "batch" && res.plural == "cronjobs" {
        crate::batch::default_cronjob(&mut obj);
    }
    if res.is_training_job() {
        operator::default_job(res, &mut obj);
    }
    admit(crds, res, obj)
}

/// The last step of every write, create or update.
pub fn admit(crds: &CrdSchemas, res: &ResourceType, mut obj: Value) -> ApiResult<Value> {
    if res.plural == "secrets" {
        fold_string_data(&mut obj);
    }
    validation::validate(res, &obj, crds)?;
    if res.is_training_job() {
        validation::admit_training_job(res, &obj)?;
    }
    Ok(obj)
}

/// Puts the URL's namespace and name into a PUT body that omits them.
pub fn fill_identity(res: &ResourceType, obj: &mut Value, ns: &str, name: &str) {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if obj["metadata"]["name"].is_null() {
        obj["metadata"]["name"] = json!(name);
    }
    if res.namespaced {
        obj["metadata"]["namespace"] = json!(ns);
    }
}

/// The status subresource split: writes to the object keep the stored status, writes to
/// `/status` change only the status.
pub fn carry_status(res: &ResourceType, old: &Value, mut new: Value, sub: Option<&str>) -> Value {
    if sub == Some("status") {
        let mut out = old.clone();
        out["status"] = new["status"].clone();
        out["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"].clone();
        if out["metadata"]["resourceVersion"].is_null() {
            out["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        }
        return out;
    }
    if res.subresources.contains(&"status") {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    new
}

/// The apiserver's generateName alphabet: no vowels, so no words, and no look-alike digits.
const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub(crate) fn random_suffix() -> String {
    let mut x =
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64 ^ 0x2545_F491_4F6C_DD1D;
    (0..5)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            GENERATE_ALPHABET[(x % GENERATE_ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// Secrets: the apiserver folds write-only `stringData` into base64 `data`.
fn fold_string_data(obj: &mut Value) {
    let Some(sd) = obj.get("stringData").and_then(|v| v.as_object()).cloned() else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in sd {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or("").as_bytes());
        obj["data"][k] = json!(encoded);
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("stringData");
    }
}
