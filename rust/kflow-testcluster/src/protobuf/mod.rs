//! Just enough of Kubernetes' protobuf encoding to read the bodies that typed client-go clients
//! send (`kubectl create configmap|secret|namespace|serviceaccount`, `kubectl create
//! job|cronjob`): the `k8s\0` envelope and those kinds' messages (the workload kinds by the
//! schemas in `schema`), turned into the JSON the rest of the server works on.

mod schema;

use base64::Engine;
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtoError {
    #[error("not a Kubernetes protobuf envelope")]
    NoEnvelope,
    #[error("truncated protobuf message")]
    Truncated,
    #[error("protobuf bodies of kind {0:?} are not supported; send JSON")]
    Unsupported(String),
    #[error(
        "field {number} of protobuf message {message} is not read by this test cluster; send JSON"
    )]
    UnknownField { message: &'static str, number: u64 },
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtoError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or(ProtoError::Truncated)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(ProtoError::Truncated)
}

/// The (field number, value) pairs of one message.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ProtoError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let value = match key & 7 {
            0 => Field::Varint(varint(buf, &mut pos)?),
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or(ProtoError::Truncated)?;
                let v = &buf[pos..end];
                pos = end;
                Field::Bytes(v)
            }
            1 => {
                pos += 8;
                Field::Varint(0)
            }
            5 => {
                pos += 4;
                Field::Varint(0)
            }
            _ => return Err(ProtoError::Truncated),
        };
        out.push((key >> 3, value));
    }
    Ok(out)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `map<string, string|bytes>` entry (key = 1, value = 2).
fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ProtoError> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(b)? {
        if let Field::Bytes(x) = f {
            match n {
                1 => k = text(x),
                2 if bytes_value => v = json!(base64::engine::general_purpose::STANDARD.encode(x)),
                2 => v = json!(text(x)),
                _ => {}
            }
        }
    }
    Ok((k, v))
}

fn object_meta(b: &[u8]) -> Result<Value, ProtoError> {
    let mut meta = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => drop(meta.insert("name".into(), json!(text(x)))),
            (2, Field::Bytes(x)) => drop(meta.insert("generateName".into(), json!(text(x)))),
            (3, Field::Bytes(x)) => drop(meta.insert("namespace".into(), json!(text(x)))),
            (6, Field::Bytes(x)) => drop(meta.insert("resourceVersion".into(), json!(text(x)))),
            (11, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                labels.insert(k, v);
            }
            (12, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                annotations.insert(k, v);
            }
            (14, Field::Bytes(x)) => finalizers.push(json!(text(x))),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

/// `SelfSubjectAccessReviewSpec`: resourceAttributes (1: namespace, verb, group, version,
/// resource, subresource, name) or nonResourceAttributes (2: path, verb).
fn access_review_spec(b: &[u8]) -> Result<Value, ProtoError> {
    let strings = |x: &[u8], names: &[&str]| -> Result<Value, ProtoError> {
        let mut m = Map::new();
        for (n, f) in fields(x)? {
            if let (Some(name), Field::Bytes(v)) =
                ((n as usize).checked_sub(1).and_then(|i| names.get(i)), f)
            {
                m.insert((*name).into(), json!(text(v)));
            }
        }
        Ok(Value::Object(m))
    };
    let mut spec = json!({});
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                spec["resourceAttributes"] = strings(
                    x,
                    &[
                        "namespace",
                        "verb",
                        "group",
                        "version",
                        "resource",
                        "subresource",
                        "name",
                    ],
                )?
            }
            (2, Field::Bytes(x)) => spec["nonResourceAttributes"] = strings(x, &["path", "verb"])?,
            _ => {}
        }
    }
    Ok(spec)
}

