//! An oauth2-proxy-style gateway in front of Kubeflow's web APIs, on its own port (Kubeflow's
//! `/api/…` web routes would clash with the Kubernetes API): requests with a realm bearer token
//! pass (Istio RequestAuthentication), requests with a valid `oauth2_proxy_kubeflow` session
//! cookie pass, API routes without either get 401, everything else is redirected through
//! `/oauth2/start` to the realm's login (code + PKCE S256), back to `/oauth2/callback`.
//! Behind it: the central dashboard's `/api/workgroup/env-info` and the Jupyter web app's
//! notebook list, read from the cluster's store, and the web APIs of `webapps`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use crate::dex::Dex;
use crate::idp::{Idp, TokenUser};
use crate::jwt::now_secs;
use crate::resources;
use crate::store::Store;

pub const COOKIE: &str = "oauth2_proxy_kubeflow";

/// The images this deployment's notebook spawner offers: two of Kubeflow's and one of its own,
/// so clients can tell the deployment's list from a default one.
pub const SPAWNER_IMAGES: [&str; 3] = [
    "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-scipy:v1.10.0",
    "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-pytorch-full:v1.10.0",
    "registry.example.com/ml-team/jupyter-ml-team:2026.11",
];
pub const CLIENT_ID: &str = "kubeflow-oidc-authservice";
/// The largest request body the web APIs take (pipeline uploads).
const MAX_BODY: usize = 32 * 1024 * 1024;

pub struct Gateway {
    pub idp: Arc<Idp>,
    /// When set, login goes through Dex (`login_url=/dex/auth`) as in Kubeflow's manifests.
    pub dex: Option<Arc<Dex>>,
    pub store: Arc<Store>,
    /// `https://localhost:<port>`: a different host name than the API server and realm
    /// (127.0.0.1), so cookie jars keep the two apart as in a real deployment.
    pub base_url: String,
    pub cookie_seconds: i64,
    /// The Pipelines and model registry APIs (see `webapps`).
    pub web: crate::webapps::WebApps,
    sessions: Mutex<HashMap<String, (String, i64)>>,
    /// state nonce -> (PKCE verifier, rd)
    pending: Mutex<HashMap<String, (String, String)>>,
}

impl Gateway {
    pub fn new(
        idp: Arc<Idp>,
        dex: Option<Arc<Dex>>,
        store: Arc<Store>,
        base_url: String,
    ) -> Gateway {
        Gateway {
            idp,
            dex,
            store,
            base_url,
            web: crate::webapps::WebApps::new(&Value::Null, &[]),
            cookie_seconds: 24 * 3600,
            sessions: Mutex::default(),
            pending: Mutex::default(),
        }
    }

    fn callback_url(&self) -> String {
        format!("{}/oauth2/callback", self.base_url)
    }

    fn cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax")
    }

    /// The user of a request: a verified realm bearer token, or a live session cookie.
    fn user(&self, headers: &HeaderMap) -> Option<TokenUser> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        if let Some(u) = bearer.and_then(|t| self.idp.verify_bearer(t.trim())) {
            return Some(u);
        }
        let session = crate::idp::cookies(headers).remove(COOKIE)?;
        let username = {
            let sessions = self.sessions.lock().ok()?;
            let (user, expires) = sessions.get(&session)?;
            (*expires > now_secs()).then(|| user.clone())?
        };
        let namespaces = self
            .idp
            .config
            .users
            .iter()
            .find(|u| u.username == username)
            .map(|u| u.namespaces.clone())
            .unwrap_or_default();
        Some(TokenUser {
            username,
            namespaces,
        })
    }
}

fn redirect(location: &str, set_cookies: &[String]) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert("location", v);
    }
    for c in set_cookies {
        if let Ok(v) = c.parse() {
            resp.headers_mut().append("set-cookie", v);
        }
    }
    resp
}

