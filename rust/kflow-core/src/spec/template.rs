//! Job templates: JSON files of run parameters in the project's `.kflow/templates/` and
//! the user's config folder. The project's copy wins, so a team can commit its templates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::options::RunOptions;
use crate::error::{Error, Result, SpecError};

/// A run template found in a template folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateInfo {
    /// The template's name: its file name without `.json`.
    pub name: String,
    /// The template file.
    pub path: PathBuf,
    /// "project" or "user".
    pub scope: &'static str,
}

impl TemplateInfo {
    /// The run options the template sets (what a wizard can skip).
    pub fn options(&self) -> Result<RunOptions> {
        parse(&self.path)
    }
}

/// Template folders, most specific first.
pub fn search_path(
    project_root: Option<&Path>,
    user_templates: &Path,
) -> Vec<(PathBuf, &'static str)> {
    let mut dirs = Vec::new();
    if let Some(root) = project_root {
        dirs.push((root.join(".kflow").join("templates"), "project"));
    }
    dirs.push((user_templates.to_path_buf(), "user"));
    dirs
}

pub fn list(project_root: Option<&Path>, user_templates: &Path) -> Result<Vec<TemplateInfo>> {
    let mut found: BTreeMap<String, TemplateInfo> = BTreeMap::new();
    for (dir, scope) in search_path(project_root, user_templates).into_iter().rev() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                if let Some(name) = path.file_stem().and_then(|s| s.to_str()) {
                    found.insert(
                        name.to_string(),
                        TemplateInfo {
                            name: name.to_string(),
                            path,
                            scope,
                        },
                    );
                }
            }
        }
    }
    Ok(found.into_values().collect())
}

pub fn load(
    name: &str,
    project_root: Option<&Path>,
    user_templates: &Path,
) -> Result<(RunOptions, PathBuf)> {
    let dirs = search_path(project_root, user_templates);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.starts_with('.')
    {
        return Err(Error::invalid(
            "template name",
            name,
            "template names are file names without .json",
            "use letters, digits, '-', '_' and '.'",
        ));
    }
    for (dir, _) in &dirs {
        let path = dir.join(format!("{name}.json"));
        if path.is_file() {
            return Ok((parse(&path)?, path));
        }
    }
    let searched = dirs
        .iter()
        .map(|(d, _)| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::Spec(SpecError::TemplateNotFound {
        name: name.to_string(),
        searched,
    }))
}