/// Decodes an envelope-wrapped object of a supported kind into JSON.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let inner = body.strip_prefix(b"k8s\0").ok_or(ProtoError::NoEnvelope)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(inner)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (m, g) in fields(tm)? {
                    match (m, g) {
                        (1, Field::Bytes(x)) => api_version = text(x),
                        (2, Field::Bytes(x)) => kind = text(x),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let mut obj = json!({"apiVersion": api_version, "kind": kind});
    let workload = match kind.as_str() {
        "Job" => Some(&schema::JOB),
        "CronJob" => Some(&schema::CRON_JOB),
        _ => None,
    };
    if let Some(msg) = workload {
        if let Value::Object(m) = &mut obj {
            m.extend(schema::decode(raw, msg)?);
        }
        return Ok(obj);
    }
    let (mut data, mut binary, mut string_data) = (Map::new(), Map::new(), Map::new());
    for (n, f) in fields(raw)? {
        let Field::Bytes(x) = f else {
            if let (4, Field::Varint(v), "ConfigMap") | (5, Field::Varint(v), "Secret") =
                (n, &f, kind.as_str())
            {
                obj["immutable"] = json!(*v != 0);
            }
            continue;
        };
        match (kind.as_str(), n) {
            (_, 1) => obj["metadata"] = object_meta(x)?,
            ("ConfigMap", 2) => {
                let (k, v) = map_entry(x, false)?;
                data.insert(k, v);
            }
            ("ConfigMap", 3) | ("Secret", 2) => {
                let (k, v) = map_entry(x, true)?;
                if kind == "Secret" {
                    data.insert(k, v);
                } else {
                    binary.insert(k, v);
                }
            }
            ("Secret", 3) => obj["type"] = json!(text(x)),
            ("Secret", 4) => {
                let (k, v) = map_entry(x, false)?;
                string_data.insert(k, v);
            }
            ("Namespace", 2) => {
                let finals: Vec<Value> = fields(x)?
                    .into_iter()
                    .filter_map(|(m, g)| match (m, g) {
                        (1, Field::Bytes(s)) => Some(json!(text(s))),
                        _ => None,
                    })
                    .collect();
                obj["spec"] = json!({"finalizers": finals});
            }
            ("SelfSubjectAccessReview", 2) => obj["spec"] = access_review_spec(x)?,
            (
                "ConfigMap" | "Secret" | "Namespace" | "ServiceAccount" | "SelfSubjectAccessReview",
                _,
            ) => {}
            (other, _) => return Err(ProtoError::Unsupported(other.to_string())),
        }
    }
    if !matches!(
        kind.as_str(),
        "ConfigMap" | "Secret" | "Namespace" | "ServiceAccount" | "SelfSubjectAccessReview"
    ) {
        return Err(ProtoError::Unsupported(kind));
    }
    for (key, m) in [
        ("data", data),
        ("binaryData", binary),
        ("stringData", string_data),
    ] {
        if !m.is_empty() {
            obj[key] = Value::Object(m);
        }
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(n: u64, b: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, b.len() as u8];
        out.extend_from_slice(b);
        out
    }

    #[test]
    fn configmap_roundtrip() {
        let meta = [
            ld(1, b"cfg"),
            ld(11, &[ld(1, b"app"), ld(2, b"x")].concat()),
        ]
        .concat();
        let raw = [ld(1, &meta), ld(2, &[ld(1, b"k"), ld(2, b"v")].concat())].concat();
        let tm = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "x"}}, "data": {"k": "v"}})
        );
        assert_eq!(decode(b"{}"), Err(ProtoError::NoEnvelope));
        let pod = [
            b"k8s\0".to_vec(),
            ld(1, &[ld(1, b"v1"), ld(2, b"Pod")].concat()),
            ld(2, &ld(1, b"")),
        ]
        .concat();
        assert!(matches!(decode(&pod), Err(ProtoError::Unsupported(_))));
    }

    fn varint_field(n: u64, v: u64) -> Vec<u8> {
        let mut out = vec![(n << 3) as u8];
        let mut v = v;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn envelope(kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [ld(1, b"batch/v1"), ld(2, kind.as_bytes())].concat();
        [b"k8s\0".to_vec(), ld(1, &tm), ld(2, raw)].concat()
    }

    #[test]
    fn a_job_decodes_by_schema_with_go_zero_values_left_out_and_pointers_kept() {
        // What gogo writes: plain fields even when empty, pointers only when set.
        let container = [
            ld(1, b"main"),
            ld(2, b"python:3.11"),
            ld(3, b"python"),
            ld(3, b"-c"),
            ld(5, b""),
            ld(8, b""),
        ]
        .concat();
        let volume = [ld(1, b"scratch"), ld(2, &ld(2, b""))].concat();
        let pod_spec = [
            ld(1, &volume),
            ld(2, &container),
            ld(3, b"Never"),
            varint_field(11, 0),
        ]
        .concat();
        let template = [ld(1, &[ld(1, b""), ld(8, b"")].concat()), ld(2, &pod_spec)].concat();
        let job_spec = [varint_field(7, 0), ld(6, &template)].concat();
        let meta = [
            ld(1, b"j"),
            ld(12, &[ld(1, b"a"), ld(2, b"b")].concat()),
            ld(8, &varint_field(1, 1_764_720_000)),
        ]
        .concat();
        let raw = [ld(1, &meta), ld(2, &job_spec), ld(3, b"")].concat();
        let v = decode(&envelope("Job", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": "j", "annotations": {"a": "b"}, "creationTimestamp": "2025-12-03T00:00:00Z"},
                   "spec": {"backoffLimit": 0, "template": {"spec": {
                       "volumes": [{"name": "scratch", "emptyDir": {}}],
                       "containers": [{"name": "main", "image": "python:3.11", "command": ["python", "-c"]}],
                       "restartPolicy": "Never"}}}})
        );
        // A field the schema lacks (Container.livenessProbe, 10) is refused, never dropped.
        let probed = [ld(1, b"main"), ld(10, b"")].concat();
        let with_probe = [ld(1, &meta), ld(2, &ld(6, &ld(2, &ld(2, &probed))))].concat();
        assert_eq!(
            decode(&envelope("Job", &with_probe)),
            Err(ProtoError::UnknownField {
                message: "Container",
                number: 10
            })
        );
    }
}
