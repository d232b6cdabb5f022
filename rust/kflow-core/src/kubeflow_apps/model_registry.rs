//! The Kubeflow Model Registry through the gateway (`/api/model_registry/v1`, else the older
//! `v1alpha3` of model-registry 0.2; the first call finds out which): registered models, their
//! versions and the versions' artifacts. A registration is what `ModelRegistry.register_model`
//! of the Python client makes: the registered model (created when missing), a version, and a
//! model artifact named after the model, so either client finds what the other registered.
//! Metadata travels as the registry's typed custom properties.

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{text, Body, Gateway, KubeflowApp, Page, PageRequest};
use crate::auth::Session;
use crate::error::{AppError, Error, Result};
use crate::spec::Context;

const PREFIX: &str = "/api/model_registry";
/// The API versions kflow speaks, newest first.
const API_VERSIONS: [&str; 2] = ["v1", "v1alpha3"];

/// A client of the Kubeflow Model Registry as the signed-in user.
pub struct ModelRegistry {
    gw: Gateway,
    /// `/api/model_registry/<version>`, once the first call found it.
    api: OnceLock<String>,
}

/// A registered model.
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredModelInfo {
    /// The model's id.
    pub id: String,
    /// Its name (unique in the registry).
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its owner.
    pub owner: Option<String>,
    /// LIVE or ARCHIVED.
    pub state: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// Its custom properties as plain values.
    pub metadata: Map<String, Value>,
}

/// A version of a registered model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelVersionInfo {
    /// The version's id.
    pub id: String,
    /// The registered model it belongs to.
    pub model_id: String,
    /// Its name (unique in the model).
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its author.
    pub author: Option<String>,
    /// LIVE or ARCHIVED.
    pub state: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// Its custom properties as plain values.
    pub metadata: Map<String, Value>,
}

/// An artifact of a model version: where the model's files are.
#[derive(Debug, Clone, Serialize)]
pub struct ModelArtifactInfo {
    /// The artifact's id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// `model-artifact` or `doc-artifact`.
    pub artifact_type: Option<String>,
    /// Where the files are (s3://…, pvc://…, oci://…).
    pub uri: Option<String>,
    /// The model format, e.g. onnx.
    pub format_name: Option<String>,
    /// The format's version.
    pub format_version: Option<String>,
    /// The artifact's state (UNKNOWN, LIVE, …).
    pub state: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// Its custom properties as plain values.
    pub metadata: Map<String, Value>,
}

/// What to register.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The registered model's name (created when missing).
    pub model: String,
    /// The new version's name.
    pub version: String,
    /// Where the model's files are.
    pub uri: String,
    /// The model format, e.g. onnx, pytorch.
    pub format_name: String,
    /// The format's version.
    #[serde(default)]
    pub format_version: Option<String>,
    /// The version's description.
    #[serde(default)]
    pub description: Option<String>,
    /// The version's author (default: the signed-in user).
    #[serde(default)]
    pub author: Option<String>,
    /// The version's metadata: strings, numbers (integers of at most 9 digits are ints) and
    /// booleans.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// What a registration made.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    /// The registered model.
    pub model: RegisteredModelInfo,
    /// Whether the model was created by this registration.
    pub model_created: bool,
    /// The new version.
    pub version: ModelVersionInfo,
    /// The version's model artifact.
    pub artifact: ModelArtifactInfo,
}

/// The registry's milliseconds since the epoch as RFC 3339.
fn time(v: &Value) -> Option<String> {
    let ms = v.as_str()?.parse::<u64>().ok()?;
    Some(humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string())
}

/// Custom properties as plain values (an int is a number again; struct and proto values stay
/// their base64 text).
fn metadata(props: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in props.as_object().into_iter().flatten() {
        let plain = match v["metadataType"].as_str().unwrap_or("") {
            "MetadataIntValue" => v["int_value"]
                .as_str()
                .and_then(|i| i.parse::<i64>().ok())
                .map(Value::from),
            "MetadataDoubleValue" => Some(v["double_value"].clone()),
            "MetadataBoolValue" => Some(v["bool_value"].clone()),
            "MetadataStringValue" => Some(v["string_value"].clone()),
            "MetadataStructValue" => Some(v["struct_value"].clone()),
            "MetadataProtoValue" => Some(v["proto_value"].clone()),
            _ => None,
        };
        if let Some(p) = plain {
            out.insert(k.clone(), p);
        }
    }
    out
}

