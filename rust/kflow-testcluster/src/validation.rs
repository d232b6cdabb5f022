//! What the apiserver and the training operator's admission webhook reject with 422 Invalid:
//! object names, required pod fields, CRD openAPIV3Schema (when `KFLOW_CRD_DIR` is set) and the
//! operator's replica rules. Kept independent of any client code so it can catch client mistakes.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceType;

type Causes = Vec<(String, String)>;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

pub fn is_dns1035_label(s: &str) -> bool {
    is_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// Which rule the apiserver applies to a resource's names.
fn name_problem(res: &ResourceType, name: &str) -> Option<String> {
    let (ok, msg) = match res.plural {
        "namespaces" => (is_label(name), DNS1123_LABEL_MSG),
        "services" => (is_dns1035_label(name), DNS1035_LABEL_MSG),
        // The training operator's webhook requires DNS-1035 job names: they become service names.
        "pytorchjobs" | "tfjobs" | "mpijobs" => (is_dns1035_label(name), DNS1035_LABEL_MSG),
        _ => (is_dns1123_subdomain(name), DNS1123_SUBDOMAIN_MSG),
    };
    if ok {
        return None;
    }
    let mut msg = msg.to_string();
    if name.len() > 63
        && res.plural != "configmaps"
        && res.plural != "secrets"
        && !msg.contains("subdomain")
    {
        msg = "must be no more than 63 characters".into();
    }
    Some(format!("Invalid value: \"{name}\": {msg}"))
}

/// Checks every create/update must pass. `schemas` holds CRD schemas when configured.
pub fn validate(res: &ResourceType, obj: &Value, schemas: &CrdSchemas) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let mut causes: Causes = Vec::new();
    if name.is_empty() {
        causes.push((
            "metadata.name".into(),
            "Required value: name or generateName is required".into(),
        ));
    } else if let Some(p) = name_problem(res, name) {
        causes.push(("metadata.name".into(), p));
    }
    if res.plural == "pods" {
        validate_pod_spec(&obj["spec"], "spec", &mut causes);
    }
    if res.group == "batch" && res.plural == "cronjobs" {
        causes.extend(crate::batch::cronjob_problems(obj));
    }
    if let Some(schema) = schemas.get(res) {
        let mut spec_only = obj.clone();
        if let Some(o) = spec_only.as_object_mut() {
            // metadata is validated by the apiserver itself, not by the CRD schema.
            o.remove("metadata");
            o.remove("apiVersion");
            o.remove("kind");
        }
        let props = schema.get("properties").cloned().unwrap_or(Value::Null);
        if let (Some(obj_map), Some(props)) = (spec_only.as_object(), props.as_object()) {
            for (k, v) in obj_map {
                if let Some(s) = props.get(k) {
                    check_schema(s, v, k, &mut causes);
                }
            }
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(res.kind, res.group, name, causes))
}

fn validate_pod_spec(spec: &Value, path: &str, causes: &mut Causes) {
    let containers = spec["containers"].as_array();
    match containers {
        None => causes.push((format!("{path}.containers"), "Required value".into())),
        Some(cs) if cs.is_empty() => {
            causes.push((format!("{path}.containers"), "Required value".into()))
        }
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                let n = c["name"].as_str().unwrap_or("");
                if n.is_empty() {
                    causes.push((
                        format!("{path}.containers[{i}].name"),
                        "Required value".into(),
                    ));
                } else if !is_label(n) {
                    causes.push((
                        format!("{path}.containers[{i}].name"),
                        format!("Invalid value: \"{n}\": {DNS1123_LABEL_MSG}"),
                    ));
                }
                if c["image"].as_str().unwrap_or("").is_empty() {
                    causes.push((
                        format!("{path}.containers[{i}].image"),
                        "Required value".into(),
                    ));
                }
            }
        }
    }
    if let Some(p) = spec["restartPolicy"].as_str() {
        if !matches!(p, "Always" | "OnFailure" | "Never") {
            causes.push((
                format!("{path}.restartPolicy"),
                format!("Unsupported value: \"{p}\": supported values: \"Always\", \"OnFailure\", \"Never\""),
            ));
        }
    }
}

