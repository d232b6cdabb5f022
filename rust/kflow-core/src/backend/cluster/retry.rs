//! Retries with jittered exponential back-off for the failures that pass (5xx, 429, timeouts, dropped connections). Creations are
//! retried too: they are idempotent by run id (a 409 for our own object is adopted).
//!
//! An overloaded API server says how long to wait: on 429 (API priority and fairness) and 503
//! it sends a `Retry-After` header and the same number as `details.retryAfterSeconds` in the
//! Status body. kube's own client stack already waits out the header for the clients built
//! from a config (kubeconfig, in-cluster); `retry` reads the body's copy, which every client
//! sees, and never retries sooner than the server asked (capped at `MAX_SERVER_WAIT`).

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::error::{ClusterError, Error};

const ATTEMPTS: u32 = 7;

/// The longest a server-asked wait is honoured for; beyond that kflow retries sooner rather
/// than seeming hung.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(30);

/// How long the server asked to wait before the next attempt (429/503 with
/// `details.retryAfterSeconds`), capped at `MAX_SERVER_WAIT`.
pub fn server_wait(e: &kube::Error) -> Option<Duration> {
    match e {
        kube::Error::Api(s) if matches!(s.code, 429 | 503) => {
            let secs = s.details.as_ref()?.retry_after_seconds;
            (secs > 0).then(|| Duration::from_secs(u64::from(secs)).min(MAX_SERVER_WAIT))
        }
        _ => None,
    }
}

pub fn is_retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
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
                let ours = Duration::from_millis((base + jitter).min(3000));
                tokio::time::sleep(server_wait(&e).map_or(ours, |asked| asked.max(ours))).await;
            }
            other => return other,
        }
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
                tokio::time::sleep(Duration::from_millis((100u64 << attempt.min(5)).min(3000)))
                    .await;
            }
            other => return other,
        }
    }
}

fn passing(e: &Error) -> bool {
    match e {
        Error::Cluster(ClusterError::Unreachable { .. }) => true,
        Error::Cluster(ClusterError::Api { code, .. }) => {
            matches!(code, 429 | 500 | 502 | 503 | 504)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn status(code: u16, retry_after: Option<u32>) -> kube::Error {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": "TooManyRequests",
            "message": "too many requests, please try again later",
            "details": retry_after.map(|s| serde_json::json!({"retryAfterSeconds": s})),
        });
        kube::Error::Api(Box::new(serde_json::from_value(body).unwrap()))
    }

    #[test]
    fn server_wait_reads_retry_after_seconds_of_429_and_503_only() {
        assert_eq!(
            server_wait(&status(429, Some(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(server_wait(&status(503, Some(600))), Some(MAX_SERVER_WAIT));
        assert_eq!(server_wait(&status(500, Some(2))), None);
        assert_eq!(server_wait(&status(429, None)), None);
    }

    #[tokio::test]
    async fn retry_waits_as_long_as_the_server_asks() {
        let mut calls = 0;
        let start = Instant::now();
        let got = retry(|| {
            calls += 1;
            let first = calls == 1;
            async move {
                if first {
                    Err(status(429, Some(1)))
                } else {
                    Ok(7)
                }
            }
        })
        .await
        .unwrap();
        // Our own first back-off is 200-300 ms; the server asked for a full second.
        assert_eq!((got, calls), (7, 2));
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
}
