//! User settings, read from `config.toml` or from `KFLOW_*` variables. The key
//! names are VS Code's (`defaultNamespace`, `autoPVCforPip`, …), with or without the `kflow.`
//! prefix, so the extension can hand its settings through unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::options::{BackendKind, RunOptions};
use crate::error::{Error, Result, SpecError};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Settings {
    pub url: Option<String>,
    /// The Kubernetes API server of a signed-in session, when it is not the Kubeflow URL.
    pub api_server: Option<String>,
    pub verify_ssl: Option<bool>,
    pub keycloak_realm: Option<String>,
    pub default_namespace: Option<String>,
    pub default_image: Option<String>,
    pub default_pvc_size: Option<String>,
    pub auto_pvc_for_pip: Option<bool>,
    pub backend: Option<BackendKind>,
}

fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("the string {s:?}"),
        other => format!("{} {other}", other.type_str()),
    }
}

/// Settings whose config value is a TOML boolean; every other one is a string.
const BOOLEAN_KEYS: [&str; 2] = ["verifySSL", "autoPVCforPip"];

/// (config key, environment variable) for each setting.
const KEYS: [(&str, &str); 9] = [
    ("url", "KFLOW_URL"),
    ("apiServer", "KFLOW_API_SERVER"),
    ("verifySSL", "KFLOW_VERIFY_SSL"),
    ("keycloak.realm", "KFLOW_KEYCLOAK_REALM"),
    ("defaultNamespace", "KFLOW_DEFAULT_NAMESPACE"),
    ("defaultImage", "KFLOW_DEFAULT_IMAGE"),
    ("defaultPVCsize", "KFLOW_DEFAULT_PVC_SIZE"),
    ("autoPVCforPip", "KFLOW_AUTO_PVC_FOR_PIP"),
    ("backend", "KFLOW_BACKEND"),
];