/// Plain metadata as the registry's typed custom properties.
fn custom_properties(meta: &Map<String, Value>) -> Result<Value> {
    let mut out = Map::new();
    for (k, v) in meta {
        let typed = match v {
            Value::String(s) => json!({"string_value": s, "metadataType": "MetadataStringValue"}),
            Value::Bool(b) => json!({"bool_value": b, "metadataType": "MetadataBoolValue"}),
            // The registry's ints are int32 written as at most 9 digits.
            Value::Number(n) if n.as_i64().is_some_and(|i| i.unsigned_abs() < 1_000_000_000) => {
                json!({"int_value": n.to_string(), "metadataType": "MetadataIntValue"})
            }
            Value::Number(n) if n.is_f64() => {
                json!({"double_value": n, "metadataType": "MetadataDoubleValue"})
            }
            other => {
                return Err(Error::invalid(
                    "model metadata",
                    format!("{k}={other}"),
                    "the registry keeps strings, booleans, floats and integers of at most 9 digits",
                    "pass a string (or a float) for other values",
                ))
            }
        };
        out.insert(k.clone(), typed);
    }
    Ok(Value::Object(out))
}

impl RegisteredModelInfo {
    fn from_api(v: &Value) -> RegisteredModelInfo {
        RegisteredModelInfo {
            id: text(&v["id"]).unwrap_or_default(),
            name: text(&v["name"]).unwrap_or_default(),
            description: text(&v["description"]),
            owner: text(&v["owner"]),
            state: text(&v["state"]),
            created_at: time(&v["createTimeSinceEpoch"]),
            metadata: metadata(&v["customProperties"]),
        }
    }
}

impl ModelVersionInfo {
    fn from_api(v: &Value) -> ModelVersionInfo {
        ModelVersionInfo {
            id: text(&v["id"]).unwrap_or_default(),
            model_id: text(&v["registeredModelId"]).unwrap_or_default(),
            name: text(&v["name"]).unwrap_or_default(),
            description: text(&v["description"]),
            author: text(&v["author"]),
            state: text(&v["state"]),
            created_at: time(&v["createTimeSinceEpoch"]),
            metadata: metadata(&v["customProperties"]),
        }
    }
}

impl ModelArtifactInfo {
    fn from_api(v: &Value) -> ModelArtifactInfo {
        ModelArtifactInfo {
            id: text(&v["id"]).unwrap_or_default(),
            name: text(&v["name"]),
            artifact_type: text(&v["artifactType"]),
            uri: text(&v["uri"]),
            format_name: text(&v["modelFormatName"]),
            format_version: text(&v["modelFormatVersion"]),
            state: text(&v["state"]),
            created_at: time(&v["createTimeSinceEpoch"]),
            metadata: metadata(&v["customProperties"]),
        }
    }
}

fn page_of<T>(v: &Value, item: impl Fn(&Value) -> T) -> Page<T> {
    Page {
        items: v["items"]
            .as_array()
            .map(|a| a.iter().map(item).collect())
            .unwrap_or_default(),
        next: text(&v["nextPageToken"]),
        total: None,
    }
}

impl ModelRegistry {
    /// The Model Registry as the user signed in with `kflow login`.
    pub fn connect(ctx: &Context) -> Result<ModelRegistry> {
        Ok(ModelRegistry::new(crate::auth::session(ctx)?))
    }

    /// The Model Registry as `session`'s user.
    pub fn new(session: Session) -> ModelRegistry {
        ModelRegistry {
            gw: Gateway {
                session,
                app: KubeflowApp::ModelRegistry,
            },
            api: OnceLock::new(),
        }
    }

