//! The session's run options, set by `%kflow key=value …` and overridden per run by
//! `%kflow_run --key value` / `%%kflow_run`. Values are checked here so a typo fails at the
//! magic, not later at submission.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Option keys accepted by `%kflow` (and, as `--key`, by `%kflow_run`), with a help line each:
/// kflow-core's run-option grammar, which the CLI and `kflow.run` share.
pub fn option_keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    kflow_core::RUN_OPTIONS.iter().map(|o| (o.name, o.help))
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelOptions {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub image: Option<String>,
    pub gpu: Option<u32>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub workers: Option<u32>,
    pub pip: Vec<String>,
    pub apt: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub namespace: Option<String>,
    pub template: Option<String>,
    pub backend: Option<String>,
    pub project: Option<PathBuf>,
    pub code_mode: Option<String>,
    pub requirements: Option<PathBuf>,
}

fn list(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn number(key: &str, value: &str) -> Result<u32, String> {
    value
        .parse::<u32>()
        .map_err(|_| format!("{key}={value}: expected a whole number"))
}

impl KernelOptions {
    /// Set one key; an empty value clears it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        let opt = || {
            if v.is_empty() {
                None
            } else {
                Some(v.to_string())
            }
        };
        let Some(option) = kflow_core::run_option(key) else {
            let known: Vec<&str> = option_keys().map(|(k, _)| k).collect();
            return Err(format!(
                "unknown option {key:?}; known options: {}",
                known.join(", ")
            ));
        };
        match option.name {
            "gpu" => {
                self.gpu = if v.is_empty() {
                    None
                } else {
                    Some(number(key, v)?)
                }
            }
            "workers" => {
                self.workers = if v.is_empty() {
                    None
                } else {
                    Some(number(key, v)?)
                };
                if self.workers == Some(0) {
                    self.workers = None;
                    return Err("workers=0: a job needs at least one replica".into());
                }
            }
            "cpu" => self.cpu = opt(),
            "memory" => self.memory = opt(),
            "image" => self.image = opt(),
            "namespace" => self.namespace = opt(),
            "name" => self.name = opt(),
            "template" => self.template = opt(),
            "project_root" => self.project = opt().map(PathBuf::from),
            "requirements" => self.requirements = opt().map(PathBuf::from),
            "code_mode" => {
                if !v.is_empty() && v.parse::<kflow_core::CodeMode>().is_err() {
                    return Err(format!("code_mode={v}: use targz or configmap"));
                }
                self.code_mode = opt()
            }
            "pip" => self.pip = list(v),
            "apt" => self.apt = list(v),
            "kind" => {
                if !v.is_empty() && canonical_kind(v).is_none() {
                    return Err(format!("kind={v}: use pytorch, tf or mpi"));
                }
                self.kind = opt()
            }
            "backend" => {
                if !v.is_empty() && !matches!(v.to_ascii_lowercase().as_str(), "local" | "cluster")
                {
                    return Err(format!("backend={v}: use local or cluster"));
                }
                self.backend = opt().map(|s| s.to_ascii_lowercase())
            }
            "env" => {
                if v.is_empty() {
                    self.env.clear();
                }
                for pair in v.split(',').filter(|p| !p.trim().is_empty()) {
                    let (k, val) = pair
                        .split_once('=')
                        .ok_or_else(|| format!("env={pair}: expected NAME=VALUE"))?;
                    self.env.insert(k.trim().to_string(), val.to_string());
                }
            }
            other => {
                return Err(format!(
                    "{other} cannot be set in a notebook (use kflow.run or the CLI)"
                ))
            }
        }
        Ok(())
    }

    /// `over` applied on top of `self`: set scalars win, lists and env are joined.
    pub fn merged(&self, over: &KernelOptions) -> KernelOptions {
        let mut out = self.clone();
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { out.$f = over.$f.clone(); } )* };
        }
        take!(
            name,
            kind,
            image,
            gpu,
            cpu,
            memory,
            workers,
            namespace,
            template,
            backend,
            project,
            code_mode,
            requirements
        );
        for p in &over.pip {
            if !out.pip.contains(p) {
                out.pip.push(p.clone());
            }
        }
        for p in &over.apt {
            if !out.apt.contains(p) {
                out.apt.push(p.clone());
            }
        }
        out.env.extend(over.env.clone());
        out
    }

    /// `key=value` pairs of what is set; "(defaults)" when nothing is.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let mut put = |k: &str, v: String| {
            if !s.is_empty() {
                s.push(' ');
            }
            let _ = write!(s, "{k}={v}");
        };
        if let Some(v) = self.gpu {
            put("gpu", v.to_string())
        }
        if let Some(v) = &self.cpu {
            put("cpu", v.clone())
        }
        if let Some(v) = &self.memory {
            put("memory", v.clone())
        }
        if let Some(v) = &self.image {
            put("image", v.clone())
        }
        if !self.pip.is_empty() {
            put("pip", self.pip.join(","))
        }
        if !self.apt.is_empty() {
            put("apt", self.apt.join(","))
        }
        if let Some(v) = self.workers {
            put("workers", v.to_string())
        }
        if let Some(v) = &self.namespace {
            put("namespace", v.clone())
        }
        if let Some(v) = &self.kind {
            put("kind", v.clone())
        }
        if let Some(v) = &self.backend {
            put("backend", v.clone())
        }
        if let Some(v) = &self.name {
            put("name", v.clone())
        }
        if !self.env.is_empty() {
            let pairs: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            put("env", pairs.join(","))
        }
        if let Some(v) = &self.template {
            put("template", v.clone())
        }
        if let Some(v) = &self.project {
            put("project_root", v.display().to_string())
        }
        if let Some(v) = &self.code_mode {
            put("code_mode", v.clone())
        }
        if let Some(v) = &self.requirements {
            put("requirements", v.display().to_string())
        }
        if s.is_empty() {
            s.push_str("(defaults)");
        }
        s
    }
}