/// oauth2-proxy answers 401 instead of redirecting on Kubeflow's API routes.
fn is_api_route(path: &str) -> bool {
    path.starts_with("/api/")
        || path.starts_with("/apis/")
        || path.starts_with("/ml_metadata")
        || path.contains("/api/")
}

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/oauth2/start", axum::routing::get(start))
        .route("/oauth2/callback", axum::routing::get(callback))
        .route(
            "/oauth2/sign_out",
            axum::routing::get(sign_out).post(sign_out),
        )
        .fallback(protected)
        .with_state(gw)
}

async fn start(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let rd = q
        .get("rd")
        .cloned()
        .filter(|r| r.starts_with('/'))
        .unwrap_or_else(|| "/".into());
    let nonce = gw.idp.signer.random_id();
    let verifier = format!("{}{}", gw.idp.signer.random_id(), gw.idp.signer.random_id());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    if let Ok(mut p) = gw.pending.lock() {
        p.insert(nonce.clone(), (verifier, rd.clone()));
    }
    let state = format!("{nonce}:{rd}");
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("approval_prompt", "force"),
            ("client_id", CLIENT_ID),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("redirect_uri", gw.callback_url().as_str()),
            ("response_type", "code"),
            ("scope", "openid email groups profile offline_access"),
            ("state", state.as_str()),
        ])
        .finish();
    let login = match &gw.dex {
        Some(d) => format!("{}/auth?{query}", d.issuer()),
        None => format!("{}/protocol/openid-connect/auth?{query}", gw.idp.issuer()),
    };
    redirect(&login, &[gw.cookie(&format!("{COOKIE}_csrf"), &nonce, 900)])
}

async fn callback(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let state = q.get("state").cloned().unwrap_or_default();
    let (nonce, _) = state.split_once(':').unwrap_or((state.as_str(), "/"));
    let csrf = crate::idp::cookies(&headers).remove(&format!("{COOKIE}_csrf"));
    if csrf.as_deref() != Some(nonce) {
        return (
            StatusCode::FORBIDDEN,
            "Unable to find a valid CSRF token. Please try again.",
        )
            .into_response();
    }
    let Some((verifier, rd)) = gw.pending.lock().ok().and_then(|mut p| p.remove(nonce)) else {
        return (
            StatusCode::FORBIDDEN,
            "Login session expired. Please try again.",
        )
            .into_response();
    };
    let code = q.get("code").cloned().unwrap_or_default();
    let redeemed = match &gw.dex {
        Some(d) => d.redeem_code(&code, CLIENT_ID, &gw.callback_url(), Some(&verifier)),
        None => gw
            .idp
            .redeem_code(&code, CLIENT_ID, &gw.callback_url(), Some(&verifier)),
    };
    let tokens = match redeemed {
        Ok(t) => t,
        Err(why) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal Error: {why}"),
            )
                .into_response()
        }
    };
    let Some(user) = gw
        .idp
        .verify_bearer(tokens["access_token"].as_str().unwrap_or(""))
    else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Error: token verification failed",
        )
            .into_response();
    };
    let session = gw.idp.signer.random_id();
    if let Ok(mut s) = gw.sessions.lock() {
        s.insert(
            session.clone(),
            (user.username, now_secs() + gw.cookie_seconds),
        );
    }
    redirect(
        &rd,
        &[
            gw.cookie(COOKIE, &session, gw.cookie_seconds),
            gw.cookie(&format!("{COOKIE}_csrf"), "", 0),
        ],
    )
}

async fn sign_out(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(s) = crate::idp::cookies(&headers).remove(COOKIE) {
        if let Ok(mut sessions) = gw.sessions.lock() {
            sessions.remove(&s);
        }
    }
    let rd = q
        .get("rd")
        .cloned()
        .filter(|r| r.starts_with('/'))
        .unwrap_or_else(|| "/".into());
    redirect(&rd, &[gw.cookie(COOKIE, "", 0)])
}

