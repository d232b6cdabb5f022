//! The Kubeflow Model Registry's REST API behind the gateway, at
//! `/api/model_registry/v1alpha3/…` (model-registry 0.2) and `/api/model_registry/v1/…`
//! (0.3, the same resources): what `model_registry.ModelRegistry` calls. Registered models,
//! their model versions and the versions' artifacts (model and doc artifacts): create, get,
//! list (pageSize / nextPageToken, orderBy ID|CREATE_TIME|LAST_UPDATE_TIME|NAME, sortOrder),
//! find by name (`registered_model?name=`, `model_version?name=&parentResourceId=`,
//! `model_artifact?name=&parentResourceId=`) or externalId, PATCH. Bodies are checked as the
//! server's generated router does: unknown fields, required names, states and typed
//! `customProperties` (`MetadataStringValue`, `MetadataIntValue` — a decimal int32 as a
//! string —, `MetadataDoubleValue`, `MetadataBoolValue`, `MetadataStructValue`,
//! `MetadataProtoValue`) are refused with 400; names are unique (409), within the parent for
//! versions and artifacts. IDs are decimal strings: models and versions share one sequence (MLMD
//! contexts), artifacts have their own. Errors are `{code, message}` with the HTTP status text as
//! code. Any signed-in user may use it (the registry has no namespaces). State lives in memory.

use std::sync::Mutex;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::webapps::{self, WebRequest};

/// The registry's objects, seeded from the fixture's `registeredModels`, `modelVersions` and
/// `modelArtifacts` (an artifact's `modelVersionId` names the version it belongs to).
pub struct ModelRegistry {
    state: Mutex<Registry>,
}

struct Registry {
    models: Vec<Value>,
    versions: Vec<Value>,
    artifacts: Vec<Artifact>,
    next_context_id: u64,
    next_artifact_id: u64,
}

struct Artifact {
    body: Value,
    /// The model version it belongs to (none for one created on its own).
    version: Option<String>,
}

/// A refusal: HTTP status and message (the body is `{code: <status text>, message}`).
struct Refusal {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let code = self.status.canonical_reason().unwrap_or("");
        (
            self.status,
            Json(json!({"code": code, "message": self.message})),
        )
            .into_response()
    }
}

type Answer = Result<(StatusCode, Value), Refusal>;

fn error(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

fn bad_request(message: impl Into<String>) -> Refusal {
    error(StatusCode::BAD_REQUEST, message)
}

fn not_found(message: impl Into<String>) -> Refusal {
    error(StatusCode::NOT_FOUND, message)
}

fn now_millis() -> String {
    chrono::Utc::now().timestamp_millis().to_string()
}

const CREATE_REGISTERED_MODEL: &[&str] = &[
    "customProperties",
    "description",
    "externalId",
    "name",
    "readme",
    "maturity",
    "language",
    "tasks",
    "provider",
    "logo",
    "license",
    "licenseLink",
    "libraryName",
    "owner",
    "state",
];
const CREATE_MODEL_VERSION: &[&str] = &[
    "customProperties",
    "description",
    "externalId",
    "name",
    "state",
    "author",
    "registeredModelId",
];
const CREATE_MODEL_ARTIFACT: &[&str] = &[
    "customProperties",
    "description",
    "externalId",
    "name",
    "artifactType",
    "modelFormatName",
    "storageKey",
    "storagePath",
    "modelFormatVersion",
    "serviceAccountName",
    "modelSourceKind",
    "modelSourceClass",
    "modelSourceGroup",
    "modelSourceId",
    "modelSourceName",
    "uri",
    "state",
];
const CREATE_DOC_ARTIFACT: &[&str] = &[
    "customProperties",
    "description",
    "externalId",
    "name",
    "artifactType",
    "uri",
    "state",
];
const MODEL_STATES: &[&str] = &["LIVE", "ARCHIVED"];
const ARTIFACT_STATES: &[&str] = &[
    "UNKNOWN",
    "PENDING",
    "LIVE",
    "MARKED_FOR_DELETION",
    "DELETED",
    "ABANDONED",
    "REFERENCE",
];

/// The fields an update may carry: a create's, less the ones fixed at creation.
fn updatable(create: &[&'static str]) -> Vec<&'static str> {
    create
        .iter()
        .copied()
        .filter(|f| !matches!(*f, "name" | "registeredModelId"))
        .collect()
}

/// Checks a request body against a resource's fields, states and custom properties.
fn check_body(body: &Value, what: &str, allowed: &[&str], states: &[&str]) -> Result<(), Refusal> {
    let Some(fields) = body.as_object() else {
        return Err(bad_request(format!(
            "json: cannot unmarshal the request body into Go value of type openapi.{what}"
        )));
    };
    if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad_request(format!("json: unknown field \"{unknown}\"")));
    }
    for (key, value) in fields {
        let fits = match key.as_str() {
            "customProperties" => {
                check_custom_properties(value)?;
                true
            }
            "language" | "tasks" => value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string)),
            _ => value.is_string(),
        };
        if !fits {
            return Err(bad_request(format!(
                "json: cannot unmarshal {value} into Go struct field {what}.{key}"
            )));
        }
    }
    if let Some(state) = body["state"].as_str() {
        if !states.contains(&state) {
            return Err(bad_request(format!(
                "{state} is not a valid state of {what}, allowed: {}",
                states.join(", ")
            )));
        }
    }
    Ok(())
}

