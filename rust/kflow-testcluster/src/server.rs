//! The HTTP front: authentication, routing, and the verbs (get, list, watch, create, update,
//! patch, delete) over the store, with admission on every write.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::faults::Faults;
use crate::idp;
use crate::logs::{self, LogOptions};
use crate::operator;
use crate::patch::{self, PatchKind};
use crate::resources::ResourceType;
use crate::routing::{self, ResourcePath, Target};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::Store;
use crate::table;
use crate::validation::{self, CrdSchemas};
use crate::watch::{self, WatchRequest};

/// Everything a request handler needs.
pub struct Cluster {
    pub store: Arc<Store>,
    pub state_dir: PathBuf,
    /// Bearer tokens the API server accepts.
    pub tokens: std::sync::RwLock<Vec<String>>,
    /// Pods' service-account tokens.
    pub sa_tokens: Arc<crate::serviceaccount::TokenIssuer>,
    pub crds: CrdSchemas,
    /// `host:port` the server listens on, for discovery's serverAddressByClientCIDRs.
    pub server_addr: String,
    pub faults: Faults,
    /// The Keycloak-style realm whose tokens the API server also accepts.
    pub idp: Option<Arc<crate::idp::Idp>>,
    /// The Dex front at `/dex`, when configured in the realm config.
    pub dex: Option<Arc<crate::dex::Dex>>,
    /// The kubelet, for pods/exec.
    pub kubelet: Arc<crate::kubelet::Kubelet>,
    /// Types in the table this cluster does not serve (one of the two MPIJob versions).
    pub hidden: Vec<&'static ResourceType>,
}

/// Who is calling: the static token is cluster-admin; realm users and pods' service accounts
/// act in their namespaces.
#[derive(Debug, Clone)]
pub enum Identity {
    Admin,
    User(crate::idp::TokenUser),
}

type Query = HashMap<String, String>;

const MAX_BODY: usize = 64 * 1024 * 1024;

pub fn router(cluster: Arc<Cluster>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(|| async { "ok" }))
        .route("/livez", axum::routing::get(|| async { "ok" }))
        .route(
            "/admin/faults",
            axum::routing::put(crate::faults::put_faults).get(crate::faults::get_faults),
        )
        .route("/admin/compact", axum::routing::post(admin_compact))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/exec",
            axum::routing::get(crate::exec::exec).post(crate::exec::exec),
        )
        .route(
            "/realms/{realm}/.well-known/openid-configuration",
            axum::routing::get(idp::discovery),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/auth",
            axum::routing::get(idp::auth),
        )
        .route(
            "/realms/{realm}/login-actions/authenticate",
            axum::routing::post(idp::authenticate),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/token",
            axum::routing::post(idp::token),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/certs",
            axum::routing::get(idp::certs),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/userinfo",
            axum::routing::get(idp::userinfo),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/logout",
            axum::routing::get(idp::logout).post(idp::logout),
        )
        .route(
            "/dex/.well-known/openid-configuration",
            axum::routing::get(crate::dex::discovery),
        )
        .route("/dex/keys", axum::routing::get(crate::dex::keys))
        .route("/dex/auth", axum::routing::get(crate::dex::auth))
        .route(
            "/dex/auth/local/login",
            axum::routing::get(crate::dex::local_login_page).post(crate::dex::local_login),
        )
        .route(
            "/dex/auth/{connector}",
            axum::routing::get(crate::dex::connector),
        )
        .route("/dex/callback", axum::routing::get(crate::dex::callback))
        .route(
            "/dex/approval",
            axum::routing::get(crate::dex::approval_page).post(crate::dex::approval),
        )
        .route("/dex/token", axum::routing::post(crate::dex::token))
        .fallback(dispatch)
        .with_state(cluster)
}

async fn admin_compact(State(c): State<Arc<Cluster>>) -> Response {
    c.store.compact();
    json_response(200, &json!({"compactedTo": c.store.current_rv()}))
}

