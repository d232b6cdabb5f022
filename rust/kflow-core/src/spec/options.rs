//! `RunOptions`: one layer of run parameters, every field optional. The layers (explicit arguments,
//! a template, the config file, `KFLOW_*` variables) are merged into one before resolving a RunSpec.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
pub use crate::kubeflow::JobKind;

/// How the project's code reaches the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CodeMode {
    /// One deterministic tar.gz, unpacked in the container.
    #[default]
    #[serde(alias = "tar.gz", alias = "tgz")]
    Targz,
    /// The files themselves as ConfigMap keys: the compatibility mode, capped near 1 MiB.
    Configmap,
}

impl FromStr for CodeMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<CodeMode, Error> {
        match s.to_ascii_lowercase().as_str() {
            "targz" | "tar.gz" | "tgz" => Ok(CodeMode::Targz),
            "configmap" => Ok(CodeMode::Configmap),
            _ => Err(Error::invalid(
                "code mode",
                s,
                "unknown code upload mode",
                "use targz or configmap",
            )),
        }
    }
}

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Processes on this machine with the training operator's environment.
    #[default]
    Local,
    /// A Kubeflow cluster.
    Cluster,
}

impl BackendKind {
    /// The backend's name as written in options and records: `local` or `cluster`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Cluster => "cluster",
        }
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<BackendKind, Error> {
        match s.to_ascii_lowercase().as_str() {
            "local" => Ok(BackendKind::Local),
            "cluster" | "kubeflow" => Ok(BackendKind::Cluster),
            _ => Err(Error::invalid(
                "backend",
                s,
                "unknown backend",
                "use local or cluster",
            )),
        }
    }
}

/// One layer of run parameters. `None` means "this layer says nothing".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// The Python script to run, relative to the working directory or absolute.
    pub script: Option<PathBuf>,
    /// The project folder packaged with the job (default: the script's folder).
    pub project_root: Option<PathBuf>,
    /// The job's name (default: generated).
    pub name: Option<String>,
    /// The training-operator job kind.
    pub kind: Option<JobKind>,
    /// The container image (default: one per job kind).
    pub image: Option<String>,
    /// GPUs per replica.
    pub gpu: Option<u32>,
    /// CPU request per replica, e.g. `4`.
    pub cpu: Option<String>,
    /// Memory request per replica, e.g. `16Gi`.
    pub memory: Option<String>,
    /// Replicas in all (PyTorchJob: one Master plus `workers - 1` Workers).
    pub workers: Option<u32>,
    /// pip packages to install before the script starts.
    pub pip: Option<Vec<String>>,
    /// A requirements.txt whose requirements join `pip`.
    pub requirements: Option<PathBuf>,
    /// apt packages to install before the script starts.
    pub apt: Option<Vec<String>>,
    /// Environment variables for the script.
    pub env: Option<BTreeMap<String, String>>,
    /// Command-line arguments for the script.
    pub args: Option<Vec<String>>,
    /// The Kubernetes namespace (default: the connection's).
    pub namespace: Option<String>,
    /// How the project's code reaches the job.
    pub code_mode: Option<CodeMode>,
    /// Whether to cache pip downloads on a shared volume.
    pub pip_cache: Option<bool>,
    /// The size of the pip cache volume, e.g. `10Gi`.
    pub pip_cache_size: Option<String>,
    /// A run template to start from, by name.
    pub template: Option<String>,
    /// Where the job runs.
    pub backend: Option<BackendKind>,
}

impl RunOptions {
    /// `self` over `lower`: scalars from `self` win; package lists are joined (lower first, no
    /// repeats) and env maps merged key by key, so a template's packages survive an extra `--pip`.
    pub fn over(self, lower: RunOptions) -> RunOptions {
        fn join(high: Option<Vec<String>>, low: Option<Vec<String>>) -> Option<Vec<String>> {
            match (high, low) {
                (Some(high), Some(mut low)) => {
                    for item in high {
                        if !low.contains(&item) {
                            low.push(item);
                        }
                    }
                    Some(low)
                }
                (high, low) => high.or(low),
            }
        }
        let env = match (self.env, lower.env) {
            (Some(high), Some(mut low)) => {
                low.extend(high);
                Some(low)
            }
            (high, low) => high.or(low),
        };
        RunOptions {
            script: self.script.or(lower.script),
            project_root: self.project_root.or(lower.project_root),
            name: self.name.or(lower.name),
            kind: self.kind.or(lower.kind),
            image: self.image.or(lower.image),
            gpu: self.gpu.or(lower.gpu),
            cpu: self.cpu.or(lower.cpu),
            memory: self.memory.or(lower.memory),
            workers: self.workers.or(lower.workers),
            pip: join(self.pip, lower.pip),
            requirements: self.requirements.or(lower.requirements),
            apt: join(self.apt, lower.apt),
            env,
            args: self.args.or(lower.args),
            namespace: self.namespace.or(lower.namespace),
            code_mode: self.code_mode.or(lower.code_mode),
            pip_cache: self.pip_cache.or(lower.pip_cache),
            pip_cache_size: self.pip_cache_size.or(lower.pip_cache_size),
            template: self.template.or(lower.template),
            backend: self.backend.or(lower.backend),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_layer_wins_and_lists_join() {
        let high = RunOptions {
            gpu: Some(2),
            pip: Some(vec!["rich".into(), "numpy".into()]),
            env: Some([("A".to_string(), "high".to_string())].into()),
            ..Default::default()
        };
        let low = RunOptions {
            gpu: Some(1),
            image: Some("img".into()),
            pip: Some(vec!["numpy".into()]),
            env: Some(
                [
                    ("A".to_string(), "low".to_string()),
                    ("B".to_string(), "b".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let merged = high.over(low);
        assert_eq!(merged.gpu, Some(2));
        assert_eq!(merged.image.as_deref(), Some("img"));
        assert_eq!(merged.pip.unwrap(), vec!["numpy", "rich"]);
        let env = merged.env.unwrap();
        assert_eq!(env["A"], "high");
        assert_eq!(env["B"], "b");
    }

    #[test]
    fn kinds_parse_from_short_and_long_names() {
        assert_eq!("tf".parse::<JobKind>().unwrap(), JobKind::TFJob);
        assert_eq!(
            "PyTorchJob".parse::<JobKind>().unwrap(),
            JobKind::PyTorchJob
        );
        let err = "jax".parse::<JobKind>().unwrap_err().to_string();
        assert!(err.contains("use pytorch, tf or mpi"), "{err}");
    }
}