fn check_custom_properties(props: &Value) -> Result<(), Refusal> {
    let Some(props) = props.as_object() else {
        return Err(bad_request(
            "customProperties must be an object of MetadataValue",
        ));
    };
    for (name, v) in props {
        let kind = v["metadataType"].as_str().unwrap_or("");
        let ok = match kind {
            "MetadataStringValue" => v["string_value"].is_string(),
            "MetadataIntValue" => v["int_value"].as_str().is_some_and(is_int32_text),
            "MetadataDoubleValue" => v["double_value"].is_number(),
            "MetadataBoolValue" => v["bool_value"].is_boolean(),
            "MetadataStructValue" => v["struct_value"].is_string(),
            "MetadataProtoValue" => v["proto_value"].is_string() && v["type"].is_string(),
            _ => false,
        };
        if !ok {
            return Err(bad_request(format!(
                "customProperties[{name}]: {v} is not a valid MetadataValue (metadataType {kind:?} with its value field)"
            )));
        }
    }
    Ok(())
}

/// `^-?([1-9][0-9]{0,8}|0)$`: the registry's int values are int32 as decimal text.
fn is_int32_text(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    digits == "0"
        || (!digits.is_empty()
            && digits.len() <= 9
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit()))
}

fn check_id<'a>(id: &'a str, what: &str) -> Result<&'a str, Refusal> {
    if id.parse::<i32>().is_ok_and(|n| n > 0) {
        Ok(id)
    } else {
        Err(bad_request(format!(
            "invalid {what} id {id:?}: it must be a positive int32"
        )))
    }
}

fn body_json(req: &WebRequest) -> Result<Value, Refusal> {
    serde_json::from_slice(req.body).map_err(|e| bad_request(format!("json: {e}")))
}

fn numeric_ids(items: &[Value]) -> u64 {
    items
        .iter()
        .filter_map(|o| o["id"].as_str().and_then(|i| i.parse::<u64>().ok()))
        .max()
        .unwrap_or(0)
}

impl ModelRegistry {
    /// The registry seeded from `fixture` (its keys: see the type doc).
    pub fn new(fixture: &Value) -> ModelRegistry {
        let list = |key: &str| fixture[key].as_array().cloned().unwrap_or_default();
        let models = list("registeredModels");
        let versions = list("modelVersions");
        let artifacts: Vec<Artifact> = list("modelArtifacts")
            .into_iter()
            .map(|mut body| {
                let version = body
                    .as_object_mut()
                    .and_then(|o| o.remove("modelVersionId"))
                    .and_then(|v| v.as_str().map(String::from));
                if body["artifactType"].is_null() {
                    body["artifactType"] = json!("model-artifact");
                }
                Artifact { body, version }
            })
            .collect();
        let bodies: Vec<Value> = artifacts.iter().map(|a| a.body.clone()).collect();
        ModelRegistry {
            state: Mutex::new(Registry {
                next_context_id: numeric_ids(&models).max(numeric_ids(&versions)) + 1,
                next_artifact_id: numeric_ids(&bodies) + 1,
                models,
                versions,
                artifacts,
            }),
        }
    }

