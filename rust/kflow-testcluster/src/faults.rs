//! Fault injection, set at start (`--faults FILE`) or at run time with `PUT /admin/faults`:
//! per-route error rate and latency, watch/log streams dropped after N events/lines, and
//! port-forward connections cut after N bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    /// Applies to request paths containing this string ("" = every path).
    pub path_contains: String,
    /// Applies to this HTTP method only (None = any).
    pub method: Option<String>,
    /// Probability in [0, 1] of answering with `error_code` instead of serving the request.
    pub error_rate: f64,
    pub error_code: Option<u16>,
    pub latency_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultConfig {
    pub rules: Vec<Rule>,
    /// Watch streams end after this many events (clients must re-watch).
    pub watch_drop_after: Option<usize>,
    /// Log streams end after this many lines.
    pub log_drop_after: Option<usize>,
    /// A port-forward connection is cut (no close frame, no GOAWAY: a lost connection) once
    /// it has carried this many bytes from the pod, counted per connection.
    pub portforward_drop_after_bytes: Option<usize>,
    /// Bearer tokens refused from now on (a revoked token gets 401).
    pub revoked_tokens: Vec<String>,
}

#[derive(Default)]
pub struct Faults {
    config: RwLock<FaultConfig>,
    rng: AtomicU64,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Faults {
            config: RwLock::new(config),
            rng: AtomicU64::new(0x853c_49e6_748f_ea9b),
        }
    }

    pub fn get(&self) -> FaultConfig {
        self.config.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn set(&self, config: FaultConfig) {
        if let Ok(mut c) = self.config.write() {
            *c = config;
        }
    }

    /// A deterministic xorshift so fault tests are reproducible run to run.
    fn roll(&self) -> f64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Sleeps for matching latency rules, then maybe answers with an injected error.
    pub async fn before_request(&self, method: &str, path: &str) -> Option<Response> {
        if path.starts_with("/admin/") {
            return None;
        }
        let rules: Vec<Rule> = self
            .get()
            .rules
            .into_iter()
            .filter(|r| {
                path.contains(&r.path_contains)
                    && r.method
                        .as_deref()
                        .is_none_or(|m| m.eq_ignore_ascii_case(method))
            })
            .collect();
        for r in &rules {
            if r.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(r.latency_ms)).await;
            }
        }
        for r in &rules {
            if r.error_rate > 0.0 && self.roll() < r.error_rate {
                let code = r.error_code.unwrap_or(500);
                let err = match code {
                    503 => ApiError::service_unavailable("injected fault"),
                    _ => {
                        let mut e = ApiError::internal("injected fault");
                        e.code = code;
                        e
                    }
                };
                return Some(err.into_response());
            }
        }
        None
    }

    pub fn watch_drop_after(&self) -> Option<usize> {
        self.get().watch_drop_after
    }

    pub fn log_drop_after(&self) -> Option<usize> {
        self.get().log_drop_after
    }

    pub fn portforward_drop_after_bytes(&self) -> Option<usize> {
        self.get().portforward_drop_after_bytes
    }

    pub fn is_revoked(&self, token: &str) -> bool {
        self.get().revoked_tokens.iter().any(|t| t == token)
    }
}
