//! The HTTP front: the route table, and for the Kubernetes API the pipeline every request goes
//! through (injected faults, routing, authentication, authorization) before discovery or a verb
//! answers it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

use crate::admin;
use crate::authn;
use crate::dex::{self, Dex};
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::exec;
use crate::idp::{self, Idp};
use crate::portforward;
use crate::rbac;
use crate::request::{flag, json_response, ApiRequest, Query};
use crate::routing::{self, Target};
use crate::state::Cluster;
use crate::verbs;

const MAX_BODY: usize = 64 * 1024 * 1024;

pub fn router(cluster: Arc<Cluster>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/admin/faults",
            put(admin::put_faults).get(admin::get_faults),
        )
        .route("/admin/compact", post(admin::compact))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/exec",
            get(exec::exec).post(exec::exec),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            get(portforward::portforward).post(portforward::portforward),
        )
        .merge(realm_routes(cluster.idp.clone()))
        .merge(dex_routes(cluster.dex.clone()))
        .fallback(dispatch)
        .with_state(cluster)
}

/// The realm's endpoints, given the realm alone as their state so that `idp` needs nothing
/// of the cluster that holds it.
fn realm_routes<S: Clone + Send + Sync + 'static>(idp: Option<Arc<Idp>>) -> Router<S> {
    Router::new()
        .route(
            "/realms/{realm}/.well-known/openid-configuration",
            get(idp::discovery),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/auth",
            get(idp::auth),
        )
        .route(
            "/realms/{realm}/login-actions/authenticate",
            post(idp::authenticate),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/token",
            post(idp::token),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/certs",
            get(idp::certs),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/userinfo",
            get(idp::userinfo),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/logout",
            get(idp::logout).post(idp::logout),
        )
        .with_state(idp)
}

/// Dex's endpoints, given Dex alone as their state, as the realm's are.
fn dex_routes<S: Clone + Send + Sync + 'static>(dex: Option<Arc<Dex>>) -> Router<S> {
    Router::new()
        .route("/dex/.well-known/openid-configuration", get(dex::discovery))
        .route("/dex/keys", get(dex::keys))
        .route("/dex/auth", get(dex::auth))
        .route(
            "/dex/auth/local/login",
            get(dex::local_login_page).post(dex::local_login),
        )
        .route("/dex/auth/{connector}", get(dex::connector))
        .route("/dex/callback", get(dex::callback))
        .route("/dex/approval", get(dex::approval_page).post(dex::approval))
        .route("/dex/token", post(dex::token))
        .with_state(dex)
}

async fn dispatch(State(c): State<Arc<Cluster>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query: Query = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    if let Some(resp) = c.faults.before_request(parts.method.as_str(), &path).await {
        return resp;
    }
    let target = routing::parse(&path);
    let identity = authn::authenticate(&c, &parts.headers);
    if target != Some(Target::Version) && identity.is_none() {
        return ApiError::unauthorized().into_response();
    }
    if let (Some(Target::Resource(rp)), Some(id)) = (&target, &identity) {
        if let Err(e) = rbac::authorize(id, &parts.method, rp, flag(&query, "watch")) {
            return e.into_response();
        }
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(format!("reading body: {e}")).into_response(),
    };
    let result = match target {
        None => Err(ApiError::path_not_found()),
        Some(t) => {
            let req = ApiRequest {
                method: &parts.method,
                headers: &parts.headers,
                identity: identity.as_ref(),
                query: &query,
                body: &body,
            };
            handle(&c, t, &req).await
        }
    };
    result.unwrap_or_else(|e| e.into_response())
}

async fn handle(c: &Cluster, target: Target, req: &ApiRequest<'_>) -> ApiResult<Response> {
    let get_only = |v: Option<serde_json::Value>| -> ApiResult<Response> {
        if *req.method != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        v.map(|v| json_response(200, &v))
            .ok_or_else(ApiError::path_not_found)
    };
    match target {
        Target::Version => get_only(Some(discovery::version())),
        Target::CoreVersions => get_only(Some(discovery::core_versions(&c.server_addr))),
        Target::GroupList => get_only(Some(discovery::group_list(&c.hidden))),
        Target::Group(g) => get_only(discovery::group(&g, &c.hidden)),
        Target::ResourceList { group, version } => {
            get_only(discovery::resource_list(&group, &version, &c.hidden))
        }
        Target::OpenApiRoot => get_only(Some(discovery::openapi_root(&c.hidden))),
        Target::OpenApiGroupVersion { group, version } => get_only(
            discovery::openapi_group_version(&group, &version, &c.hidden),
        ),
        Target::Resource(rp) if c.hidden.contains(&rp.res) => Err(ApiError::path_not_found()),
        Target::Resource(rp) if rp.res.is_review() => verbs::review(&rp, req),
        Target::Resource(rp) => verbs::serve(c, rp, req).await,
    }
}
