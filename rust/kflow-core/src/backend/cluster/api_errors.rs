//! The API server's refusals as kflow errors that say what to do about them.

use crate::error::{ClusterError, Error};

/// The HTTP status of an API refusal; `None` for transport failures.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// `verb` and `resource` as RBAC names them ("create", "pytorchjobs"), so a 403 can say what
/// to ask for.
pub fn api_error(e: kube::Error, verb: &str, resource: &str, namespace: &str) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 403 => Error::Cluster(ClusterError::Forbidden {
            verb: verb.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            message: s.message.clone(),
        }),
        kube::Error::Api(s) => {
            let fix = match s.code {
                401 => "sign in again (`kflow login`) or refresh the kubeconfig: the cluster did not accept the credentials",
                404 => "check that the namespace exists and is the one you meant (namespace=...)",
                409 => "choose another job name, or delete the old job first (`kflow delete NAME`)",
                422 | 400 => "this is likely a kflow bug: report it with the message above",
                429 | 500..=599 => "the cluster is overloaded or failing; try again in a minute",
                _ => "check the cluster's state with your admin",
            };
            let action = if namespace.is_empty() {
                format!("{verb} {resource}")
            } else {
                format!("{verb} {resource} in namespace {namespace:?}")
            };
            Error::Cluster(ClusterError::Api {
                action,
                code: s.code,
                message: s.message.clone(),
                fix: fix.into(),
            })
        }
        other => Error::Cluster(ClusterError::Unreachable {
            server: "the Kubernetes API server".into(),
            problem: other.to_string(),
        }),
    }
}
