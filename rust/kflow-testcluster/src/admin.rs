//! The test-only `/admin` endpoints: reading and setting the injected faults, and compacting
//! the store's history (so tests can reach 410 Gone).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::faults::FaultConfig;
use crate::request::json_response;
use crate::state::Cluster;

fn admin_ok(c: &Cluster, headers: &HeaderMap) -> bool {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    token == c.admin_token
}

pub async fn put_faults(
    State(c): State<Arc<Cluster>>,
    headers: HeaderMap,
    Json(config): Json<FaultConfig>,
) -> Response {
    if !admin_ok(&c, &headers) {
        return ApiError::unauthorized().into_response();
    }
    c.faults.set(config);
    Json(c.faults.get()).into_response()
}

pub async fn get_faults(State(c): State<Arc<Cluster>>, headers: HeaderMap) -> Response {
    if !admin_ok(&c, &headers) {
        return ApiError::unauthorized().into_response();
    }
    Json(c.faults.get()).into_response()
}

pub async fn compact(State(c): State<Arc<Cluster>>) -> Response {
    c.store.compact();
    json_response(200, &json!({"compactedTo": c.store.current_rv()}))
}
