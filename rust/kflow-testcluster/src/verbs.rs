//! The verbs over the store, one handler each: get, list, watch, create, update (replace),
//! patch, delete and deletecollection, the `log` subresource, and access reviews.

use std::time::Duration;

use axum::http::Method;
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use crate::admission;
use crate::error::{ApiError, ApiResult};
use crate::logs::{self, LogOptions};
use crate::patch::{self, PatchKind};
use crate::protobuf;
use crate::request::{flag, json_response, ApiRequest, Query};
use crate::resources::ResourceType;
use crate::routing::ResourcePath;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::Cluster;
use crate::table;
use crate::watch::{self, WatchRequest};

pub async fn serve(c: &Cluster, rp: ResourcePath, req: &ApiRequest<'_>) -> ApiResult<Response> {
    match (req.method.clone(), rp.name.as_deref(), rp.sub.as_deref()) {
        (Method::GET, _, None) if req.flag("watch") => watch(c, &rp, req),
        (Method::GET, None, None) => list(c, &rp, req),
        (Method::POST, None, None) => create(c, &rp, req),
        (Method::DELETE, None, None) => delete_collection(c, &rp, req),
        (Method::GET, Some(name), None | Some("status")) => get(c, &rp, name, req),
        (Method::GET, Some(name), Some("log")) => log(c, &rp, name, req).await,
        (Method::PUT, Some(name), sub @ (None | Some("status"))) => replace(c, &rp, name, sub, req),
        (Method::PATCH, Some(name), sub @ (None | Some("status"))) => patch(c, &rp, name, sub, req),
        (Method::DELETE, Some(name), None) => delete(c, &rp, name, req),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Access reviews: POST to the collection only; answered, never stored.
pub fn review(rp: &ResourcePath, req: &ApiRequest<'_>) -> ApiResult<Response> {
    if *req.method != Method::POST || rp.name.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let id = req.identity.ok_or_else(ApiError::unauthorized)?;
    let obj = if req.content_type().contains("protobuf") {
        protobuf::decode(req.body).map_err(|e| ApiError::bad_request(e.to_string()))?
    } else {
        req.object()?
    };
    Ok(json_response(201, &crate::access_review::review(id, obj)?))
}

/// The object, or only its metadata when the client asks for it as the real API server
/// serves it (`Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`, what
/// client-go's metadata client and kube's `*_metadata` calls send).
fn object_response(code: u16, obj: &Value, req: &ApiRequest<'_>) -> Response {
    let first = req.accept().split(',').next().unwrap_or("");
    if first.contains("as=PartialObjectMetadata") && !first.contains("as=PartialObjectMetadataList")
    {
        let partial = json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        });
        return json_response(code, &partial);
    }
    json_response(code, obj)
}

fn namespace(rp: &ResourcePath) -> String {
    rp.namespace.clone().unwrap_or_default()
}

/// `includeObject`; by default a table row holds its object's metadata only.
fn include_object(q: &Query) -> String {
    q.get("includeObject")
        .cloned()
        .unwrap_or_else(|| "Metadata".into())
}

fn get(c: &Cluster, rp: &ResourcePath, name: &str, req: &ApiRequest<'_>) -> ApiResult<Response> {
    let res = rp.res;
    let obj = c
        .store
        .get(res, &namespace(rp), name)
        .ok_or_else(|| ApiError::not_found(res.plural, res.group, name))?;
    if table::wants_table(req.accept()) {
        let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
        return Ok(json_response(
            200,
            &table::table(res, &[obj], &include_object(req.query), meta),
        ));
    }
    Ok(object_response(200, &obj, req))
}

/// Where the next page of a chunked list starts, opaque to clients.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn list(c: &Cluster, rp: &ResourcePath, req: &ApiRequest<'_>) -> ApiResult<Response> {
    let res = rp.res;
    let q = req.query;
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
    if table::wants_table(req.accept()) {
        return Ok(json_response(
            200,
            &table::table(res, &result.items, &include_object(q), meta),
        ));
    }
    Ok(json_response(
        200,
        &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": meta, "items": result.items}),
    ))
}

fn watch(c: &Cluster, rp: &ResourcePath, req: &ApiRequest<'_>) -> ApiResult<Response> {
    let q = req.query;
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
    let watch = WatchRequest {
        res: rp.res,
        namespace: rp.namespace.clone(),
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(&fields)?,
        resource_version: rv,
        timeout,
        as_table: table::wants_table(req.accept()),
        include_object: include_object(q),
        bookmarks: flag(q, "allowWatchBookmarks"),
        drop_after: c.faults.watch_drop_after(),
    };
    Ok(watch::start(c.store.clone(), watch))
}

