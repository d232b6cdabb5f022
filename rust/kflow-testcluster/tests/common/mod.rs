//! Shared helpers for the integration tests: a started cluster and a small typed HTTP client.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use kflow_testcluster::{Options, TestCluster};
use serde_json::Value;

pub struct Api {
    pub cluster: TestCluster,
    pub http: reqwest::blocking::Client,
}

pub fn options(dir: &std::path::Path, tls: bool) -> Options {
    let mut o = Options::new(dir);
    o.tls = tls;
    o.restart_backoff = Duration::from_millis(200);
    o
}

pub fn client(cluster: &TestCluster) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = &cluster.ca_pem {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA pem"));
    }
    b.build().expect("client")
}

impl Api {
    pub fn start(dir: &std::path::Path) -> Api {
        Api::start_with(options(dir, false))
    }

    pub fn start_with(opts: Options) -> Api {
        let cluster = TestCluster::start(Some(opts)).expect("cluster starts");
        let http = client(&cluster);
        Api { cluster, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.cluster.base_url, path)
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.cluster.token)
    }

    /// (status code, JSON body)
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().expect("request");
        let code = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    pub fn patch(&self, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .req(reqwest::Method::PATCH, path)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .expect("patch");
        let code = resp.status().as_u16();
        (code, resp.json().unwrap_or(Value::Null))
    }

    /// Polls GET `path` until `pred` holds, failing after `secs`.
    pub fn wait_for(&self, path: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (code, v) = self.get(path);
            if code == 200 && pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {path}; last: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Reads newline-delimited JSON watch events from a streaming response until `n` arrive.
pub fn read_events(resp: reqwest::blocking::Response, n: usize) -> Vec<Value> {
    use std::io::BufRead;
    let mut out = Vec::new();
    let reader = std::io::BufReader::new(resp);
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).expect("event json"));
        if out.len() >= n {
            break;
        }
    }
    out
}
