//! Kubeflow's web APIs behind the gateway, for browsing: Pipelines (KFP v2beta1 pipelines,
//! experiments, runs), the model registry (v1alpha3 registered models and versions) seeded from
//! a fixture file, and the volumes web app's PVC list read from the cluster's store. Lists page
//! with page_size/page_token (KFP) or pageSize/nextPageToken (model registry).

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use crate::idp::TokenUser;
use crate::resources;
use crate::store::Store;

/// Seed data: `pipelines`, `experiments`, `runs` (KFP objects, each with a `namespace` unless
/// shared), `registeredModels`, `modelVersions` (model registry objects).
pub type WebFixture = Value;

fn forbidden(user: &TokenUser, ns: &str) -> Response {
    let msg = format!("Failed to authorize with API: PermissionDenied: User '{}' is not authorized with reason:  (request: namespace {ns})", user.username);
    (
        StatusCode::FORBIDDEN,
        Json(json!({"error": msg, "code": 7, "message": msg, "details": []})),
    )
        .into_response()
}

fn not_found(what: &str, id: &str) -> Response {
    let msg = format!("{what} {id} not found");
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": msg, "code": 5, "message": msg})),
    )
        .into_response()
}

/// One page of `items` from the offset in `token`; the next token when more remain.
fn page(items: Vec<Value>, size: Option<&String>, token: Option<&String>) -> (Vec<Value>, String) {
    let size = size
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(usize::MAX);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let start = token
        .and_then(|t| b64.decode(t).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let total = items.len();
    let out: Vec<Value> = items.into_iter().skip(start).take(size).collect();
    let next = start.saturating_add(out.len());
    let token = if next < total {
        b64.encode(next.to_string())
    } else {
        String::new()
    };
    (out, token)
}

/// Serves a web API path, or None when the path is not one of these APIs.
pub fn serve(
    fixture: &WebFixture,
    store: &Store,
    user: &TokenUser,
    segs: &[&str],
    q: &HashMap<String, String>,
) -> Option<Response> {
    let list = |key: &str| fixture[key].as_array().cloned().unwrap_or_default();
    let visible = |o: &Value| {
        o["namespace"]
            .as_str()
            .is_none_or(|n| n.is_empty() || user.namespaces.iter().any(|u| u == n))
    };
    Some(match segs {
        ["pipeline", "apis", "v2beta1", kind @ ("pipelines" | "experiments" | "runs")] => {
            let ns = q.get("namespace").cloned().unwrap_or_default();
            if !ns.is_empty() && !user.namespaces.contains(&ns) {
                return Some(forbidden(user, &ns));
            }
            let experiment = q.get("experiment_id");
            let items: Vec<Value> = list(kind)
                .into_iter()
                .filter(|o| {
                    visible(o) && (ns.is_empty() || o["namespace"].as_str().is_none_or(|n| n == ns))
                })
                .filter(|o| experiment.is_none_or(|e| o["experiment_id"].as_str() == Some(e)))
                .collect();
            let total = items.len();
            let (items, next) = page(items, q.get("page_size"), q.get("page_token"));
            let mut body = json!({"total_size": total, "next_page_token": next});
            body[*kind] = json!(items);
            Json(body).into_response()
        }
        ["pipeline", "apis", "v2beta1", kind @ ("pipelines" | "experiments" | "runs"), id] => {
            let key = match *kind {
                "pipelines" => "pipeline_id",
                "experiments" => "experiment_id",
                _ => "run_id",
            };
            match list(kind).into_iter().find(|o| o[key].as_str() == Some(id)) {
                Some(o) if visible(&o) => Json(o).into_response(),
                Some(o) => forbidden(user, o["namespace"].as_str().unwrap_or("")),
                None => not_found(kind.trim_end_matches('s'), id),
            }
        }
        ["api", "model_registry", "v1alpha3", kind @ ("registered_models" | "model_versions")] => {
            let key = if *kind == "registered_models" {
                "registeredModels"
            } else {
                "modelVersions"
            };
            let items = list(key);
            let total = items.len();
            let (items, next) = page(items, q.get("pageSize"), q.get("nextPageToken"));
            Json(json!({"items": items, "size": total, "pageSize": items_len(&q.get("pageSize").cloned(), total), "nextPageToken": next})).into_response()
        }
        ["api", "model_registry", "v1alpha3", "registered_models", id] => {
            match list("registeredModels")
                .into_iter()
                .find(|m| m["id"].as_str() == Some(id))
            {
                Some(m) => Json(m).into_response(),
                None => not_found("registered model", id),
            }
        }
        ["api", "model_registry", "v1alpha3", "registered_models", id, "versions"] => {
            let items: Vec<Value> = list("modelVersions")
                .into_iter()
                .filter(|v| v["registeredModelId"].as_str() == Some(id))
                .collect();
            let total = items.len();
            Json(json!({"items": items, "size": total, "pageSize": total, "nextPageToken": ""}))
                .into_response()
        }
        ["volumes", "api", "namespaces", ns, "pvcs"] => {
            if !user.namespaces.iter().any(|n| n == ns) {
                return Some((StatusCode::FORBIDDEN, Json(json!({"success": false, "status": 403,
                    "log": format!("User '{}' is not authorized to list persistentvolumeclaims for namespace: {ns}", user.username)}))).into_response());
            }
            let pvcs = resources::find("", "v1", "persistentvolumeclaims")
                .map(|r| store.list(r, Some(ns), None, None, &|_| true).items)
                .unwrap_or_default();
            let rows: Vec<Value> = pvcs
                .iter()
                .map(|p| json!({"name": p["metadata"]["name"], "namespace": ns, "age": p["metadata"]["creationTimestamp"],
                    "capacity": p["spec"]["resources"]["requests"]["storage"], "modes": p["spec"]["accessModes"],
                    "class": p["spec"]["storageClassName"].as_str().unwrap_or("standard"),
                    "status": {"phase": "ready", "message": "Bound", "state": ""}, "notebooks": []}))
                .collect();
            Json(json!({"pvcs": rows, "success": true, "status": 200, "user": user.username}))
                .into_response()
        }
        _ => return None,
    })
}

fn items_len(size: &Option<String>, total: usize) -> usize {
    size.as_ref()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(total)
        .min(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_tokens() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let (first, t) = page(items.clone(), Some(&"2".to_string()), None);
        assert_eq!(first, vec![json!(0), json!(1)]);
        let (second, t2) = page(items.clone(), Some(&"2".to_string()), Some(&t));
        assert_eq!(second, vec![json!(2), json!(3)]);
        let (last, t3) = page(items, Some(&"2".to_string()), Some(&t2));
        assert_eq!((last, t3.as_str()), (vec![json!(4)], ""));
    }
}
