//! Typed Jupyter message parts (protocol 5.3). Only the shapes this kernel reads or writes;
//! the transport (framing, signing) lives in `wire`, so these types stay plain serde data.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const PROTOCOL_VERSION: &str = "5.3";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Header {
    #[serde(default)]
    pub msg_id: String,
    #[serde(default)]
    pub session: String,
    #[serde(default)]
    pub username: String,
    /// ISO 8601; required by the spec, so a fresh one is written for every message we send.
    #[serde(default)]
    pub date: String,
    pub msg_type: String,
    #[serde(default)]
    pub version: String,
}

impl Header {
    /// A header for a message this kernel sends. Every message gets a fresh msg_id: clients
    /// (and jupyter_client's signature cache) reject repeated ids/signatures.
    pub fn new(msg_type: &str, session: &str) -> Self {
        Header {
            msg_id: uuid::Uuid::new_v4().to_string(),
            session: session.to_string(),
            username: "kflow".into(),
            date: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            msg_type: msg_type.to_string(),
            version: PROTOCOL_VERSION.into(),
        }
    }
}

// ---------------------------------------------------------------- requests (lenient: every
// field has a default, because clients differ in which optional fields they send)

#[derive(Debug, Clone, Deserialize)]
pub struct ExecuteRequest {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub silent: bool,
    #[serde(default = "yes")]
    pub store_history: bool,
    #[serde(default)]
    pub user_expressions: Map<String, Value>,
    #[serde(default)]
    pub allow_stdin: bool,
    #[serde(default = "yes")]
    pub stop_on_error: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompleteRequest {
    #[serde(default)]
    pub code: String,
    /// In unicode code points, per the spec (not bytes).
    #[serde(default)]
    pub cursor_pos: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InspectRequest {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub cursor_pos: usize,
    #[serde(default)]
    pub detail_level: u8,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IsCompleteRequest {
    #[serde(default)]
    pub code: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HistoryRequest {
    #[serde(default)]
    pub output: bool,
    #[serde(default)]
    pub raw: bool,
    #[serde(default)]
    pub hist_access_type: String,
    #[serde(default)]
    pub session: Option<i64>,
    #[serde(default)]
    pub start: Option<i64>,
    #[serde(default)]
    pub stop: Option<i64>,
    #[serde(default)]
    pub n: Option<i64>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub unique: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShutdownRequest {
    #[serde(default)]
    pub restart: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommInfoRequest {
    #[serde(default)]
    pub target_name: Option<String>,
}

// ---------------------------------------------------------------- replies and iopub contents

#[derive(Debug, Clone, Serialize)]
pub struct LanguageInfo {
    pub name: &'static str,
    pub version: String,
    pub mimetype: &'static str,
    pub file_extension: &'static str,
    pub pygments_lexer: &'static str,
    pub codemirror_mode: Value,
    pub nbconvert_exporter: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct HelpLink {
    pub text: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelInfoReply {
    pub status: &'static str,
    pub protocol_version: &'static str,
    pub implementation: &'static str,
    pub implementation_version: &'static str,
    pub language_info: LanguageInfo,
    pub banner: String,
    pub help_links: Vec<HelpLink>,
    pub debugger: bool,
}

impl KernelInfoReply {
    pub fn new(python_version: &str) -> Self {
        KernelInfoReply {
            status: "ok",
            protocol_version: PROTOCOL_VERSION,
            implementation: "kflow",
            implementation_version: env!("CARGO_PKG_VERSION"),
            // language "python" so editors highlight and lint cells as Python: the cell *is*
            // the training script.
            language_info: LanguageInfo {
                name: "python",
                version: python_version.to_string(),
                mimetype: "text/x-python",
                file_extension: ".py",
                pygments_lexer: "ipython3",
                codemirror_mode: serde_json::json!({"name": "ipython", "version": 3}),
                nbconvert_exporter: "python",
            },
            banner: format!(
                "kflow {} - every cell runs as a Kubeflow training job. %kflow? for help.",
                env!("CARGO_PKG_VERSION")
            ),
            help_links: vec![],
            debugger: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecuteReplyOk {
    pub status: &'static str,
    pub execution_count: u64,
    pub payload: Vec<Value>,
    pub user_expressions: Map<String, Value>,
}

/// execute_reply for a request skipped after an earlier failure ("aborted", as ipykernel and
/// the clients that check for it spell it).
#[derive(Debug, Clone, Serialize)]
pub struct AbortedReply {
    pub status: &'static str,
    pub execution_count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorContent {
    pub status: &'static str,
    pub execution_count: u64,
    pub ename: String,
    pub evalue: String,
    pub traceback: Vec<String>,
}

/// The iopub `error` message (no status field there).
#[derive(Debug, Clone, Serialize)]
pub struct ErrorOutput {
    pub ename: String,
    pub evalue: String,
    pub traceback: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompleteReply {
    pub status: &'static str,
    pub matches: Vec<String>,
    pub cursor_start: usize,
    pub cursor_end: usize,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InspectReply {
    pub status: &'static str,
    pub found: bool,
    pub data: Map<String, Value>,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IsCompleteReply {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indent: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryReply {
    pub status: &'static str,
    pub history: Vec<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommInfoReply {
    pub status: &'static str,
    pub comms: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShutdownReply {
    pub status: &'static str,
    pub restart: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReply {
    pub status: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub execution_state: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stream {
    pub name: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecuteInput {
    pub code: String,
    pub execution_count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecuteResult {
    pub execution_count: u64,
    pub data: Map<String, Value>,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DisplayData {
    pub data: Map<String, Value>,
    pub metadata: Map<String, Value>,
    pub transient: Map<String, Value>,
}

/// A text/plain (+ optional other mime types) bundle.
pub fn text_bundle(text: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("text/plain".into(), Value::String(text.to_string()));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_has_exactly_the_spec_keys() {
        let h = serde_json::to_value(Header::new("status", "s")).unwrap();
        let keys: Vec<_> = h.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 6);
        assert_eq!(h["version"], "5.3");
        assert!(h["date"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn execute_request_defaults() {
        let r: ExecuteRequest = serde_json::from_str(r#"{"code": "x"}"#).unwrap();
        assert!(r.store_history && !r.silent && r.stop_on_error);
    }
}
