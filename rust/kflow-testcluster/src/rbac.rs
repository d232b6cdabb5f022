//! The one authorization rule, used for every request (`authorize`) and answered by access
//! reviews (`decide`): the static token is cluster-admin; a realm user or a pod's service
//! account acts only inside its namespaces (and may read those Namespace objects), nothing at
//! the cluster scope.

use axum::http::Method;

use crate::authn::Identity;
use crate::error::{ApiError, ApiResult};
use crate::routing::ResourcePath;

/// What a caller wants to do, as RBAC sees it (a SubjectAccessReview's resourceAttributes).
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    /// Plural resource name (`pods`, `pytorchjobs`, `*`).
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// Ok(reason it is allowed) or Err(the apiserver's "… is forbidden: …" message).
pub fn decide(id: &Identity, a: &Attributes) -> Result<String, String> {
    let u = match id {
        Identity::Admin => {
            return Ok(
                "RBAC: allowed by ClusterRoleBinding \"kflow-admin\" of ClusterRole \"cluster-admin\" to User \"kflow-admin\""
                    .into(),
            )
        }
        Identity::User(u) => u,
    };
    let ns = if a.resource == "namespaces" {
        a.name.as_ref().or(a.namespace.as_ref())
    } else {
        a.namespace.as_ref()
    };
    let own = ns.filter(|n| u.namespaces.contains(n));
    let read = matches!(a.verb.as_str(), "get" | "list" | "watch");
    if let Some(n) = own {
        if a.resource != "namespaces" || read {
            return Ok(format!(
                "RBAC: allowed by RoleBinding \"kflow-edit\" of ClusterRole \"kubeflow-edit\" to User \"{}\" in namespace \"{n}\"",
                u.username
            ));
        }
    }
    let resource = match &a.subresource {
        Some(sub) => format!("{}/{sub}", a.resource),
        None => a.resource.clone(),
    };
    let scope = match a.namespace.as_ref().filter(|n| !n.is_empty()) {
        Some(n) => format!("in the namespace \"{n}\""),
        None => "at the cluster scope".to_string(),
    };
    let named = a
        .name
        .as_ref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    Err(format!(
        "{}{named} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        a.resource, u.username, a.verb, a.group
    ))
}

/// A request to the API, as RBAC attributes, decided by the same rule.
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
    let attrs = Attributes {
        verb: verb.into(),
        group: rp.res.group.into(),
        resource: rp.res.plural.into(),
        subresource: rp.sub.clone(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
    };
    decide(id, &attrs).map(drop).map_err(ApiError::forbidden)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::TokenUser;

    fn user() -> Identity {
        Identity::User(TokenUser {
            username: "alice".into(),
            namespaces: vec!["team-a".into()],
        })
    }

    fn attrs(verb: &str, resource: &str, ns: Option<&str>) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: "kubeflow.org".into(),
            resource: resource.into(),
            namespace: ns.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn namespaces_bound_users() {
        assert!(decide(&user(), &attrs("create", "pytorchjobs", Some("team-a"))).is_ok());
        let err = decide(&user(), &attrs("create", "pytorchjobs", Some("team-b"))).unwrap_err();
        assert_eq!(err, "pytorchjobs is forbidden: User \"alice\" cannot create resource \"pytorchjobs\" in API group \"kubeflow.org\" in the namespace \"team-b\"");
        assert!(decide(&user(), &attrs("list", "nodes", None)).is_err());
        let mut ns = attrs("get", "namespaces", None);
        ns.name = Some("team-a".into());
        assert!(decide(&user(), &ns).is_ok());
        ns.verb = "delete".into();
        assert!(decide(&user(), &ns).is_err());
        assert!(decide(&Identity::Admin, &attrs("delete", "nodes", None)).is_ok());
    }
}
