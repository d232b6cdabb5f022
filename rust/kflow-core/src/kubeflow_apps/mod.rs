//! Kubeflow's web apps through the gateway, as the signed-in user: [`Pipelines`] (Kubeflow
//! Pipelines' v2beta1 REST API, the one `kfp.Client` uses) and [`ModelRegistry`] (the model
//! registry's REST API, v1 or else v1alpha3). Requests carry the session's gateway cookies or
//! its bearer token (`Session::gateway_request`), on the sign-in runtime. An API the gateway has
//! no route to (a 404 that is not the app's own JSON answer) is [`AppError::NotInstalled`].
//! Lists come a page at a time: a [`Page`] carries the cursor of the next page (the app's page
//! token), which the caller passes back in a [`PageRequest`].

mod model_registry;
mod pipelines;

use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

pub use model_registry::{
    ModelArtifactInfo, ModelRegistry, ModelVersionInfo, RegisterRequest, Registered,
    RegisteredModelInfo,
};
pub use pipelines::{
    ExperimentInfo, PipelineInfo, PipelineVersionInfo, Pipelines, RunInfo, RunRequest, RunState,
    StateChange, UploadRequest, Uploaded,
};

use crate::auth::Session;
use crate::error::{AppError, Error, Result};
pub use crate::paging::{Page, PageRequest};
use crate::spec::Context;

/// One of Kubeflow's web apps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubeflowApp {
    /// Kubeflow Pipelines.
    Pipelines,
    /// The Kubeflow Model Registry.
    ModelRegistry,
}

impl fmt::Display for KubeflowApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KubeflowApp::Pipelines => "Kubeflow Pipelines",
            KubeflowApp::ModelRegistry => "the Kubeflow Model Registry",
        })
    }
}

/// A request body.
#[derive(Clone)]
enum Body {
    Empty,
    Json(Value),
    /// multipart/form-data with this boundary.
    Multipart {
        boundary: String,
        bytes: Vec<u8>,
    },
}

/// What an app answered: the status, and the body when it is a JSON object (an app's own
/// answers always are; the gateway's 404 for a missing route is not).
struct Answer {
    status: u16,
    json: Option<Value>,
    text: String,
}

/// One app, called as the session's user.
#[derive(Clone)]
struct Gateway {
    session: Session,
    app: KubeflowApp,
}

impl Gateway {
    /// Sends one request. A web session the gateway no longer accepts (401) is retried once
    /// with the bearer token.
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<Answer> {
        let session = self.session.clone();
        let app = self.app;
        let path = path.to_string();
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        crate::auth::run(async move {
            let mut token = false;
            loop {
                let mut req = session
                    .gateway_request(method.clone(), &path, token)
                    .await?
                    .query(&query);
                req = match body.clone() {
                    Body::Empty => req,
                    Body::Json(v) => req.json(&v),
                    Body::Multipart { boundary, bytes } => req
                        .header(
                            "content-type",
                            format!("multipart/form-data; boundary={boundary}"),
                        )
                        .body(bytes),
                };
                let unreachable = |problem: String| {
                    Error::App(AppError::Unreachable {
                        app,
                        url: session.endpoints().url.clone(),
                        problem,
                    })
                };
                let resp = req
                    .send()
                    .await
                    .map_err(|e| unreachable(crate::auth::describe(e)))?;
                let status = resp.status().as_u16();
                if status == 401 && !token && session.has_web_session() {
                    token = true;
                    continue;
                }
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| unreachable(crate::auth::describe(e)))?;
                let json = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .filter(Value::is_object);
                let text = String::from_utf8_lossy(&bytes).chars().take(300).collect();
                return Ok(Answer { status, json, text });
            }
        })
    }

    /// Sends one request and returns the JSON of a 2xx answer; any other answer becomes the
    /// error for `action`.
    fn call(
        &self,
        action: &str,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<Value> {
        let answer = self.send(method, path, query, body)?;
        self.check(action, answer)
    }

    fn get(&self, action: &str, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.call(action, reqwest::Method::GET, path, query, Body::Empty)
    }

    /// The JSON of a 2xx answer, else the error it means.
    fn check(&self, action: &str, answer: Answer) -> Result<Value> {
        let app = self.app;
        Err(Error::App(match (answer.status, answer.json) {
            (200..=299, Some(v)) => return Ok(v),
            (200..=299, None) => AppError::BadAnswer {
                app,
                action: action.to_string(),
                problem: format!("not a JSON object: {:?}", answer.text),
            },
            (404, None) => AppError::NotInstalled {
                app,
                url: self.session.endpoints().url.clone(),
            },
            (code, json) => AppError::Refused {
                app,
                action: action.to_string(),
                code,
                message: json
                    .as_ref()
                    .and_then(|j| j["message"].as_str().or(j["error"].as_str()))
                    .map(String::from)
                    .unwrap_or(answer.text),
            },
        }))
    }
}

/// The namespace calls use when none is given: `defaultNamespace` of the settings, else the
/// user's first Kubeflow profile namespace (asked for once, when first needed).
struct DefaultNamespace {
    configured: Option<String>,
    found: OnceLock<String>,
}

impl DefaultNamespace {
    fn new(ctx: Option<&Context>) -> DefaultNamespace {
        DefaultNamespace {
            configured: ctx
                .and_then(|c| c.settings().ok())
                .and_then(|s| s.default_namespace)
                .filter(|n| !n.trim().is_empty()),
            found: OnceLock::new(),
        }
    }

    fn resolve(&self, session: &Session, given: Option<&str>) -> Result<String> {
        if let Some(ns) = given.map(str::trim).filter(|n| !n.is_empty()) {
            return Ok(ns.to_string());
        }
        if let Some(ns) = &self.configured {
            return Ok(ns.clone());
        }
        if let Some(ns) = self.found.get() {
            return Ok(ns.clone());
        }
        let first = session.kubeflow_namespaces()?.into_iter().next().ok_or_else(|| {
            Error::invalid(
                "namespace",
                "",
                "none was given and the Kubeflow profile lists no namespace for this user",
                "pass a namespace (--namespace NS / namespace=...) or set defaultNamespace in kflow's config.toml",
            )
        })?;
        Ok(self.found.get_or_init(|| first).clone())
    }
}

/// The query of one page.
fn page_query(
    page: &PageRequest,
    size_key: &'static str,
    token_key: &'static str,
) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(size) = page.limit {
        q.push((size_key, size.to_string()));
    }
    if let Some(token) = page.cursor.as_ref().filter(|t| !t.is_empty()) {
        q.push((token_key, token.clone()));
    }
    q
}

/// A JSON field as text (None when absent or empty).
fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(String::from)
}