/// The training operator's webhook rules for a job (PyTorchJob, TFJob, MPIJob of kubeflow.org/v1).
pub fn admit_training_job(res: &ResourceType, obj: &Value) -> ApiResult<()> {
    let (specs_field, allowed, container, single): (&str, &[&str], Option<&str>, &[&str]) =
        match res.plural {
            "pytorchjobs" => (
                "pytorchReplicaSpecs",
                &["Master", "Worker"],
                Some("pytorch"),
                &["Master"],
            ),
            "tfjobs" => (
                "tfReplicaSpecs",
                &["Chief", "Master", "Worker", "PS", "Evaluator"],
                Some("tensorflow"),
                &["Chief", "Master", "Evaluator"],
            ),
            "mpijobs" => (
                "mpiReplicaSpecs",
                &["Launcher", "Worker"],
                None,
                &["Launcher"],
            ),
            _ => return Ok(()),
        };
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let mut causes: Causes = Vec::new();
    let base = format!("spec.{specs_field}");
    match obj["spec"][specs_field].as_object() {
        None => causes.push((base.clone(), "Required value: must be specified".into())),
        Some(specs) if specs.is_empty() => {
            causes.push((base.clone(), "Required value: must be specified".into()))
        }
        Some(specs) => {
            for (rtype, rspec) in specs {
                let rpath = format!("{base}[{rtype}]");
                if !allowed.contains(&rtype.as_str()) {
                    let supported: Vec<String> =
                        allowed.iter().map(|a| format!("\"{a}\"")).collect();
                    causes.push((
                        base.clone(),
                        format!(
                            "Unsupported value: \"{rtype}\": supported values: {}",
                            supported.join(", ")
                        ),
                    ));
                    continue;
                }
                let replicas = rspec["replicas"].as_i64().unwrap_or(1);
                if single.contains(&rtype.as_str())
                    && replicas != 1
                    && !(res.plural == "tfjobs" && replicas == 0)
                {
                    causes.push((format!("{rpath}.replicas"), "Forbidden: must be 1".into()));
                }
                if rtype == "Worker" && replicas < 1 && res.plural == "pytorchjobs" {
                    causes.push((
                        format!("{rpath}.replicas"),
                        "Invalid value: must be at least 1".into(),
                    ));
                }
                let cpath = format!("{rpath}.template.spec.containers");
                let containers = rspec["template"]["spec"]["containers"].as_array();
                let Some(containers) = containers.filter(|c| !c.is_empty()) else {
                    causes.push((cpath, "Required value: must be specified".into()));
                    continue;
                };
                for (i, c) in containers.iter().enumerate() {
                    if c["image"].as_str().unwrap_or("").is_empty() {
                        causes.push((
                            format!("{cpath}[{i}].image"),
                            "Required value: must be required".into(),
                        ));
                    }
                }
                if let Some(want) = container {
                    if !containers.iter().any(|c| c["name"].as_str() == Some(want)) {
                        causes.push((
                            cpath,
                            format!(
                                "Required value: must have at least one container with name {want}"
                            ),
                        ));
                    }
                }
            }
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    let mut err = ApiError::invalid(res.kind, res.group, name, causes);
    err.message = format!(
        "admission webhook \"validator.{}.training-operator.kubeflow.org\" denied the request: {}",
        res.singular, err.message
    );
    Err(err)
}

/// openAPIV3Schemas from the CRD files in a directory, by "group/version/plural", and the CRD
/// documents themselves (served at apiextensions.k8s.io/v1).
#[derive(Default)]
pub struct CrdSchemas(HashMap<String, Value>, Vec<Value>);

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("reading CRD dir {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing CRD {path}: {source}")]
    Yaml {
        path: String,
        source: serde_yaml::Error,
    },
}

