//! The container's environment as the kubelet resolves it: envFrom, env with `valueFrom`
//! (fieldRef, configMapKeyRef, secretKeyRef, resourceFieldRef) and `$(VAR)` expansion.

use base64::Engine;
use serde_json::{json, Value};

use super::container::StartError;
use super::{ns_of, Kubelet};
use crate::node::NODE_NAME;
use crate::resources;
use crate::runtime;

impl Kubelet {
    /// The container's environment: envFrom, then env (value with $(VAR) expansion, or
    /// valueFrom fieldRef / configMapKeyRef / secretKeyRef).
    pub(super) fn container_env(
        &self,
        pod: &Value,
        c: &Value,
    ) -> Result<Vec<(String, String)>, StartError> {
        let ns = ns_of(pod);
        let cms = resources::find("", "v1", "configmaps").expect("served");
        let secrets = resources::find("", "v1", "secrets").expect("served");
        let b64 = base64::engine::general_purpose::STANDARD;
        let decode =
            |s: &str| String::from_utf8_lossy(&b64.decode(s).unwrap_or_default()).into_owned();
        let mut env: Vec<(String, String)> = Vec::new();
        let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
            env.retain(|(x, _)| *x != k);
            env.push((k, v));
        };
        for from in c["envFrom"].as_array().into_iter().flatten() {
            let prefix = from["prefix"].as_str().unwrap_or("");
            let (res, r, secret) = if from["secretRef"].is_object() {
                (secrets, &from["secretRef"], true)
            } else {
                (cms, &from["configMapRef"], false)
            };
            let n = r["name"].as_str().unwrap_or("");
            match self.store.get(res, &ns, n) {
                Some(obj) => {
                    for (k, v) in obj["data"].as_object().into_iter().flatten() {
                        let s = v.as_str().unwrap_or("");
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            if secret { decode(s) } else { s.to_string() },
                        );
                    }
                }
                None if r["optional"] == json!(true) => {}
                None => {
                    return Err(StartError::Config(format!(
                        "{} \"{n}\" not found",
                        if secret { "secret" } else { "configmap" }
                    )))
                }
            }
        }
        for e in c["env"].as_array().into_iter().flatten() {
            let k = e["name"].as_str().unwrap_or("").to_string();
            let vf = &e["valueFrom"];
            let v = if let Some(path) = vf["fieldRef"]["fieldPath"].as_str() {
                field_ref(pod, path)
            } else if vf["configMapKeyRef"].is_object() || vf["secretKeyRef"].is_object() {
                let secret = vf["secretKeyRef"].is_object();
                let r = if secret {
                    &vf["secretKeyRef"]
                } else {
                    &vf["configMapKeyRef"]
                };
                let (n, key) = (
                    r["name"].as_str().unwrap_or(""),
                    r["key"].as_str().unwrap_or(""),
                );
                let obj = self.store.get(if secret { secrets } else { cms }, &ns, n);
                let raw = obj
                    .as_ref()
                    .and_then(|o| o["data"][key].as_str().map(str::to_string));
                match raw {
                    Some(s) => {
                        if secret {
                            decode(&s)
                        } else {
                            s
                        }
                    }
                    None if r["optional"] == json!(true) => continue,
                    None if obj.is_none() => {
                        return Err(StartError::Config(format!(
                            "{} \"{n}\" not found",
                            if secret { "secret" } else { "configmap" }
                        )))
                    }
                    None => {
                        return Err(StartError::Config(format!(
                            "couldn't find key {key} in {} {ns}/{n}",
                            if secret { "Secret" } else { "ConfigMap" }
                        )))
                    }
                }
            } else if vf["resourceFieldRef"].is_object() {
                let res = vf["resourceFieldRef"]["resource"].as_str().unwrap_or("");
                let (kind, what) = res.split_once('.').unwrap_or(("limits", "cpu"));
                c["resources"][kind][what]
                    .as_str()
                    .and_then(runtime::parse_quantity)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "0".into())
            } else {
                expand_vars(e["value"].as_str().unwrap_or(""), &env)
            };
            set(&mut env, k, v);
        }
        Ok(env)
    }
}

fn field_ref(pod: &Value, path: &str) -> String {
    if let Some(rest) = path
        .strip_prefix("metadata.labels['")
        .and_then(|r| r.strip_suffix("']"))
    {
        return pod["metadata"]["labels"][rest]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    if let Some(rest) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|r| r.strip_suffix("']"))
    {
        return pod["metadata"]["annotations"][rest]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    match path {
        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
        "spec.nodeName" => NODE_NAME.into(),
        _ => {
            let mut cur = pod;
            for p in path.split('.') {
                cur = &cur[p];
            }
            cur.as_str().map(str::to_string).unwrap_or_default()
        }
    }
}

/// Kubernetes `$(VAR)` expansion: known vars are replaced, `$$` escapes, unknown stay as is.
pub fn expand_vars(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after
            .strip_prefix('(')
            .and_then(|a| a.find(')').map(|j| (&a[..j], &a[j + 1..])))
        {
            match env.iter().rev().find(|(k, _)| k == inner.0) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(inner.0);
                    out.push(')');
                }
            }
            rest = inner.1;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_expansion() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand_vars("x$(A)y $(B) $$(A) $", &env), "x1y $(B) $(A) $");
    }
}
