//! The editor as kflow's secret store: `secrets/get|store|delete` requests back over the
//! connection (VS Code answers them from `context.secrets`), so the session lives where the
//! editor keeps secrets and never in a file of ours.

use std::sync::{Arc, Weak};

use kflow_core::auth::EditorSecrets;
use serde_json::json;

use super::Server;

pub struct SecretsOverConnection(pub Weak<Server>);

impl SecretsOverConnection {
    fn server(&self) -> Result<Arc<Server>, String> {
        self.0
            .upgrade()
            .ok_or_else(|| "the editor's connection is closed".to_string())
    }
}

impl EditorSecrets for SecretsOverConnection {
    fn get(&self, account: &str) -> Result<Option<String>, String> {
        let answer = self
            .server()?
            .ask("secrets/get", json!({ "key": account }))?;
        Ok(answer
            .get("value")
            .and_then(|v| v.as_str())
            .map(String::from))
    }

    fn store(&self, account: &str, value: &str) -> Result<(), String> {
        self.server()?
            .ask("secrets/store", json!({ "key": account, "value": value }))
            .map(|_| ())
    }

    fn delete(&self, account: &str) -> Result<(), String> {
        self.server()?
            .ask("secrets/delete", json!({ "key": account }))
            .map(|_| ())
    }
}