impl CrdSchemas {
    pub fn load(dir: &Path) -> Result<Self, CrdError> {
        let mut map = HashMap::new();
        let mut docs = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| CrdError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| CrdError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let crd: Value = serde_yaml::from_str(&text).map_err(|source| CrdError::Yaml {
                path: path.display().to_string(),
                source,
            })?;
            if crd["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let group = crd["spec"]["group"].as_str().unwrap_or("");
            let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
            docs.push(crd.clone());
            for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
                let version = v["name"].as_str().unwrap_or("");
                let schema = &v["schema"]["openAPIV3Schema"];
                if !schema.is_null() {
                    map.insert(format!("{group}/{version}/{plural}"), schema.clone());
                }
            }
        }
        Ok(CrdSchemas(map, docs))
    }

    /// The loaded CRD documents.
    pub fn documents(&self) -> &[Value] {
        &self.1
    }

    pub fn get(&self, res: &ResourceType) -> Option<&Value> {
        self.0.get(&res.key())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A structural-schema validator covering what Kubernetes CRD schemas use: type, required,
/// properties, additionalProperties, items, enum, min/max, int-or-string, preserve-unknown-fields.
/// Unknown fields are pruned by the real apiserver rather than rejected, so they are ignored here.
pub fn check_schema(schema: &Value, v: &Value, path: &str, causes: &mut Causes) {
    // The apiserver drops nulls (nullable or not) before validating instead of failing.
    if v.is_null() {
        return;
    }
    if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
        if !matches!(type_name(v), "integer" | "string") {
            causes.push((
                path.into(),
                format!(
                    "Invalid value: \"{}\": {path} in body must be of type integer-or-string",
                    type_name(v)
                ),
            ));
        }
        return;
    }
    if let Some(want) = schema["type"].as_str() {
        let have = type_name(v);
        let ok = have == want || (want == "number" && have == "integer");
        if !ok {
            causes.push((
                path.into(),
                format!(
                    "Invalid value: \"{have}\": {path} in body must be of type {want}: \"{have}\""
                ),
            ));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(v) {
            let list: Vec<String> = options.iter().map(|o| o.to_string()).collect();
            causes.push((
                path.into(),
                format!(
                    "Unsupported value: {v}: supported values: {}",
                    list.join(", ")
                ),
            ));
        }
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64()) {
        if n < min {
            causes.push((
                path.into(),
                format!(
                    "Invalid value: {v}: {path} in body should be greater than or equal to {min}"
                ),
            ));
        }
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), v.as_f64()) {
        if n > max {
            causes.push((
                path.into(),
                format!("Invalid value: {v}: {path} in body should be less than or equal to {max}"),
            ));
        }
    }
    match v {
        Value::Object(map) => {
            for req in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
            {
                if !map.contains_key(req) {
                    causes.push((format!("{path}.{req}"), "Required value".into()));
                }
            }
            let props = schema["properties"].as_object();
            for (k, child) in map {
                let child_path = format!("{path}.{k}");
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    check_schema(s, child, &child_path, causes);
                } else if schema["additionalProperties"].is_object() {
                    check_schema(&schema["additionalProperties"], child, &child_path, causes);
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, item) in items.iter().enumerate() {
                check_schema(&schema["items"], item, &format!("{path}[{i}]"), causes);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(!is_dns1123_subdomain("A"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(is_dns1035_label("job-1"));
        assert!(!is_dns1035_label("1job"));
    }

    #[test]
    fn schema_types_required_enum() {
        let schema = json!({"type": "object", "required": ["a"], "properties": {
            "a": {"type": "integer", "minimum": 1},
            "b": {"type": "string", "enum": ["x", "y"]},
            "c": {"x-kubernetes-int-or-string": true},
            "d": {"type": "array", "items": {"type": "string"}}}});
        let mut causes = Vec::new();
        check_schema(
            &schema,
            &json!({"a": 1, "b": "x", "c": "5", "d": ["q"]}),
            "spec",
            &mut causes,
        );
        assert!(causes.is_empty(), "{causes:?}");
        check_schema(
            &schema,
            &json!({"b": "z", "c": true, "d": [1]}),
            "spec",
            &mut causes,
        );
        let fields: Vec<&str> = causes.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(fields, vec!["spec.a", "spec.b", "spec.c", "spec.d[0]"]);
    }

    #[test]
    fn pytorch_admission() {
        let res = crate::resources::find("kubeflow.org", "v1", "pytorchjobs").unwrap();
        let good = json!({"metadata": {"name": "j"}, "spec": {"pytorchReplicaSpecs": {
            "Master": {"replicas": 1, "template": {"spec": {"containers": [{"name": "pytorch", "image": "python"}]}}}}}});
        assert!(admit_training_job(res, &good).is_ok());
        let bad = json!({"metadata": {"name": "j"}, "spec": {"pytorchReplicaSpecs": {
            "Master": {"replicas": 2, "template": {"spec": {"containers": [{"name": "main", "image": "python"}]}}},
            "Chief": {"replicas": 1}}}});
        let err = admit_training_job(res, &bad).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.contains("must be 1"), "{}", err.message);
        assert!(
            err.message.contains("container with name pytorch"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("Unsupported value: \"Chief\""),
            "{}",
            err.message
        );
    }
}