    /// Answers `segs` below `/api/model_registry/<version>`.
    pub fn serve(&self, req: &WebRequest, segs: &[&str]) -> Response {
        let mut r = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let get = |items: Vec<Value>| page(req, items);
        let answer = match (req.method, segs) {
            (&Method::GET, ["registered_models"]) => get(r.models.clone()),
            (&Method::POST, ["registered_models"]) => {
                body_json(req).and_then(|b| r.create_model(b))
            }
            (&Method::GET, ["registered_models", id]) => r.model(id).cloned().map(ok),
            (&Method::PATCH, ["registered_models", id]) => {
                body_json(req).and_then(|b| r.update_model(id, b))
            }
            (&Method::GET, ["registered_models", id, "versions"]) => r
                .model(id)
                .map(|_| ())
                .and_then(|()| get(r.versions_of(id))),
            (&Method::POST, ["registered_models", id, "versions"]) => {
                body_json(req).and_then(|mut b| {
                    if let Some(o) = b.as_object_mut() {
                        o.entry("registeredModelId").or_insert_with(|| json!(id));
                    }
                    r.create_version(b)
                })
            }
            (&Method::GET, ["registered_model"]) => r.find_model(req),
            (&Method::GET, ["model_versions"]) => get(r.versions.clone()),
            (&Method::POST, ["model_versions"]) => body_json(req).and_then(|b| r.create_version(b)),
            (&Method::GET, ["model_versions", id]) => r.version(id).cloned().map(ok),
            (&Method::PATCH, ["model_versions", id]) => {
                body_json(req).and_then(|b| r.update_version(id, b))
            }
            (&Method::GET, ["model_versions", id, "artifacts"]) => r
                .version(id)
                .map(|_| ())
                .and_then(|()| get(r.artifacts_of(Some(id)))),
            (&Method::POST, ["model_versions", id, "artifacts"]) => {
                body_json(req).and_then(|b| r.upsert_version_artifact(id, b))
            }
            (&Method::GET, ["model_version"]) => r.find_version(req),
            (&Method::GET, ["model_artifacts"]) => get(r.model_artifacts()),
            (&Method::POST, ["model_artifacts"]) => {
                body_json(req).and_then(|b| r.create_artifact(None, b))
            }
            (&Method::GET, ["model_artifacts", id]) => {
                r.model_artifact(id).map(|a| ok(a.body.clone()))
            }
            (&Method::PATCH, ["model_artifacts", id]) => {
                body_json(req).and_then(|b| r.update_artifact(id, b))
            }
            (&Method::GET, ["model_artifact"]) => r.find_artifact(req),
            (_, [first, ..])
                if [
                    "registered_models",
                    "registered_model",
                    "model_versions",
                    "model_version",
                    "model_artifacts",
                    "model_artifact",
                ]
                .contains(first) =>
            {
                Err(error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{} is not allowed on {}", req.method, segs.join("/")),
                ))
            }
            _ => Err(error(StatusCode::NOT_FOUND, "404 page not found")),
        };
        match answer {
            Ok((status, v)) => (status, Json(v)).into_response(),
            Err(r) => r.into_response(),
        }
    }
}

fn ok(v: Value) -> (StatusCode, Value) {
    (StatusCode::OK, v)
}

fn created(v: Value) -> (StatusCode, Value) {
    (StatusCode::CREATED, v)
}

impl Registry {
    fn model(&self, id: &str) -> Result<&Value, Refusal> {
        check_id(id, "registered model")?;
        self.models
            .iter()
            .find(|m| m["id"].as_str() == Some(id))
            .ok_or_else(|| not_found(format!("no registered model found for id {id}")))
    }

    fn version(&self, id: &str) -> Result<&Value, Refusal> {
        check_id(id, "model version")?;
        self.versions
            .iter()
            .find(|v| v["id"].as_str() == Some(id))
            .ok_or_else(|| not_found(format!("no model version found for id {id}")))
    }

    fn model_artifact(&self, id: &str) -> Result<&Artifact, Refusal> {
        check_id(id, "model artifact")?;
        self.artifacts
            .iter()
            .find(|a| {
                a.body["id"].as_str() == Some(id)
                    && a.body["artifactType"] == json!("model-artifact")
            })
            .ok_or_else(|| not_found(format!("no model artifact found for id {id}")))
    }

    fn versions_of(&self, model_id: &str) -> Vec<Value> {
        self.versions
            .iter()
            .filter(|v| v["registeredModelId"].as_str() == Some(model_id))
            .cloned()
            .collect()
    }

    fn artifacts_of(&self, version: Option<&str>) -> Vec<Value> {
        self.artifacts
            .iter()
            .filter(|a| a.version.as_deref() == version)
            .map(|a| a.body.clone())
            .collect()
    }

    fn model_artifacts(&self) -> Vec<Value> {
        self.artifacts
            .iter()
            .filter(|a| a.body["artifactType"] == json!("model-artifact"))
            .map(|a| a.body.clone())
            .collect()
    }