async fn protected(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Some(user) = gw.user(req.headers()) else {
        if is_api_route(&path) {
            return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
        let rd = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let start = format!(
            "/oauth2/start?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("rd", &rd)
                .finish()
        );
        return redirect(&start, &[]);
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        [""] => (
            [("content-type", "text/html;charset=utf-8"), ("kubeflow-userid", user.username.as_str())],
            format!("<!DOCTYPE html><html><head><title>Kubeflow Central Dashboard</title></head><body><main-page user=\"{}\"></main-page></body></html>", user.username),
        )
            .into_response(),
        ["api", "workgroup", "env-info"] => {
            let namespaces: Vec<Value> = user.namespaces.iter().map(|n| json!({"namespace": n, "role": "owner", "user": user.username})).collect();
            Json(json!({"user": user.username, "platform": {"kubeflowVersion": "1.10.0", "provider": "other://", "providerName": "other", "logoutUrl": "/oauth2/sign_out"},
                        "namespaces": namespaces, "isClusterAdmin": false})).into_response()
        }
        ["api", "workgroup", "exists"] => Json(json!({"hasAuth": true, "user": user.username, "hasWorkgroup": !user.namespaces.is_empty(),
                                                      "registrationFlowAllowed": true})).into_response(),
        // The notebook web app's spawner config (its spawner_ui_config.yaml), trimmed to what
        // a client reads: the images offered and the defaults.
        ["jupyter", "api", "config"] => Json(json!({"success": true, "status": 200, "user": user.username,
            "config": {
                "image": {"value": SPAWNER_IMAGES[0], "options": SPAWNER_IMAGES},
                "allowCustomImage": true,
                "cpu": {"value": "0.5", "limitFactor": "1.2"},
                "memory": {"value": "1Gi", "limitFactor": "1.2"},
                "gpus": {"value": {"num": "none", "vendors": [{"limitsKey": "nvidia.com/gpu", "uiName": "NVIDIA"},
                                                             {"limitsKey": "amd.com/gpu", "uiName": "AMD"}]}},
                "workspaceVolume": {"value": {"mount": "/home/jovyan", "newPvc": {"metadata": {"name": "{notebook-name}-workspace"},
                    "spec": {"resources": {"requests": {"storage": "5Gi"}}, "accessModes": ["ReadWriteOnce"]}}}},
            }})).into_response(),
        ["jupyter", "api", "namespaces", ns, "notebooks"] => {
            if !user.namespaces.iter().any(|n| n == ns) {
                return (StatusCode::FORBIDDEN, Json(json!({"success": false, "status": 403,
                    "log": format!("User '{}' is not authorized to list notebooks for namespace: {ns}", user.username)}))).into_response();
            }
            let nbs = resources::find("kubeflow.org", "v1beta1", "notebooks").map(|r| gw.store.list(r, Some(ns), None, None, &|_| true).items).unwrap_or_default();
            let rows: Vec<Value> = nbs
                .iter()
                .map(|n| {
                    let c = &n["spec"]["template"]["spec"]["containers"][0];
                    json!({"name": n["metadata"]["name"], "namespace": ns, "image": c["image"], "shortImage": c["image"],
                           "serverType": n["metadata"]["annotations"]["notebooks.kubeflow.org/server-type"].as_str().unwrap_or("jupyter"),
                           "age": n["metadata"]["creationTimestamp"], "cpu": c["resources"]["requests"]["cpu"], "memory": c["resources"]["requests"]["memory"],
                           "gpus": {"count": 0, "message": ""}, "status": {"phase": if n["status"]["readyReplicas"] == json!(1) { "ready" } else { "waiting" }, "message": "", "state": ""}})
                })
                .collect();
            Json(json!({"notebooks": rows, "success": true, "status": 200, "user": user.username})).into_response()
        }
        other => {
            let query: HashMap<String, String> = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
            let (parts, body) = req.into_parts();
            let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
            };
            let web = crate::webapps::WebRequest { method: &parts.method, headers: &parts.headers, query: &query, body: &body, user: &user };
            crate::webapps::serve(&gw.web, &gw.store, other, &web)
                .unwrap_or_else(|| (StatusCode::NOT_FOUND, "404 page not found").into_response())
        }
    }
}