/// The keys of a JSON object in file order, repeats included.
struct TopLevelKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for TopLevelKeys {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = TopLevelKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<TopLevelKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(TopLevelKeys(keys))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// The one name of a setting that has aliases.
fn canonical_key(key: &str) -> &str {
    match key {
        "mem" => "memory",
        "code_mode" => "codeMode",
        "autoPVCforPip" => "pipCache",
        "pvcSize" => "pipCacheSize",
        other => other,
    }
}

pub fn parse(path: &Path) -> Result<RunOptions> {
    let text = std::fs::read_to_string(path).map_err(Error::io("reading template", path))?;
    let invalid = |key: &str, problem: String| {
        Error::Spec(SpecError::TemplateInvalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            problem,
        })
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        invalid(
            "(file)",
            format!(
                "not valid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    if !value.is_object() {
        return Err(invalid(
            "(file)",
            "expected a JSON object like {\"image\": \"…\", \"gpu\": 1}".into(),
        ));
    }
    // A JSON object keeps the last of two equal keys; a template that says a thing twice is a
    // mistake to show, not to settle silently.
    let TopLevelKeys(keys) =
        serde_json::from_str(&text).map_err(|e| invalid("(file)", e.to_string()))?;
    for (i, key) in keys.iter().enumerate() {
        if let Some(first) = keys[..i]
            .iter()
            .find(|k| canonical_key(k) == canonical_key(key))
        {
            return Err(invalid(
                key,
                format!("given twice (as {first:?} and {key:?}); keep one"),
            ));
        }
    }
    let Value::Object(map) = value else {
        unreachable!("checked above")
    };
    let mut opts = RunOptions::default();
    for (key, value) in &map {
        let string = || {
            value
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(key, format!("expected a string, got {value}")))
        };
        // Quantities may be written as numbers in JSON ("cpu": 2).
        let quantity = || match value {
            Value::Number(n) => Ok(n.to_string()),
            _ => string(),
        };
        let count = || {
            value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid(key, format!("expected a whole number, got {value}")))
        };
        let strings = || match value {
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_string).ok_or_else(|| {
                        invalid(key, format!("expected a list of strings, found {i}"))
                    })
                })
                .collect::<Result<Vec<_>>>(),
            _ => Err(invalid(
                key,
                format!("expected a list of strings like [\"numpy\"], got {value}"),
            )),
        };
        match key.as_str() {
            "image" => opts.image = Some(string()?),
            "gpu" => opts.gpu = Some(count()?),
            "workers" => opts.workers = Some(count()?),
            "cpu" => opts.cpu = Some(quantity()?),
            "mem" | "memory" => opts.memory = Some(quantity()?),
            "pip" => opts.pip = Some(strings()?),
            "apt" => opts.apt = Some(strings()?),
            "args" => opts.args = Some(strings()?),
            "namespace" => opts.namespace = Some(string()?),
            "kind" => opts.kind = Some(string()?.parse().map_err(|e: Error| invalid(key, e.to_string()))?),
            "codeMode" | "code_mode" => opts.code_mode = Some(string()?.parse().map_err(|e: Error| invalid(key, e.to_string()))?),
            "pipCache" | "autoPVCforPip" => {
                opts.pip_cache = Some(value.as_bool().ok_or_else(|| invalid(key, format!("expected true or false, got {value}")))?)
            }
            "pipCacheSize" | "pvcSize" => opts.pip_cache_size = Some(quantity()?),
            "env" => {
                let Value::Object(vars) = value else {
                    return Err(invalid(key, format!("expected an object like {{\"NAME\": \"value\"}}, got {value}")));
                };
                let mut env = BTreeMap::new();
                for (k, v) in vars {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => return Err(invalid(&format!("env.{k}"), format!("expected a string, got {other}"))),
                    };
                    env.insert(k.clone(), v);
                }
                opts.env = Some(env);
            }
            _ => {
                return Err(invalid(
                    key,
                    "unknown key; templates take image, gpu, cpu, mem, workers, pip, apt, env, args, namespace, kind, codeMode, pipCache, pipCacheSize".into(),
                ))
            }
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(&path, r#"{"gpu": 1, "image": "a", "gpu": 2}"#).unwrap();
        let err = parse(&path).unwrap_err().to_string();
        assert!(
            err.contains("t.json") && err.contains("given twice"),
            "{err}"
        );
        std::fs::write(&path, r#"{"mem": "1Gi", "memory": "2Gi"}"#).unwrap();
        let err = parse(&path).unwrap_err().to_string();
        assert!(err.contains(r#"as "mem" and "memory""#), "{err}");
    }

    #[test]
    fn spec_example_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "geo",
            r#"{"image": "pytorch/pytorch:2.1.0-cuda12.1-cudnn8-runtime", "gpu": 1, "cpu": 2, "mem": "16Gi",
                "pip": ["geopandas", "terratorch"], "apt": ["libgdal-dev", "libjpeg-dev"]}"#,
        );
        let opts = parse(&path).unwrap();
        assert_eq!(opts.gpu, Some(1));
        assert_eq!(opts.cpu.as_deref(), Some("2"));
        assert_eq!(opts.apt.unwrap().len(), 2);
    }

    #[test]
    fn bad_value_names_file_key_and_expectation() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "bad", r#"{"gpu": "two"}"#);
        let err = parse(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.json") && err.contains("\"gpu\"") && err.contains("whole number"),
            "{err}"
        );
    }

    #[test]
    fn project_template_shadows_user_template() {
        let project = tempfile::tempdir().unwrap();
        let user = tempfile::tempdir().unwrap();
        write(
            &project.path().join(".kflow/templates"),
            "t",
            r#"{"gpu": 2}"#,
        );
        write(user.path(), "t", r#"{"gpu": 1}"#);
        write(user.path(), "u", r#"{"gpu": 1}"#);
        let (opts, _) = load("t", Some(project.path()), user.path()).unwrap();
        assert_eq!(opts.gpu, Some(2));
        let names: Vec<_> = list(Some(project.path()), user.path())
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.scope))
            .collect();
        assert_eq!(
            names,
            vec![("t".to_string(), "project"), ("u".to_string(), "user")]
        );
        let err = load("missing", Some(project.path()), user.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("kflow templates"), "{err}");
    }
}