impl Settings {
    /// Reads `config.toml`; a missing file is an empty layer. Values must have the TOML type
    /// of their key, so `defaultImage = 5` or `autoPVCforPip = "yes"` are refused, not read
    /// as something the user did not write.
    pub fn from_file(path: &Path) -> Result<Settings> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(Error::io("reading", path)(e)),
        };
        let invalid = |problem: String| {
            Error::Spec(SpecError::ConfigInvalid {
                path: path.to_path_buf(),
                problem,
            })
        };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            // The message alone can be empty ("url = " at the end of the file): the full
            // report names the line and column.
            let report = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            invalid(if report.is_empty() {
                "not valid TOML".to_string()
            } else {
                report
            })
        })?;
        let mut flat = BTreeMap::new();
        flatten("", &table, &mut flat);
        let mut settings = Settings::default();
        for (key, value) in flat {
            let key = key.strip_prefix("kflow.").unwrap_or(&key).to_string();
            let boolean_key = BOOLEAN_KEYS.contains(&key.as_str());
            let expected = if boolean_key {
                "true or false (a TOML boolean, without quotes)"
            } else {
                "a string in double quotes"
            };
            let text = match (&value, boolean_key) {
                (toml::Value::Boolean(b), true) => b.to_string(),
                (toml::Value::String(s), false) => s.clone(),
                (other, _) => {
                    let problem =
                        format!("key {key:?}: expected {expected}, got {}", describe(other));
                    return Err(invalid(problem));
                }
            };
            settings
                .set(&key, &text)
                .map_err(|problem| invalid(format!("key {key:?}: {problem}")))?;
        }
        Ok(settings)
    }

    /// Reads the `KFLOW_*` variables from `vars` (the process environment in production).
    pub fn from_env(vars: &BTreeMap<String, String>) -> Result<Settings> {
        let mut settings = Settings::default();
        for (key, var) in KEYS {
            if let Some(value) = vars.get(var).filter(|v| !v.is_empty()) {
                settings.set(key, value).map_err(|problem| {
                    Error::Spec(SpecError::EnvInvalid {
                        var: var.to_string(),
                        value: value.clone(),
                        problem,
                    })
                })?;
            }
        }
        Ok(settings)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let boolean = |v: &str| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("expected true or false, got {v:?}")),
        };
        match key {
            "url" => self.url = Some(value.to_string()),
            "apiServer" => self.api_server = Some(value.to_string()),
            "verifySSL" => self.verify_ssl = Some(boolean(value)?),
            "keycloak.realm" => self.keycloak_realm = Some(value.to_string()),
            "defaultNamespace" => self.default_namespace = Some(value.to_string()),
            "defaultImage" => self.default_image = Some(value.to_string()),
            "defaultPVCsize" => self.default_pvc_size = Some(value.to_string()),
            "autoPVCforPip" => self.auto_pvc_for_pip = Some(boolean(value)?),
            "backend" => self.backend = Some(value.parse().map_err(|e: Error| e.to_string())?),
            _ => {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(format!(
                    "unknown setting; known settings are {}",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Settings an editor hands over by their keys (`url`, `kflow.verifySSL`, …) with JSON
    /// values, checked, as the `KFLOW_*` variables they stand for. An empty string or `null`
    /// leaves the setting to the environment and the config file.
    pub fn editor_env(
        values: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<BTreeMap<String, String>> {
        let mut vars = BTreeMap::new();
        for (raw_key, value) in values {
            let key = raw_key.strip_prefix("kflow.").unwrap_or(raw_key);
            let invalid = |problem: String| {
                Error::invalid(
                    "editor setting",
                    format!("kflow.{key}"),
                    problem,
                    "correct it in the editor's settings (or clear it to use kflow's config file)",
                )
            };
            let Some((_, var)) = KEYS.iter().find(|(k, _)| *k == key) else {
                // The editor's own settings (kflow.path, …) travel in the same object.
                continue;
            };
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) if s.trim().is_empty() => continue,
                serde_json::Value::String(s) if !BOOLEAN_KEYS.contains(&key) => {
                    s.trim().to_string()
                }
                serde_json::Value::Bool(b) if BOOLEAN_KEYS.contains(&key) => b.to_string(),
                other if BOOLEAN_KEYS.contains(&key) => {
                    return Err(invalid(format!("expected true or false, got {other}")))
                }
                other => return Err(invalid(format!("expected a string, got {other}"))),
            };
            Settings::default().set(key, &text).map_err(invalid)?;
            vars.insert(var.to_string(), text);
        }
        Ok(vars)
    }

    /// `self` over `lower`, field by field.
    pub fn over(self, lower: Settings) -> Settings {
        Settings {
            url: self.url.or(lower.url),
            api_server: self.api_server.or(lower.api_server),
            verify_ssl: self.verify_ssl.or(lower.verify_ssl),
            keycloak_realm: self.keycloak_realm.or(lower.keycloak_realm),
            default_namespace: self.default_namespace.or(lower.default_namespace),
            default_image: self.default_image.or(lower.default_image),
            default_pvc_size: self.default_pvc_size.or(lower.default_pvc_size),
            auto_pvc_for_pip: self.auto_pvc_for_pip.or(lower.auto_pvc_for_pip),
            backend: self.backend.or(lower.backend),
        }
    }

    /// The run parameters these settings supply as defaults.
    pub fn run_defaults(&self) -> RunOptions {
        RunOptions {
            namespace: self.default_namespace.clone(),
            image: self.default_image.clone(),
            pip_cache_size: self.default_pvc_size.clone(),
            pip_cache: self.auto_pvc_for_pip,
            backend: self.backend,
            ..Default::default()
        }
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&full, inner, out),
            other => {
                out.insert(full, other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_accepts_vscode_keys_with_and_without_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "defaultNamespace = \"team-a\"\n\"kflow.autoPVCforPip\" = false\n[keycloak]\nrealm = \"kf\"\n",
        )
        .unwrap();
        let s = Settings::from_file(&path).unwrap();
        assert_eq!(s.default_namespace.as_deref(), Some("team-a"));
        assert_eq!(s.auto_pvc_for_pip, Some(false));
        assert_eq!(s.keycloak_realm.as_deref(), Some("kf"));
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "defaultNamespce = \"x\"\n").unwrap();
        let err = Settings::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("config.toml")
                && err.contains("defaultNamespce")
                && err.contains("defaultNamespace"),
            "{err}"
        );
    }

    #[test]
    fn values_of_the_wrong_type_and_broken_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        for (text, needle) in [
            ("defaultImage = 5\n", "key \"defaultImage\": expected a string in double quotes, got integer 5"),
            ("autoPVCforPip = \"yes\"\n", "key \"autoPVCforPip\": expected true or false (a TOML boolean, without quotes), got the string \"yes\""),
            ("url = ", "line 1"),
            ("defaultImage = \"a\"\ndefaultImage = \"b\"\n", "duplicate key"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Settings::from_file(&path).unwrap_err().to_string();
            assert!(err.contains("config.toml") && err.contains(needle), "{text:?}: {err}");
        }
        std::fs::write(&path, "apiServer = \"https://api.example.com:6443\"\n").unwrap();
        assert_eq!(
            Settings::from_file(&path).unwrap().api_server.as_deref(),
            Some("https://api.example.com:6443")
        );
    }

    #[test]
    fn env_values_are_checked() {
        let vars = [("KFLOW_AUTO_PVC_FOR_PIP".to_string(), "maybe".to_string())].into();
        let err = Settings::from_env(&vars).unwrap_err().to_string();
        assert!(
            err.contains("KFLOW_AUTO_PVC_FOR_PIP") && err.contains("true or false"),
            "{err}"
        );
    }
}