fn create(c: &Cluster, rp: &ResourcePath, req: &ApiRequest<'_>) -> ApiResult<Response> {
    if rp.res.namespaced && rp.namespace.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    let created = store_new(c, rp.res, &namespace(rp), req.object()?, req.dry_run())?;
    Ok(object_response(201, &created, req))
}

fn store_new(
    c: &Cluster,
    res: &'static ResourceType,
    ns: &str,
    obj: Value,
    dry: bool,
) -> ApiResult<Value> {
    let obj = admission::for_create(&c.store, &c.crds, res, ns, obj)?;
    c.store.create(res, obj, dry)
}

fn replace(
    c: &Cluster,
    rp: &ResourcePath,
    name: &str,
    sub: Option<&str>,
    req: &ApiRequest<'_>,
) -> ApiResult<Response> {
    let res = rp.res;
    let ns = namespace(rp);
    let new = req.object()?;
    let updated = c.store.update_with(res, &ns, name, req.dry_run(), |old| {
        let mut new = new.clone();
        admission::fill_identity(res, &mut new, &ns, name);
        let new = admission::carry_status(res, old, new, sub);
        admission::admit(&c.crds, res, new)
    })?;
    Ok(object_response(200, &updated, req))
}

fn patch(
    c: &Cluster,
    rp: &ResourcePath,
    name: &str,
    sub: Option<&str>,
    req: &ApiRequest<'_>,
) -> ApiResult<Response> {
    let res = rp.res;
    let ns = namespace(rp);
    let kind = PatchKind::from_content_type(req.content_type())?;
    let p = patch::parse_body(kind, req.body)?;
    if kind == PatchKind::Apply && c.store.get(res, &ns, name).is_none() {
        let created = store_new(c, res, &ns, p, req.dry_run())?;
        return Ok(object_response(201, &created, req));
    }
    let builtin = res.group.is_empty();
    let updated = c.store.update_with(res, &ns, name, req.dry_run(), |old| {
        let patched = patch::apply(kind, old, &p, builtin)?;
        let patched = admission::carry_status(res, old, patched, sub);
        admission::admit(&c.crds, res, patched)
    })?;
    Ok(object_response(200, &updated, req))
}

fn delete(c: &Cluster, rp: &ResourcePath, name: &str, req: &ApiRequest<'_>) -> ApiResult<Response> {
    let res = rp.res;
    let ns = namespace(rp);
    let opts: Value = if req.body.is_empty() {
        json!({})
    } else {
        req.object()?
    };
    let dry = req.dry_run()
        || opts["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let policy = req
        .query
        .get("propagationPolicy")
        .cloned()
        .or_else(|| opts["propagationPolicy"].as_str().map(str::to_string));
    let orphan = policy.as_deref() == Some("Orphan") || opts["orphanDependents"] == json!(true);
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

/// Deletes what the selectors match, skipping objects that vanish meanwhile.
fn delete_collection(c: &Cluster, rp: &ResourcePath, req: &ApiRequest<'_>) -> ApiResult<Response> {
    let res = rp.res;
    let q = req.query;
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    let keep = |o: &Value| labels.matches(o) && fields.matches(o);
    let found = c
        .store
        .list(res, rp.namespace.as_deref(), None, None, &keep);
    let mut gone = Vec::new();
    for o in found.items {
        let n = o["metadata"]["name"].as_str().unwrap_or("");
        let ons = o["metadata"]["namespace"].as_str().unwrap_or("");
        if let Ok(d) = c.store.delete(res, ons, n, req.dry_run(), true) {
            gone.push(d);
        }
    }
    Ok(json_response(
        200,
        &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": {}, "items": gone}),
    ))
}

async fn log(
    c: &Cluster,
    rp: &ResourcePath,
    name: &str,
    req: &ApiRequest<'_>,
) -> ApiResult<Response> {
    let mut opts = log_options(req.query)?;
    opts.drop_after = c.faults.log_drop_after();
    logs::serve(
        c.store.clone(),
        c.state_dir.clone(),
        namespace(rp),
        name.to_string(),
        opts,
    )
    .await
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