    /// The API's path: the newest version the gateway routes.
    fn api(&self) -> Result<String> {
        if let Some(api) = self.api.get() {
            return Ok(api.clone());
        }
        for version in API_VERSIONS {
            let api = format!("{PREFIX}/{version}");
            let answer = self.gw.send(
                reqwest::Method::GET,
                &format!("{api}/registered_models"),
                &[("pageSize", "1".into())],
                Body::Empty,
            )?;
            if answer.status == 404 && answer.json.is_none() {
                continue;
            }
            self.gw.check("list the registered models", answer)?;
            return Ok(self.api.get_or_init(|| api).clone());
        }
        Err(Error::App(AppError::NotInstalled {
            app: KubeflowApp::ModelRegistry,
            url: self.gw.session.endpoints().url.clone(),
        }))
    }

    /// `GET` a find endpoint: the one object, or None when the registry has none (404).
    fn find(&self, action: &str, path: &str, query: &[(&str, String)]) -> Result<Option<Value>> {
        let answer = self
            .gw
            .send(reqwest::Method::GET, path, query, Body::Empty)?;
        if answer.status == 404 && answer.json.is_some() {
            return Ok(None);
        }
        self.gw.check(action, answer).map(Some)
    }

    fn model(&self, model: &str) -> Result<Option<Value>> {
        let api = self.api()?;
        self.find(
            &format!("look for registered model {model}"),
            &format!("{api}/registered_model"),
            &[("name", model.to_string())],
        )
    }

    fn version(&self, model_id: &str, version: &str) -> Result<Option<Value>> {
        let api = self.api()?;
        self.find(
            &format!("look for model version {version}"),
            &format!("{api}/model_version"),
            &[
                ("name", version.to_string()),
                ("parentResourceId", model_id.to_string()),
            ],
        )
    }

    fn existing_model(&self, model: &str) -> Result<Value> {
        self.model(model)?.ok_or_else(|| {
            Error::App(AppError::NotFound {
                app: KubeflowApp::ModelRegistry,
                what: "registered model",
                name: model.to_string(),
                place: String::new(),
                fix: "`kflow models list` lists the registered models".into(),
            })
        })
    }

    /// The registered models, in the order they were made.
    pub fn list_models(&self, page: &PageRequest) -> Result<Page<RegisteredModelInfo>> {
        let api = self.api()?;
        let v = self.gw.get(
            "list the registered models",
            &format!("{api}/registered_models"),
            &super::page_query(page, "pageSize", "nextPageToken"),
        )?;
        Ok(page_of(&v, RegisteredModelInfo::from_api))
    }

    /// The versions of a registered model (by name).
    pub fn list_versions(&self, model: &str, page: &PageRequest) -> Result<Page<ModelVersionInfo>> {
        let found = RegisteredModelInfo::from_api(&self.existing_model(model)?);
        let api = self.api()?;
        let v = self.gw.get(
            &format!("list the versions of model {model}"),
            &format!("{api}/registered_models/{}/versions", found.id),
            &super::page_query(page, "pageSize", "nextPageToken"),
        )?;
        Ok(page_of(&v, ModelVersionInfo::from_api))
    }

    /// The artifacts of a model version (model and version by name).
    pub fn list_artifacts(
        &self,
        model: &str,
        version: &str,
        page: &PageRequest,
    ) -> Result<Page<ModelArtifactInfo>> {
        let found = RegisteredModelInfo::from_api(&self.existing_model(model)?);
        let v = self.version(&found.id, version)?.ok_or_else(|| {
            Error::App(AppError::NotFound {
                app: KubeflowApp::ModelRegistry,
                what: "model version",
                name: version.to_string(),
                place: format!(" of model {model}"),
                fix: format!("`kflow models versions {model}` lists its versions"),
            })
        })?;
        let api = self.api()?;
        let list = self.gw.get(
            &format!("list the artifacts of version {version} of model {model}"),
            &format!(
                "{api}/model_versions/{}/artifacts",
                text(&v["id"]).unwrap_or_default()
            ),
            &super::page_query(page, "pageSize", "nextPageToken"),
        )?;
        Ok(page_of(&list, ModelArtifactInfo::from_api))
    }

