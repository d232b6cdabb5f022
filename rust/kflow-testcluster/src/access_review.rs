//! `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`): the caller's
//! question answered by the same rule that decides its requests (`rbac::decide`).

use serde_json::{json, Value};

use crate::authn::Identity;
use crate::error::{ApiError, ApiResult};
use crate::rbac::{self, Attributes};

/// Paths every authenticated user may read (system:discovery, system:public-info-viewer).
const PUBLIC_PATHS: &[&str] = &[
    "/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi",
];

/// The review with its `status` filled in.
pub fn review(id: &Identity, mut obj: Value) -> ApiResult<Value> {
    if obj["kind"] != json!("SelfSubjectAccessReview") {
        return Err(ApiError::bad_request(format!(
            "expected a SelfSubjectAccessReview, got kind {}",
            obj["kind"]
        )));
    }
    let spec = &obj["spec"];
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let status = if let Some(ra) = spec["resourceAttributes"].as_object() {
        let attrs = Attributes {
            verb: ra.get("verb").and_then(text).unwrap_or_default(),
            group: ra.get("group").and_then(text).unwrap_or_default(),
            resource: ra.get("resource").and_then(text).unwrap_or_default(),
            subresource: ra.get("subresource").and_then(text),
            namespace: ra.get("namespace").and_then(text),
            name: ra.get("name").and_then(text),
        };
        match rbac::decide(id, &attrs) {
            Ok(reason) => json!({"allowed": true, "reason": reason}),
            Err(forbidden) => {
                // The message without its "<resource> is forbidden: " lead, as a reason.
                let why = forbidden
                    .split_once("is forbidden: ")
                    .map(|(_, w)| w.to_string())
                    .unwrap_or(forbidden);
                json!({"allowed": false, "reason": why})
            }
        }
    } else if let Some(nra) = spec["nonResourceAttributes"].as_object() {
        let path = nra.get("path").and_then(|p| p.as_str()).unwrap_or("");
        let verb = nra.get("verb").and_then(|v| v.as_str()).unwrap_or("");
        let public = verb == "get"
            && PUBLIC_PATHS
                .iter()
                .any(|p| path == *p || path.starts_with(&format!("{p}/")));
        match id {
            Identity::Admin => {
                json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"kflow-admin\" of ClusterRole \"cluster-admin\""})
            }
            Identity::User(_) if public => {
                json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\""})
            }
            Identity::User(u) => {
                json!({"allowed": false, "reason": format!("User \"{}\" cannot {verb} path \"{path}\"", u.username)})
            }
        }
    } else {
        return Err(ApiError::invalid(
            "SelfSubjectAccessReview",
            "authorization.k8s.io",
            "",
            vec![(
                "spec.resourceAttributes".into(),
                "exactly one of nonResourceAttributes or resourceAttributes must be specified"
                    .into(),
            )],
        ));
    };
    obj["status"] = status;
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::TokenUser;

    #[test]
    fn answers_with_the_request_rule() {
        let alice = Identity::User(TokenUser {
            username: "alice".into(),
            namespaces: vec!["team-a".into()],
        });
        let ask = |ns: &str| {
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                   "spec": {"resourceAttributes": {"namespace": ns, "verb": "create", "group": "kubeflow.org", "resource": "pytorchjobs"}}})
        };
        let yes = review(&alice, ask("team-a")).unwrap();
        assert_eq!(yes["status"]["allowed"], true);
        let no = review(&alice, ask("team-b")).unwrap();
        assert_eq!(no["status"]["allowed"], false);
        assert!(no["status"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("User \"alice\" cannot create"));
        assert_eq!(
            review(&Identity::Admin, ask("x")).unwrap()["status"]["allowed"],
            true
        );
    }
}
