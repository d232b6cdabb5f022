//! Kubeflow's web APIs behind the gateway: Pipelines (`pipelines`), the model registry
//! (`model_registry`), both seeded from a fixture file and left out with `--without`, and the
//! volumes web app's PVC list read from the cluster's store. Shared here: the request the
//! gateway hands over and paging tokens.

use std::collections::HashMap;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use crate::components::Component;
use crate::idp::TokenUser;
use crate::model_registry::ModelRegistry;
use crate::pipelines::Pipelines;
use crate::resources;
use crate::store::Store;

/// Seed data: `pipelines`, `pipelineVersions`, `experiments`, `runs` (KFP objects, each with a
/// `namespace` unless shared), `registeredModels`, `modelVersions`, `modelArtifacts` (model
/// registry objects).
pub type WebFixture = Value;

/// One request to a web API, as the gateway passes it on.
pub struct WebRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub query: &'a HashMap<String, String>,
    pub body: &'a [u8],
    /// Who is calling (the gateway has authenticated them).
    pub user: &'a TokenUser,
}

/// The web apps a deployment has: Pipelines and the model registry unless left out.
pub struct WebApps {
    pub pipelines: Option<Pipelines>,
    pub model_registry: Option<ModelRegistry>,
}

impl WebApps {
    /// The apps seeded from `fixture` (Null: none), without the `without` components.
    pub fn new(fixture: &WebFixture, without: &[Component]) -> WebApps {
        WebApps {
            pipelines: (!without.contains(&Component::Pipelines)).then(|| Pipelines::new(fixture)),
            model_registry: (!without.contains(&Component::ModelRegistry))
                .then(|| ModelRegistry::new(fixture)),
        }
    }
}

/// One page of at most `size` of `items` from the offset in `token`; the next token when more
/// remain (empty on the last page).
pub fn page(items: Vec<Value>, size: usize, token: Option<&String>) -> (Vec<Value>, String) {
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

/// Serves a web API path, or None when the path is not one of these APIs (or its app is not
/// installed).
pub fn serve(apps: &WebApps, store: &Store, segs: &[&str], req: &WebRequest) -> Option<Response> {
    let user = req.user;
    Some(match segs {
        ["pipeline", "apis", "v2beta1", rest @ ..] => apps.pipelines.as_ref()?.serve(req, rest),
        ["api", "model_registry", "v1alpha3" | "v1", rest @ ..] => {
            apps.model_registry.as_ref()?.serve(req, rest)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_tokens() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let (first, t) = page(items.clone(), 2, None);
        assert_eq!(first, vec![json!(0), json!(1)]);
        let (second, t2) = page(items.clone(), 2, Some(&t));
        assert_eq!(second, vec![json!(2), json!(3)]);
        let (last, t3) = page(items, 2, Some(&t2));
        assert_eq!((last, t3.as_str()), (vec![json!(4)], ""));
    }
}