    fn context_id(&mut self) -> String {
        let id = self.next_context_id;
        self.next_context_id += 1;
        id.to_string()
    }

    fn stamp(mut body: Value, id: String, default_state: &str) -> Value {
        let now = now_millis();
        body["id"] = json!(id);
        body["createTimeSinceEpoch"] = json!(now);
        body["lastUpdateTimeSinceEpoch"] = json!(now);
        if body["state"].is_null() {
            body["state"] = json!(default_state);
        }
        body
    }

    fn external_id_taken(&self, body: &Value) -> Option<Refusal> {
        let ext = body["externalId"].as_str()?;
        let taken = self
            .models
            .iter()
            .chain(&self.versions)
            .chain(self.artifacts.iter().map(|a| &a.body))
            .any(|o| o["externalId"].as_str() == Some(ext));
        taken.then(|| {
            error(
                StatusCode::CONFLICT,
                format!("a resource with externalId {ext} already exists"),
            )
        })
    }

    fn create_model(&mut self, body: Value) -> Answer {
        check_body(
            &body,
            "RegisteredModelCreate",
            CREATE_REGISTERED_MODEL,
            MODEL_STATES,
        )?;
        let name = body["name"].as_str().unwrap_or("");
        if name.is_empty() {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "required field 'name' is zero value.",
            ));
        }
        if self.models.iter().any(|m| m["name"].as_str() == Some(name)) {
            return Err(error(
                StatusCode::CONFLICT,
                format!("registered model with name {name} already exists"),
            ));
        }
        if let Some(e) = self.external_id_taken(&body) {
            return Err(e);
        }
        let id = self.context_id();
        let model = Self::stamp(body, id, "LIVE");
        self.models.push(model.clone());
        Ok(created(model))
    }

    fn create_version(&mut self, body: Value) -> Answer {
        check_body(
            &body,
            "ModelVersionCreate",
            CREATE_MODEL_VERSION,
            MODEL_STATES,
        )?;
        let name = body["name"].as_str().unwrap_or("").to_string();
        let model_id = body["registeredModelId"].as_str().unwrap_or("").to_string();
        if name.is_empty() || model_id.is_empty() {
            let field = if name.is_empty() {
                "name"
            } else {
                "registeredModelId"
            };
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("required field '{field}' is zero value."),
            ));
        }
        self.model(&model_id)?;
        if self
            .versions_of(&model_id)
            .iter()
            .any(|v| v["name"].as_str() == Some(&name))
        {
            return Err(error(
                StatusCode::CONFLICT,
                format!(
                    "model version with name {name} already exists for registered model {model_id}"
                ),
            ));
        }
        if let Some(e) = self.external_id_taken(&body) {
            return Err(e);
        }
        let id = self.context_id();
        let version = Self::stamp(body, id, "LIVE");
        self.versions.push(version.clone());
        Ok(created(version))
    }

    fn create_artifact(&mut self, parent: Option<&str>, mut body: Value) -> Answer {
        if body["artifactType"].is_null() {
            body["artifactType"] = json!("model-artifact");
        }
        let (what, fields) = match body["artifactType"].as_str() {
            Some("model-artifact") => ("ModelArtifactCreate", CREATE_MODEL_ARTIFACT),
            Some("doc-artifact") => ("DocArtifactCreate", CREATE_DOC_ARTIFACT),
            other => {
                return Err(bad_request(format!("artifactType {other:?}: the test cluster serves model-artifact and doc-artifact")));
            }
        };
        check_body(&body, what, fields, ARTIFACT_STATES)?;
        if let Some(name) = body["name"].as_str() {
            if self
                .artifacts
                .iter()
                .any(|a| a.version.as_deref() == parent && a.body["name"].as_str() == Some(name))
            {
                return Err(error(
                    StatusCode::CONFLICT,
                    format!("artifact with name {name} already exists"),
                ));
            }
        }
        if let Some(e) = self.external_id_taken(&body) {
            return Err(e);
        }
        let id = self.next_artifact_id;
        self.next_artifact_id += 1;
        let artifact = Self::stamp(body, id.to_string(), "UNKNOWN");
        self.artifacts.push(Artifact {
            body: artifact.clone(),
            version: parent.map(String::from),
        });
        Ok(created(artifact))
    }

    /// POST model_versions/{id}/artifacts: creates the artifact in the version, or (with an
    /// `id`) updates an existing one and puts it in the version.
    fn upsert_version_artifact(&mut self, version_id: &str, body: Value) -> Answer {
        self.version(version_id)?;
        let Some(id) = body["id"].as_str().map(String::from) else {
            return self.create_artifact(Some(version_id), body);
        };
        let mut update = body;
        if let Some(o) = update.as_object_mut() {
            o.remove("id");
        }
        let (status, updated) = self.update_artifact(&id, update)?;
        if let Some(a) = self
            .artifacts
            .iter_mut()
            .find(|a| a.body["id"].as_str() == Some(id.as_str()))
        {
            a.version = Some(version_id.to_string());
        }
        Ok((status, updated))
    }

    fn update_model(&mut self, id: &str, patch: Value) -> Answer {
        check_body(
            &patch,
            "RegisteredModelUpdate",
            &updatable(CREATE_REGISTERED_MODEL),
            MODEL_STATES,
        )?;
        self.model(id)?;
        let model = self
            .models
            .iter_mut()
            .find(|m| m["id"].as_str() == Some(id))
            .ok_or_else(|| not_found(id))?;
        Ok(ok(apply(model, patch)))
    }

    fn update_version(&mut self, id: &str, patch: Value) -> Answer {
        check_body(
            &patch,
            "ModelVersionUpdate",
            &updatable(CREATE_MODEL_VERSION),
            MODEL_STATES,
        )?;
        self.version(id)?;
        let version = self
            .versions
            .iter_mut()
            .find(|v| v["id"].as_str() == Some(id))
            .ok_or_else(|| not_found(id))?;
        Ok(ok(apply(version, patch)))
    }

    fn update_artifact(&mut self, id: &str, patch: Value) -> Answer {
        check_id(id, "artifact")?;
        let artifact = self
            .artifacts
            .iter_mut()
            .find(|a| a.body["id"].as_str() == Some(id))
            .ok_or_else(|| not_found(format!("no artifact found for id {id}")))?;
        let fields = match artifact.body["artifactType"].as_str() {
            Some("doc-artifact") => CREATE_DOC_ARTIFACT,
            _ => CREATE_MODEL_ARTIFACT,
        };
        check_body(
            &patch,
            "ArtifactUpdate",
            &updatable(fields),
            ARTIFACT_STATES,
        )?;
        if patch["artifactType"]
            .as_str()
            .is_some_and(|t| Some(t) != artifact.body["artifactType"].as_str())
        {
            return Err(bad_request("an artifact's artifactType cannot change"));
        }
        Ok(ok(apply(&mut artifact.body, patch)))
    }

    fn find_model(&self, req: &WebRequest) -> Answer {
        let (name, ext) = (req.query.get("name"), req.query.get("externalId"));
        if name.is_none() && ext.is_none() {
            return Err(bad_request(
                "invalid parameters call, supply either name or externalId",
            ));
        }
        let found: Vec<&Value> = self
            .models
            .iter()
            .filter(|m| matches(m, name, ext))
            .collect();
        one(found, || {
            format!(
                "no registered models found for name={}, externalId={}",
                text(name),
                text(ext)
            )
        })
    }

    fn find_version(&self, req: &WebRequest) -> Answer {
        let (name, ext, parent) = (
            req.query.get("name"),
            req.query.get("externalId"),
            req.query.get("parentResourceId"),
        );
        if ext.is_none() && (name.is_none() || parent.is_none()) {
            return Err(bad_request(
                "invalid parameters call, supply either (name and parentResourceId), or externalId",
            ));
        }
        let found: Vec<&Value> = self
            .versions
            .iter()
            .filter(|v| {
                matches(v, name, ext)
                    && parent.is_none_or(|p| v["registeredModelId"].as_str() == Some(p))
            })
            .collect();
        one(found, || {
            format!(
                "no model versions found for name={}, parentResourceId={}, externalId={}",
                text(name),
                text(parent),
                text(ext)
            )
        })
    }

    fn find_artifact(&self, req: &WebRequest) -> Answer {
        let (name, ext, parent) = (
            req.query.get("name"),
            req.query.get("externalId"),
            req.query.get("parentResourceId"),
        );
        if ext.is_none() && (name.is_none() || parent.is_none()) {
            return Err(bad_request(
                "invalid parameters call, supply either (name and parentResourceId), or externalId",
            ));
        }
        let found: Vec<&Value> = self
            .artifacts
            .iter()
            .filter(|a| a.body["artifactType"] == json!("model-artifact"))
            .filter(|a| {
                matches(&a.body, name, ext)
                    && parent.is_none_or(|p| a.version.as_deref() == Some(p.as_str()))
            })
            .map(|a| &a.body)
            .collect();
        one(found, || {
            format!(
                "no model artifacts found for name={}, parentResourceId={}, externalId={}",
                text(name),
                text(parent),
                text(ext)
            )
        })
    }
}