fn json_response(code: u16, v: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

pub fn authenticate(c: &Cluster, headers: &HeaderMap) -> Option<Identity> {
    let h = headers.get("authorization").and_then(|v| v.to_str().ok())?;
    let token = h.strip_prefix("Bearer ")?.trim();
    if c.faults.is_revoked(token) {
        return None;
    }
    if c.tokens
        .read()
        .map(|t| t.iter().any(|x| x == token))
        .unwrap_or(false)
    {
        return Some(Identity::Admin);
    }
    if let Some(sa) = c.sa_tokens.verify(token) {
        return Some(Identity::User(sa));
    }
    c.idp
        .as_ref()
        .and_then(|i| i.verify_bearer(token))
        .map(Identity::User)
}

/// The request as RBAC attributes, decided by `rbac::decide` (the rule access reviews answer).
pub fn authorize(id: &Identity, method: &Method, rp: &ResourcePath, watch: bool) -> ApiResult<()> {
    // Every authenticated user may ask what it may do (system:basic-user).
    if rp.res.is_review() && *method == Method::POST {
        return Ok(());
    }
    let verb = match (method.as_str(), rp.name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        _ => "deletecollection",
    };
    let attrs = crate::rbac::Attributes {
        verb: verb.into(),
        group: rp.res.group.into(),
        resource: rp.res.plural.into(),
        subresource: rp.sub.clone(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
    };
    crate::rbac::decide(id, &attrs)
        .map(drop)
        .map_err(ApiError::forbidden)
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
    let identity = authenticate(&c, &parts.headers);
    if target != Some(Target::Version) && identity.is_none() {
        return ApiError::unauthorized().into_response();
    }
    if let (Some(Target::Resource(rp)), Some(id)) = (&target, &identity) {
        if let Err(e) = authorize(id, &parts.method, rp, flag(&query, "watch")) {
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
            let req = Req {
                method: &parts.method,
                headers: &parts.headers,
                identity: identity.as_ref(),
                query: &query,
                body: &body,
                path: &path,
            };
            handle(&c, t, &req).await
        }
    };
    result.unwrap_or_else(|e| e.into_response())
}

/// One API request, as the verb handlers see it.
struct Req<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    /// None only for the unauthenticated `/version`.
    identity: Option<&'a Identity>,
    query: &'a Query,
    body: &'a [u8],
    path: &'a str,
}

async fn handle(c: &Arc<Cluster>, target: Target, req: &Req<'_>) -> ApiResult<Response> {
    let method = req.method;
    let get_only = |v: Option<Value>| -> ApiResult<Response> {
        if method != Method::GET {
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
        Target::Resource(rp) if rp.res.is_review() => review(rp, req),
        Target::Resource(rp) => {
            resource(c, method, req.headers, rp, req.query, req.body, req.path).await
        }
    }
}

/// Access reviews: POST to the collection only; answered, never stored.
fn review(rp: ResourcePath, req: &Req<'_>) -> ApiResult<Response> {
    if *req.method != Method::POST || rp.name.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let id = req.identity.ok_or_else(ApiError::unauthorized)?;
    let content_type = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let obj = if content_type.contains("protobuf") {
        crate::protobuf::decode(req.body).map_err(|e| ApiError::bad_request(e.to_string()))?
    } else if content_type.contains("yaml") {
        serde_yaml::from_slice(req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        parse_json(req.body)?
    };
    Ok(json_response(201, &crate::access_review::review(id, obj)?))
}

/// Boolean query parameters: Go clients send `true`/`1`, the Python client sends `True`.
fn flag(q: &Query, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn dry_run(q: &Query) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

fn accept(headers: &HeaderMap) -> String {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn resource(
    c: &Arc<Cluster>,
    method: &Method,
    headers: &HeaderMap,
    rp: ResourcePath,
    q: &Query,
    body: &[u8],
    path: &str,
) -> ApiResult<Response> {
    let res = rp.res;
    let ns = rp.namespace.clone().unwrap_or_default();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Typed client-go clients (e.g. `kubectl create configmap`) send protobuf: the kinds they
    // create are decoded, other protobuf bodies get 415.
    let parse_json = |body: &[u8]| -> ApiResult<Value> {
        if content_type.contains("protobuf") {
            return crate::protobuf::decode(body).map_err(|e| match e {
                crate::protobuf::ProtoError::Unsupported(_) => {
                    ApiError::unsupported_media(&format!("{content_type} ({e})"))
                }
                other => ApiError::bad_request(other.to_string()),
            });
        }
        if content_type.contains("yaml") {
            return serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
        }
        parse_json(body)
    };
    let as_table = table::wants_table(&accept(headers));
    let include_object = q
        .get("includeObject")
        .cloned()
        .unwrap_or_else(|| "Metadata".into());
    match (method.clone(), rp.name.as_deref(), rp.sub.as_deref()) {
        (Method::GET, None, None) if flag(q, "watch") => {
            let drop_after = c.faults.watch_drop_after(path);
            Ok(watch::start(
                c.store.clone(),
                watch_request(res, &rp, q, as_table, include_object, drop_after)?,
            ))
        }
        (Method::GET, Some(_), None) if flag(q, "watch") => {
            let drop_after = c.faults.watch_drop_after(path);
            Ok(watch::start(
                c.store.clone(),
                watch_request(res, &rp, q, as_table, include_object, drop_after)?,
            ))
        }
        (Method::GET, None, None) => list(c, res, &rp, q, as_table, &include_object),
        (Method::POST, None, None) => {
            if res.namespaced && rp.namespace.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let obj = parse_json(body)?;
            let created = create(c, res, &ns, obj, dry_run(q))?;
            Ok(json_response(201, &created))
        }
        (Method::DELETE, None, None) => {
            let labels =
                LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
            let fields =
                FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
            let keep = |o: &Value| labels.matches(o) && fields.matches(o);
            let found = c
                .store
                .list(res, rp.namespace.as_deref(), None, None, &keep);
            let mut gone = Vec::new();
            for o in found.items {
                let n = o["metadata"]["name"].as_str().unwrap_or("");
                let ons = o["metadata"]["namespace"].as_str().unwrap_or("");
                if let Ok(d) = c.store.delete(res, ons, n, dry_run(q), true) {
                    gone.push(d);
                }
            }
            Ok(json_response(
                200,
                &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": {}, "items": gone}),
            ))
        }
        (Method::GET, Some(name), None | Some("status")) => {
            let obj = c
                .store
                .get(res, &ns, name)
                .ok_or_else(|| ApiError::not_found(res.plural, res.group, name))?;
            if as_table {
                let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
                return Ok(json_response(
                    200,
                    &table::table(res, &[obj], &include_object, meta),
                ));
            }
            Ok(json_response(200, &obj))
        }
        (Method::GET, Some(name), Some("log")) => {
            let opts = log_options(q)?;
            let mut opts = opts;
            opts.drop_after = c.faults.log_drop_after(path);
            logs::serve(
                c.store.clone(),
                c.state_dir.clone(),
                ns,
                name.to_string(),
                opts,
            )
            .await
        }
        (Method::PUT, Some(name), sub @ (None | Some("status"))) => {
            let new = parse_json(body)?;
            let updated = c.store.update_with(res, &ns, name, dry_run(q), |old| {
                let mut new = new.clone();
                fill_identity(res, &mut new, &ns, name);
                let new = carry_status(res, old, new, sub);
                admit(c, res, new, false)
            })?;
            Ok(json_response(200, &updated))
        }
        (Method::PATCH, Some(name), sub @ (None | Some("status"))) => {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchKind::from_content_type(ct)?;
            let p = patch::parse_body(kind, body)?;
            if kind == PatchKind::Apply && c.store.get(res, &ns, name).is_none() {
                let created = create(c, res, &ns, p, dry_run(q))?;
                return Ok(json_response(201, &created));
            }
            let builtin = res.group.is_empty();
            let updated = c.store.update_with(res, &ns, name, dry_run(q), |old| {
                let patched = patch::apply(kind, old, &p, builtin)?;
                let patched = carry_status(res, old, patched, sub);
                admit(c, res, patched, false)
            })?;
            Ok(json_response(200, &updated))
        }
        (Method::DELETE, Some(name), None) => {
            let opts: Value = if body.is_empty() {
                json!({})
            } else {
                parse_json(body)?
            };
            let dry = dry_run(q)
                || opts["dryRun"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == "All"));
            let policy = q
                .get("propagationPolicy")
                .cloned()
                .or_else(|| opts["propagationPolicy"].as_str().map(str::to_string));
            let orphan =
                policy.as_deref() == Some("Orphan") || opts["orphanDependents"] == json!(true);
            if let Some(uid) = opts["preconditions"]["uid"].as_str() {
                let current = c
                    .store
                    .get(res, &ns, name)
                    .ok_or_else(|| ApiError::not_found(res.plural, res.group, name))?;
                if current["metadata"]["uid"].as_str() != Some(uid) {
                    return Err(ApiError::conflict(
                        res.plural,
                        res.group,
                        name,
                        "Precondition failed: UID in precondition does not match the UID in record",
                    ));
                }
            }
            let gone = c.store.delete(res, &ns, name, dry, !orphan)?;
            Ok(json_response(200, &gone))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn parse_json(body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(v)
}

/// Puts the URL's namespace and name into a PUT body that omits them.
fn fill_identity(res: &ResourceType, obj: &mut Value, ns: &str, name: &str) {
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
fn carry_status(res: &ResourceType, old: &Value, mut new: Value, sub: Option<&str>) -> Value {
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

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
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

/// Create as the apiserver does: check apiVersion/kind and namespace, generateName, admission.
pub fn create(
    c: &Cluster,
    res: &'static ResourceType,
    ns: &str,
    mut obj: Value,
    dry: bool,
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
        obj["status"] = json!({"phase": "Bound", "accessModes": obj["spec"]["accessModes"].clone(),
            "capacity": {"storage": obj["spec"]["resources"]["requests"]["storage"].clone()}});
    }
    if res.is_training_job() {
        operator::default_job(res, &mut obj);
    }
    let obj = admit(c, res, obj, true)?;
    c.store.create(res, obj, dry)
}

fn admit(c: &Cluster, res: &ResourceType, mut obj: Value, _create: bool) -> ApiResult<Value> {
    if res.plural == "secrets" {
        fold_string_data(&mut obj);
    }
    validation::validate(res, &obj, &c.crds)?;
    if res.is_training_job() {
        validation::admit_training_job(res, &obj)?;
    }
    Ok(obj)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn list(
    c: &Cluster,
    res: &'static ResourceType,
    rp: &ResourcePath,
    q: &Query,
    as_table: bool,
    include_object: &str,
) -> ApiResult<Response> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    let limit = match q.get("limit") {
        Some(l) if !l.is_empty() => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        )
        .filter(|l| *l > 0),
        _ => None,
    };
    let after = match q.get("continue").filter(|s| !s.is_empty()) {
        None => None,
        Some(token) => {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .map_err(|_| {
                    ApiError::bad_request(
                        "continue key is not valid: incorrect encoded start resourceVersion",
                    )
                })?;
            let t: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| {
                ApiError::bad_request(
                    "continue key is not valid: incorrect encoded start resourceVersion",
                )
            })?;
            if t.rv < c.store.history_floor() {
                return Err(ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."));
            }
            Some((t.ns, t.name))
        }
    };
    let keep = |o: &Value| labels.matches(o) && fields.matches(o);
    let result = c
        .store
        .list(res, rp.namespace.as_deref(), after.as_ref(), limit, &keep);
    let mut meta = json!({"resourceVersion": result.resource_version.to_string()});
    if let Some((ns, name)) = result.continue_after {
        let token = serde_json::to_vec(&ContinueToken {
            rv: result.resource_version,
            ns,
            name,
        })
        .unwrap_or_default();
        meta["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
        meta["remainingItemCount"] = json!(result.remaining);
    }
    if as_table {
        return Ok(json_response(
            200,
            &table::table(res, &result.items, include_object, meta),
        ));
    }
    Ok(json_response(
        200,
        &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": meta, "items": result.items}),
    ))
}

fn watch_request(
    res: &'static ResourceType,
    rp: &ResourcePath,
    q: &Query,
    as_table: bool,
    include_object: String,
    drop_after: Option<usize>,
) -> ApiResult<WatchRequest> {
    let mut fields = q.get("fieldSelector").cloned().unwrap_or_default();
    // Watching one object by URL name (`/pods?watch&fieldSelector=metadata.name=x` is the usual
    // form, but clients also put the name in the path).
    if let Some(n) = &rp.name {
        if !fields.is_empty() {
            fields.push(',');
        }
        fields.push_str(&format!("metadata.name={n}"));
    }
    let rv = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    Ok(WatchRequest {
        res,
        namespace: rp.namespace.clone(),
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(&fields)?,
        resource_version: rv,
        timeout,
        as_table,
        include_object,
        bookmarks: flag(q, "allowWatchBookmarks"),
        drop_after,
    })
}

fn log_options(q: &Query) -> ApiResult<LogOptions> {
    let int = |k: &str| -> ApiResult<Option<i64>> {
        q.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid {k}: {v}")))
            })
            .transpose()
    };
    Ok(LogOptions {
        container: q.get("container").cloned().filter(|c| !c.is_empty()),
        follow: flag(q, "follow"),
        previous: flag(q, "previous"),
        timestamps: flag(q, "timestamps"),
        since_seconds: int("sinceSeconds")?,
        since_time: q.get("sinceTime").cloned(),
        tail_lines: int("tailLines")?.map(|n| n.max(0) as usize),
        limit_bytes: int("limitBytes")?.map(|n| n.max(0) as usize),
        drop_after: None,
    })
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