    /// Registers a model version and its artifact, creating the registered model when it is
    /// missing. A version name that is taken is [`AppError::Exists`] (nothing is made then).
    pub fn register(&self, req: &RegisterRequest) -> Result<Registered> {
        for (field, value, fix) in [
            ("model name", &req.model, "pass the registered model's name"),
            (
                "model version",
                &req.version,
                "pass a version name, e.g. --version v1",
            ),
            (
                "model URI",
                &req.uri,
                "pass where the model's files are, e.g. s3://bucket/path",
            ),
            (
                "model format",
                &req.format_name,
                "pass the model format, e.g. --format onnx",
            ),
        ] {
            if value.trim().is_empty() {
                return Err(Error::invalid(field, "", "empty", fix));
            }
        }
        let properties = custom_properties(&req.metadata)?;
        let api = self.api()?;
        let user = self.gw.session.username().to_string();
        let (model, model_created) = match self.model(&req.model)? {
            Some(m) => {
                let id = text(&m["id"]).unwrap_or_default();
                if self.version(&id, &req.version)?.is_some() {
                    return Err(Error::App(AppError::Exists {
                        app: KubeflowApp::ModelRegistry,
                        what: "model version",
                        name: req.version.clone(),
                        place: format!(" of model {}", req.model),
                        fix: format!("choose another version name; `kflow models versions {}` lists the taken ones", req.model),
                    }));
                }
                (m, false)
            }
            None => {
                let m = self.gw.call(
                    &format!("create registered model {}", req.model),
                    reqwest::Method::POST,
                    &format!("{api}/registered_models"),
                    &[],
                    Body::Json(json!({"name": req.model, "owner": user})),
                )?;
                (m, true)
            }
        };
        let model = RegisteredModelInfo::from_api(&model);
        let mut version = json!({"name": req.version, "registeredModelId": model.id,
            "author": req.author.clone().unwrap_or(user)});
        if let Some(d) = req.description.as_ref().filter(|d| !d.is_empty()) {
            version["description"] = json!(d);
        }
        if !req.metadata.is_empty() {
            version["customProperties"] = properties;
        }
        let version = ModelVersionInfo::from_api(&self.gw.call(
            &format!("create version {} of model {}", req.version, req.model),
            reqwest::Method::POST,
            &format!("{api}/model_versions"),
            &[],
            Body::Json(version),
        )?);
        let mut artifact = json!({"artifactType": "model-artifact", "name": req.model, "uri": req.uri,
            "modelFormatName": req.format_name});
        if let Some(fv) = req.format_version.as_ref().filter(|v| !v.is_empty()) {
            artifact["modelFormatVersion"] = json!(fv);
        }
        let artifact = ModelArtifactInfo::from_api(&self.gw.call(
            &format!(
                "add the artifact of version {} of model {}",
                req.version, req.model
            ),
            reqwest::Method::POST,
            &format!("{api}/model_versions/{}/artifacts", version.id),
            &[],
            Body::Json(artifact),
        )?);
        Ok(Registered {
            model,
            model_created,
            version,
            artifact,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_as_typed_properties() {
        let meta = json!({"accuracy": 0.93, "epochs": 3, "framework": "pytorch", "final": true});
        let props = custom_properties(meta.as_object().unwrap()).unwrap();
        assert_eq!(
            props["epochs"],
            json!({"int_value": "3", "metadataType": "MetadataIntValue"})
        );
        assert_eq!(Value::Object(metadata(&props)), meta);
        let big =
            custom_properties(json!({"n": 12_345_678_901_i64}).as_object().unwrap()).unwrap_err();
        assert!(big.to_string().contains("at most 9 digits"), "{big}");
        assert!(custom_properties(json!({"l": [1]}).as_object().unwrap()).is_err());
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(
            time(&json!("1700000000123")).as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(time(&json!("x")), None);
    }
}