fn text(v: Option<&String>) -> &str {
    v.map(String::as_str).unwrap_or("")
}

fn matches(o: &Value, name: Option<&String>, ext: Option<&String>) -> bool {
    name.is_none_or(|n| o["name"].as_str() == Some(n))
        && ext.is_none_or(|e| o["externalId"].as_str() == Some(e))
}

fn one(found: Vec<&Value>, missing: impl FnOnce() -> String) -> Answer {
    match found.as_slice() {
        [one] => Ok(ok((*one).clone())),
        [] => Err(not_found(missing())),
        _ => Err(not_found(format!(
            "multiple results: {}",
            missing().replace("no ", "")
        ))),
    }
}

/// Merges an update into a stored object (customProperties replaced whole when given).
fn apply(stored: &mut Value, patch: Value) -> Value {
    if let (Some(target), Value::Object(fields)) = (stored.as_object_mut(), patch) {
        for (k, v) in fields {
            target.insert(k, v);
        }
        target.insert("lastUpdateTimeSinceEpoch".into(), json!(now_millis()));
    }
    stored.clone()
}

/// A list response: `{items, size, pageSize, nextPageToken}`, ordered by `orderBy`/`sortOrder`.
fn page(req: &WebRequest, mut items: Vec<Value>) -> Answer {
    let key = match req.query.get("orderBy").map(String::as_str).unwrap_or("ID") {
        "ID" => "id",
        "CREATE_TIME" => "createTimeSinceEpoch",
        "LAST_UPDATE_TIME" => "lastUpdateTimeSinceEpoch",
        "NAME" => "name",
        other => {
            return Err(bad_request(format!(
                "invalid orderBy {other:?}: one of ID, CREATE_TIME, LAST_UPDATE_TIME, NAME"
            )))
        }
    };
    let numeric = key != "name";
    items.sort_by(|a, b| {
        let (x, y) = (a[key].as_str().unwrap_or(""), b[key].as_str().unwrap_or(""));
        if numeric {
            x.parse::<u64>()
                .unwrap_or(0)
                .cmp(&y.parse::<u64>().unwrap_or(0))
        } else {
            x.cmp(y)
        }
    });
    match req.query.get("sortOrder").map(String::as_str) {
        None | Some("ASC") => {}
        Some("DESC") => items.reverse(),
        Some(other) => {
            return Err(bad_request(format!(
                "invalid sortOrder {other:?}: ASC or DESC"
            )))
        }
    }
    let size = match req.query.get("pageSize").filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad_request(format!("invalid pageSize {s:?}")))?,
        None => items.len().max(1),
    };
    let (items, next) = webapps::page(items, size, req.query.get("nextPageToken"));
    let count = items.len();
    Ok(ok(
        json!({"items": items, "size": count, "pageSize": size, "nextPageToken": next}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_values_are_int32_text() {
        for good in ["0", "7", "-42", "123456789"] {
            assert!(is_int32_text(good), "{good}");
        }
        for bad in ["", "01", "1234567890", "1.5", "x"] {
            assert!(!is_int32_text(bad), "{bad}");
        }
    }

    #[test]
    fn bodies_are_checked() {
        let body = json!({"name": "m", "customProperties": {"acc": {"double_value": 0.9, "metadataType": "MetadataDoubleValue"}}});
        assert!(check_body(
            &body,
            "RegisteredModelCreate",
            CREATE_REGISTERED_MODEL,
            MODEL_STATES
        )
        .is_ok());
        let unknown = json!({"name": "m", "colour": "red"});
        assert!(check_body(
            &unknown,
            "RegisteredModelCreate",
            CREATE_REGISTERED_MODEL,
            MODEL_STATES
        )
        .is_err());
        let untyped = json!({"name": "m", "customProperties": {"acc": {"int_value": 3, "metadataType": "MetadataIntValue"}}});
        assert!(check_body(
            &untyped,
            "RegisteredModelCreate",
            CREATE_REGISTERED_MODEL,
            MODEL_STATES
        )
        .is_err());
        let state = json!({"name": "m", "state": "GONE"});
        assert!(check_body(
            &state,
            "RegisteredModelCreate",
            CREATE_REGISTERED_MODEL,
            MODEL_STATES
        )
        .is_err());
    }
}
