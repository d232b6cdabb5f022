//! One API request as the verb handlers see it, how its body is decoded, and the JSON reply.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::Value;

use crate::authn::Identity;
use crate::error::{ApiError, ApiResult};
use crate::protobuf::{self, ProtoError};

pub type Query = HashMap<String, String>;

pub struct ApiRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// None only for the unauthenticated `/version`.
    pub identity: Option<&'a Identity>,
    pub query: &'a Query,
    pub body: &'a [u8],
}

impl ApiRequest<'_> {
    pub fn flag(&self, k: &str) -> bool {
        flag(self.query, k)
    }

    pub fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type")
    }

    pub fn accept(&self) -> &str {
        self.header("accept")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as a JSON object, whichever of JSON, YAML or protobuf it was sent in. Typed
    /// client-go clients (e.g. `kubectl create configmap`) send protobuf: the kinds they create
    /// are decoded, other protobuf bodies get 415.
    pub fn object(&self) -> ApiResult<Value> {
        let content_type = self.content_type();
        if content_type.contains("protobuf") {
            return protobuf::decode(self.body).map_err(|e| match e {
                ProtoError::Unsupported(_) | ProtoError::UnknownField { .. } => {
                    ApiError::unsupported_media(&format!("{content_type} ({e})"))
                }
                other => ApiError::bad_request(other.to_string()),
            });
        }
        if content_type.contains("yaml") {
            return serde_yaml::from_slice(self.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
        }
        parse_json(self.body)
    }
}

/// Boolean query parameters: Go clients send `true`/`1`, the Python client sends `True`.
pub fn flag(q: &Query, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

pub fn parse_json(body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(v)
}

pub fn json_response(code: u16, v: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
