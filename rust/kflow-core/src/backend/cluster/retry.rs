//! API errors as kflow errors that say what to do, and retries with jittered exponential
//! back-off for the failures that pass (5xx, 429, timeouts, dropped connections). Creations are
//! retried too: they are idempotent by run id (a 409 for our own object is adopted).

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::error::Error;

const ATTEMPTS: u32 = 7;

pub fn is_retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Runs `call` until it succeeds, fails for good, or the attempts are spent.
pub async fn retry<T, F, Fut>(mut call: F) -> kube::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<T>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if attempt + 1 < ATTEMPTS && is_retryable(&e) => {
                attempt += 1;
                let base = 100u64 << attempt.min(5);
                let jitter = rand::rng().random_range(0..=base / 2);
                tokio::time::sleep(Duration::from_millis((base + jitter).min(3000))).await;
            }
            other => return other,
        }
    }
}

/// `verb` and `resource` as RBAC names them ("create", "pytorchjobs"), so a 403 can say what
/// to ask for.
pub fn api_error(e: kube::Error, verb: &str, resource: &str, namespace: &str) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            Error::Forbidden { verb: verb.into(), resource: resource.into(), namespace: namespace.into(), message: s.message.clone() }
        }
        kube::Error::Api(s) => {
            let fix = match s.code {
                401 => "sign in again (`kflow login`) or refresh the kubeconfig: the cluster did not accept the credentials",
                404 => "check that the namespace exists and is the one you meant (namespace=...)",
                409 => "choose another job name, or delete the old job first (`kflow delete NAME`)",
                422 | 400 => "this is likely a kflow bug: report it with the message above",
                429 | 500..=599 => "the cluster is overloaded or failing; try again in a minute",
                _ => "check the cluster's state with your admin",
            };
            let action = if namespace.is_empty() { format!("{verb} {resource}") } else { format!("{verb} {resource} in namespace {namespace:?}") };
            Error::ClusterApi { action, code: s.code, message: s.message.clone(), fix: fix.into() }
        }
        other => Error::ClusterUnreachable { server: "the Kubernetes API server".into(), problem: other.to_string() },
    }
}

/// `retry` for calls that already return kflow errors: retries the ones that came from a
/// passing failure (unreachable server, 5xx, 429).
pub async fn retry_result<T, F, Fut>(mut call: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if attempt + 1 < ATTEMPTS && passing(&e) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis((100u64 << attempt.min(5)).min(3000))).await;
            }
            other => return other,
        }
    }
}

fn passing(e: &Error) -> bool {
    match e {
        Error::ClusterUnreachable { .. } => true,
        Error::ClusterApi { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
        _ => false,
    }
}
