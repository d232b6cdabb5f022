//! PATCH bodies: JSON merge patch, JSON patch, strategic merge patch and server-side apply.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            other => Err(ApiError::unsupported_media(other)),
        }
    }
}

pub fn parse_body(kind: PatchKind, body: &[u8]) -> ApiResult<Value> {
    match kind {
        // Apply bodies are YAML (a superset of JSON).
        PatchKind::Apply => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}"))),
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

/// Applies a patch to `target`. Custom resources have no strategic-merge metadata on a real
/// server, which then rejects strategic patches for them; `builtin` says whether lists may be
/// merged by key.
pub fn apply(kind: PatchKind, target: &Value, patch: &Value, builtin: bool) -> ApiResult<Value> {
    let mut out = target.clone();
    match kind {
        PatchKind::Merge => json_patch::merge(&mut out, patch),
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding json patch: {e}")))?;
            json_patch::patch(&mut out, &p).map_err(|e| {
                ApiError::invalid("Patch", "", "", vec![("patch".into(), e.to_string())])
            })?;
        }
        PatchKind::Strategic => {
            if !builtin {
                return Err(ApiError::unsupported_media(
                    "application/strategic-merge-patch+json",
                ));
            }
            strategic_merge(&mut out, patch);
        }
        // Server-side apply without managed fields: the applied config is merged over the live
        // object, lists merged by name as for strategic merge. Enough for kubectl apply --server-side.
        PatchKind::Apply => strategic_merge(&mut out, patch),
    }
    Ok(out)
}

/// The merge keys kubectl relies on for the kinds served here.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "volumes" | "env" | "volumeMounts"
        | "imagePullSecrets" => Some("name"),
        "ports" => Some("containerPort"),
        "conditions" => Some("type"),
        _ => None,
    }
}

/// Strategic merge: maps merge recursively, `null` deletes, lists of objects with a known merge
/// key merge element-wise, other lists are replaced. `$patch`/`$retainKeys`/`$setElementOrder`
/// directives are honoured only as far as dropping them from the result.
fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(pmap) = patch else {
        *target = patch.clone();
        return;
    };
    if pmap.get("$patch").and_then(|v| v.as_str()) == Some("replace") {
        let mut p = patch.clone();
        strip_directives(&mut p);
        *target = p;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let tmap = target.as_object_mut().expect("made an object above");
    for (k, pv) in pmap {
        if k.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            tmap.remove(k);
            continue;
        }
        match (tmap.get_mut(k), pv, merge_key(k)) {
            (Some(Value::Array(tlist)), Value::Array(plist), Some(key)) => {
                for pitem in plist {
                    let pk = &pitem[key];
                    if pitem.get("$patch").and_then(|v| v.as_str()) == Some("delete") {
                        tlist.retain(|t| &t[key] != pk);
                    } else if let Some(t) =
                        tlist.iter_mut().find(|t| !pk.is_null() && &t[key] == pk)
                    {
                        strategic_merge(t, pitem);
                    } else {
                        let mut p = pitem.clone();
                        strip_directives(&mut p);
                        tlist.push(p);
                    }
                }
            }
            (Some(t @ Value::Object(_)), Value::Object(_), _) => strategic_merge(t, pv),
            _ => {
                let mut p = pv.clone();
                strip_directives(&mut p);
                tmap.insert(k.clone(), p);
            }
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_and_json_patch() {
        let t = json!({"a": 1, "b": {"c": 2}});
        assert_eq!(
            apply(
                PatchKind::Merge,
                &t,
                &json!({"b": {"c": null, "d": 3}}),
                false
            )
            .unwrap(),
            json!({"a": 1, "b": {"d": 3}})
        );
        let p = json!([{"op": "replace", "path": "/a", "value": 5}]);
        assert_eq!(apply(PatchKind::Json, &t, &p, false).unwrap()["a"], 5);
        let bad = json!([{"op": "remove", "path": "/zzz"}]);
        assert_eq!(
            apply(PatchKind::Json, &t, &bad, false).unwrap_err().code,
            422
        );
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let t = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let p = json!({"spec": {"containers": [{"name": "b", "image": "z"}], "$setElementOrder/containers": []}});
        let out = apply(PatchKind::Strategic, &t, &p, true).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]}})
        );
        assert_eq!(
            apply(PatchKind::Strategic, &t, &p, false).unwrap_err().code,
            415
        );
    }
}
