//! The connection file jupyter_client writes before starting the kernel.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{KernelError, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionInfo {
    #[serde(default = "default_transport")]
    pub transport: String,
    pub ip: String,
    pub shell_port: u16,
    pub iopub_port: u16,
    pub stdin_port: u16,
    pub control_port: u16,
    pub hb_port: u16,
    #[serde(default)]
    pub key: String,
    #[serde(default = "default_scheme")]
    pub signature_scheme: String,
    #[serde(default)]
    pub kernel_name: Option<String>,
}

fn default_transport() -> String {
    "tcp".into()
}

fn default_scheme() -> String {
    "hmac-sha256".into()
}

impl ConnectionInfo {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| KernelError::ConnectionFile {
            path: path.to_path_buf(),
            source,
        })?;
        let info: ConnectionInfo =
            serde_json::from_str(&text).map_err(|e| KernelError::InvalidConnection {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        info.validate()
            .map_err(|reason| KernelError::InvalidConnection {
                path: path.to_path_buf(),
                reason,
            })?;
        Ok(info)
    }

    /// Only what the `zeromq` crate can serve is accepted: tcp (ipc is not compiled in) and
    /// HMAC-SHA256 (or no key at all, which the spec defines as "no signing").
    fn validate(&self) -> std::result::Result<(), String> {
        if self.transport != "tcp" {
            return Err(format!(
                "transport {:?} is not supported (only tcp)",
                self.transport
            ));
        }
        if !self.key.is_empty() && self.signature_scheme != "hmac-sha256" {
            return Err(format!(
                "signature scheme {:?} is not supported (only hmac-sha256)",
                self.signature_scheme
            ));
        }
        Ok(())
    }

    pub fn endpoint(&self, port: u16) -> String {
        // IPv6 literals need brackets in a tcp endpoint.
        if self.ip.contains(':') {
            format!("tcp://[{}]:{}", self.ip, port)
        } else {
            format!("tcp://{}:{}", self.ip, port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_jupyter_client_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        std::fs::write(
            &p,
            r#"{"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4,
               "hb_port": 5, "ip": "127.0.0.1", "key": "abc", "transport": "tcp",
               "signature_scheme": "hmac-sha256", "kernel_name": "kflow"}"#,
        )
        .unwrap();
        let c = ConnectionInfo::from_file(&p).unwrap();
        assert_eq!(c.endpoint(c.hb_port), "tcp://127.0.0.1:5");
    }

    #[test]
    fn rejects_ipc_and_other_schemes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        std::fs::write(
            &p,
            r#"{"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4,
               "hb_port": 5, "ip": "k", "key": "abc", "transport": "ipc"}"#,
        )
        .unwrap();
        assert!(ConnectionInfo::from_file(&p).is_err());
        assert!(ConnectionInfo::from_file(&dir.path().join("missing.json")).is_err());
    }
}