pub fn canonical_kind(v: &str) -> Option<&'static str> {
    match v.to_ascii_lowercase().as_str() {
        "pytorch" | "pytorchjob" | "torch" => Some("PyTorchJob"),
        "tf" | "tfjob" | "tensorflow" => Some("TFJob"),
        "mpi" | "mpijob" => Some("MPIJob"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_merge_and_summary() {
        let mut o = KernelOptions::default();
        assert_eq!(o.summary(), "(defaults)");
        o.set("gpu", "1").unwrap();
        o.set("pip", "torch, numpy").unwrap();
        o.set("env", "A=1,B=x=y").unwrap();
        assert_eq!(o.env["B"], "x=y");
        assert!(o.set("gpu", "one").is_err());
        assert!(o.set("kind", "jax").is_err());
        assert!(o.set("bogus", "1").unwrap_err().contains("known options"));
        assert!(o.set("workers", "0").is_err());
        let mut over = KernelOptions::default();
        over.set("gpu", "2").unwrap();
        over.set("pip", "rich,numpy").unwrap();
        let m = o.merged(&over);
        assert_eq!(m.gpu, Some(2));
        assert_eq!(m.pip, vec!["torch", "numpy", "rich"]);
        assert_eq!(m.summary(), "gpu=2 pip=torch,numpy,rich env=A=1,B=x=y");
        o.set("gpu", "").unwrap();
        assert_eq!(o.gpu, None);
    }

    /// Every run option of kflow-core's grammar, by name and by alias, is a `%kflow` option.
    #[test]
    fn every_core_option_is_a_kernel_option() {
        let sample = |value: kflow_core::OptionValue| match value {
            kflow_core::OptionValue::Number => "2",
            kflow_core::OptionValue::Pairs => "A=1",
            _ => "x",
        };
        for option in kflow_core::RUN_OPTIONS {
            let value = match option.name {
                "kind" => "tf",
                "backend" => "local",
                "code_mode" => "configmap",
                _ => sample(option.value),
            };
            for spelling in std::iter::once(option.name).chain(option.aliases.iter().copied()) {
                let mut o = KernelOptions::default();
                o.set(spelling, value)
                    .unwrap_or_else(|e| panic!("%kflow {spelling}={value}: {e}"));
                assert_ne!(o, KernelOptions::default(), "{spelling} set nothing");
            }
        }
    }
}
