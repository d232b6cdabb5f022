//! RunSpec: what to run and with what. Built from layers of `RunOptions` in a fixed precedence:
//! explicit arguments > template > config file > `KFLOW_*` environment > defaults.

pub mod grammar;
pub mod options;
pub mod settings;
pub mod template;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};

pub use options::{BackendKind, CodeMode, JobKind, RunOptions};
pub use settings::Settings;

use crate::error::{Error, Result, SpecError};
use crate::paths::Dirs;

pub const DEFAULT_PIP_CACHE_SIZE: &str = "10Gi";
pub const PIP_CACHE_PVC: &str = "pip-cache-pvc";

/// A fully resolved, validated run. Stored in the run record, so restart needs nothing re-entered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The job's name, unique among the user's runs.
    pub name: String,
    /// A random id for this attempt, new on each restart; labels its pods and objects.
    pub run_id: String,
    /// The training-operator job kind.
    pub kind: JobKind,
    /// The container image every replica runs.
    pub image: String,
    /// GPUs per replica.
    pub gpu: u32,
    /// CPU request per replica, as a Kubernetes quantity (`4`, `500m`); `None`: no request.
    pub cpu: Option<String>,
    /// Memory request per replica, as a Kubernetes quantity (`16Gi`); `None`: no request.
    pub memory: Option<String>,
    /// Replicas in all: one Master plus `workers - 1` Workers for PyTorchJob.
    pub workers: u32,
    /// pip packages installed before the script starts, requirements files included.
    pub pip: Vec<String>,
    /// apt packages installed before the script starts.
    pub apt: Vec<String>,
    /// Environment variables set for the script.
    pub env: BTreeMap<String, String>,
    /// Command-line arguments passed to the script.
    pub args: Vec<String>,
    /// `None`: the namespace of the connection (the kubeconfig context or profile).
    pub namespace: Option<String>,
    /// The script, relative to the project root, with '/' separators.
    pub script: String,
    /// The absolute project folder that is packaged with the run.
    pub project_root: PathBuf,
    /// How the project's code reaches the job.
    pub code_mode: CodeMode,
    /// Whether pip's downloads are cached on a shared volume between runs.
    pub pip_cache: bool,
    /// The size of that cache volume, as a Kubernetes quantity (`10Gi`).
    pub pip_cache_size: String,
    /// Where the run runs.
    pub backend: BackendKind,
    /// The template the run was made from, for the record.
    pub template: Option<String>,
}

impl RunSpec {
    /// Replica names in the operator's order, e.g. `master-0`, `worker-0`.
    pub fn replicas(&self) -> Vec<Replica> {
        let mut out = Vec::new();
        match self.kind {
            JobKind::PyTorchJob => {
                out.push(Replica {
                    role: "master",
                    index: 0,
                    rank: 0,
                });
                for i in 0..self.workers.saturating_sub(1) {
                    out.push(Replica {
                        role: "worker",
                        index: i,
                        rank: i + 1,
                    });
                }
            }
            JobKind::TFJob => {
                for i in 0..self.workers {
                    out.push(Replica {
                        role: "worker",
                        index: i,
                        rank: i,
                    });
                }
            }
            JobKind::MPIJob => {
                for i in 0..self.workers {
                    out.push(Replica {
                        role: "worker",
                        index: i,
                        rank: i,
                    });
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    pub role: &'static str,
    pub index: u32,
    pub rank: u32,
}

impl Replica {
    pub fn label(&self) -> String {
        format!("{}-{}", self.role, self.index)
    }
}

impl JobKind {
    /// The image a run of this kind uses when neither it nor the settings name one.
    pub fn default_image(self) -> &'static str {
        default_image(self)
    }
}

pub fn default_image(kind: JobKind) -> &'static str {
    match kind {
        JobKind::PyTorchJob => "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        JobKind::TFJob => "tensorflow/tensorflow:2.17.0",
        JobKind::MPIJob => "horovod/horovod:0.28.1",
    }
}

/// What resolution reads besides the explicit options: folders, the working directory and the
/// environment, passed in so tests never depend on the machine's own.
#[derive(Debug, Clone)]
pub struct Context {
    /// kflow's config, state and cache folders.
    pub dirs: Dirs,
    /// The folder relative paths (script, project root) are resolved against.
    pub cwd: PathBuf,
    /// The environment variables, read for `KFLOW_*` settings.
    pub env: BTreeMap<String, String>,
}

impl Context {
    /// The context of this process: its folders, working directory and environment.
    pub fn from_process() -> Context {
        Context {
            dirs: Dirs::from_env(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            env: std::env::vars().collect(),
        }
    }

    /// This context with an editor's settings (by their VS Code keys, JSON values) over the
    /// environment's `KFLOW_*` variables, in memory only: nothing is written and no child
    /// process inherits them.
    pub fn with_editor_settings(
        mut self,
        values: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Context> {
        self.env.extend(Settings::editor_env(values)?);
        Ok(self)
    }

    /// kflow's settings: the config file overridden by `KFLOW_*` variables.
    pub fn settings(&self) -> Result<Settings> {
        let file = Settings::from_file(&self.dirs.config_file())?;
        Ok(file.over(Settings::from_env(&self.env)?))
    }

    pub(crate) fn absolute(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.cwd.join(path)
        }
    }
}

/// Merges the layers and validates every value.
pub fn resolve(explicit: RunOptions, ctx: &Context) -> Result<RunSpec> {
    let script_arg = explicit.script.clone().ok_or_else(|| {
        Error::invalid(
            "script",
            "",
            "no script given",
            "pass the path of the .py file to run",
        )
    })?;
    let script_path = ctx.absolute(&script_arg);
    if script_path.is_dir() {
        return Err(Error::invalid(
            "script",
            script_arg.display().to_string(),
            "is a folder, not a file",
            format!(
                "pass the .py file to run, e.g. {}",
                script_arg.join("train.py").display()
            ),
        ));
    }
    if !script_path.is_file() {
        return Err(Error::Spec(SpecError::ScriptNotFound { path: script_arg }));
    }
    // The project is the folder the script is given in, not where a link to it points: a
    // link `proj/train.py -> ~/train.py` must not make the home folder the project.
    let (Some(given_dir), Some(file_name)) = (script_path.parent(), script_path.file_name()) else {
        return Err(Error::Spec(SpecError::ScriptNotFound { path: script_arg }));
    };
    let script_path = given_dir
        .canonicalize()
        .map_err(Error::io("resolving", given_dir))?
        .join(file_name);
    let project_root = match &explicit.project_root {
        Some(root) => {
            let abs = ctx.absolute(root);
            abs.canonicalize().map_err(|_| {
                Error::invalid(
                    "project root",
                    root.display().to_string(),
                    "no such folder",
                    "pass an existing folder that holds the script",
                )
            })?
        }
        None => script_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ctx.cwd.clone()),
    };
    let relative = script_path.strip_prefix(&project_root).map_err(|_| {
        Error::Spec(SpecError::ScriptOutsideProject {
            script: script_path.clone(),
            root: project_root.clone(),
        })
    })?;
    let script = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");

    let template_layer = match &explicit.template {
        Some(name) => template::load(name, Some(&project_root), &ctx.dirs.user_templates())?.0,
        None => RunOptions::default(),
    };
    let file_layer = Settings::from_file(&ctx.dirs.config_file())?.run_defaults();
    let env_layer = Settings::from_env(&ctx.env)?.run_defaults();
    let merged = explicit
        .over(template_layer)
        .over(file_layer)
        .over(env_layer);

    let kind = merged.kind.unwrap_or_default();
    let name = match merged.name {
        Some(name) => {
            validate::job_name(&name)?;
            name
        }
        None => generate_name(&script),
    };
    let image = merged
        .image
        .unwrap_or_else(|| default_image(kind).to_string());
    validate::image(&image)?;
    if let Some(cpu) = &merged.cpu {
        validate::cpu(cpu)?;
    }
    if let Some(memory) = &merged.memory {
        validate::memory("memory", memory)?;
    }
    let workers = merged.workers.unwrap_or(1);
    if !(1..=512).contains(&workers) {
        return Err(Error::invalid(
            "workers",
            workers.to_string(),
            "must be between 1 and 512",
            "pass the total number of replicas, e.g. 2",
        ));
    }
    let gpu = merged.gpu.unwrap_or(0);
    if gpu > 64 {
        return Err(Error::invalid(
            "gpu",
            gpu.to_string(),
            "more GPUs per replica than any node has",
            "pass GPUs per replica, e.g. 1",
        ));
    }
    let mut pip = merged.pip.unwrap_or_default();
    pip.iter().try_for_each(|p| validate::pip_requirement(p))?;
    if let Some(file) = &merged.requirements {
        for requirement in validate::requirements_file(&ctx.absolute(file))? {
            if !pip.contains(&requirement) {
                pip.push(requirement);
            }
        }
    }
    let apt = merged.apt.unwrap_or_default();
    apt.iter().try_for_each(|p| validate::apt_package(p))?;
    let env = merged.env.unwrap_or_default();
    for (key, value) in &env {
        validate::env_name(key)?;
        validate::no_control_chars("env value", value)?;
    }
    let args = merged.args.unwrap_or_default();
    args.iter()
        .try_for_each(|a| validate::no_control_chars("argument", a))?;
    if let Some(ns) = &merged.namespace {
        validate::namespace(ns)?;
    }
    let pip_cache_size = merged
        .pip_cache_size
        .unwrap_or_else(|| DEFAULT_PIP_CACHE_SIZE.to_string());
    validate::memory("pip cache size", &pip_cache_size)?;

    Ok(RunSpec {
        name,
        run_id: random_id(16),
        kind,
        image,
        gpu,
        cpu: merged.cpu,
        memory: merged.memory,
        workers,
        pip,
        apt,
        env,
        args,
        namespace: merged.namespace,
        script,
        project_root,
        code_mode: merged.code_mode.unwrap_or_default(),
        pip_cache: merged.pip_cache.unwrap_or(true),
        pip_cache_size,
        backend: merged.backend.unwrap_or_default(),
        template: merged.template,
    })
}

/// `train.py` -> `train-x7k2p`: readable, and unique enough that two runs never collide.
pub fn generate_name(script: &str) -> String {
    let stem = Path::new(script)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("job");
    let mut base = validate::suggest_name(stem);
    base.truncate(validate::MAX_JOB_NAME - 6);
    format!("{}-{}", base.trim_end_matches('-'), random_id(5))
}

pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(root: &Path) -> Context {
        Context {
            dirs: Dirs {
                config: root.join("config"),
                state: root.join("state"),
                cache: root.join("cache"),
            },
            cwd: root.join("project"),
            env: BTreeMap::new(),
        }
    }

    fn project(root: &Path) {
        std::fs::create_dir_all(root.join("project/sub")).unwrap();
        std::fs::write(root.join("project/train.py"), "print(1)\n").unwrap();
        std::fs::write(root.join("project/sub/job.py"), "print(2)\n").unwrap();
    }

    #[test]
    fn defaults_and_generated_name() {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path());
        let spec = resolve(
            RunOptions {
                script: Some("train.py".into()),
                ..Default::default()
            },
            &context(dir.path()),
        )
        .unwrap();
        assert!(
            spec.name.starts_with("train-") && spec.name.len() == 11,
            "{}",
            spec.name
        );
        assert_eq!(spec.kind, JobKind::PyTorchJob);
        assert_eq!(spec.script, "train.py");
        assert_eq!(spec.workers, 1);
        assert!(spec.pip_cache);
        assert_eq!(spec.backend, BackendKind::Local);
    }

    #[test]
    fn precedence_explicit_template_file_env() {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path());
        let mut ctx = context(dir.path());
        std::fs::create_dir_all(&ctx.dirs.config).unwrap();
        std::fs::write(
            ctx.dirs.config_file(),
            "defaultImage = \"from-file\"\ndefaultNamespace = \"file-ns\"\n",
        )
        .unwrap();
        ctx.env
            .insert("KFLOW_DEFAULT_IMAGE".into(), "from-env".into());
        ctx.env
            .insert("KFLOW_DEFAULT_NAMESPACE".into(), "env-ns".into());
        ctx.env
            .insert("KFLOW_DEFAULT_PVC_SIZE".into(), "5Gi".into());
        std::fs::create_dir_all(ctx.dirs.user_templates()).unwrap();
        std::fs::write(
            ctx.dirs.user_templates().join("t.json"),
            r#"{"image": "from-template", "gpu": 1}"#,
        )
        .unwrap();

        let base = RunOptions {
            script: Some("train.py".into()),
            ..Default::default()
        };
        let spec = resolve(base.clone(), &ctx).unwrap();
        assert_eq!(spec.image, "from-file");
        assert_eq!(spec.namespace.as_deref(), Some("file-ns"));
        assert_eq!(spec.pip_cache_size, "5Gi");

        let spec = resolve(
            RunOptions {
                template: Some("t".into()),
                ..base.clone()
            },
            &ctx,
        )
        .unwrap();
        assert_eq!(spec.image, "from-template");
        assert_eq!(spec.gpu, 1);

        let spec = resolve(
            RunOptions {
                template: Some("t".into()),
                image: Some("explicit".into()),
                ..base
            },
            &ctx,
        )
        .unwrap();
        assert_eq!(spec.image, "explicit");
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_script_keeps_the_folder_it_is_given_in() {
        let dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("train.py"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("project/proj")).unwrap();
        std::os::unix::fs::symlink(
            home.path().join("train.py"),
            dir.path().join("project/proj/train.py"),
        )
        .unwrap();
        let ctx = context(dir.path());
        let spec = resolve(
            RunOptions {
                script: Some("proj/train.py".into()),
                ..Default::default()
            },
            &ctx,
        )
        .unwrap();
        assert_eq!(
            spec.project_root,
            dir.path().join("project/proj").canonicalize().unwrap()
        );
        assert_eq!(spec.script, "train.py");
        let err = resolve(
            RunOptions {
                script: Some("proj".into()),
                ..Default::default()
            },
            &ctx,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("is a folder, not a file") && err.contains("proj/train.py"),
            "{err}"
        );
    }

    #[test]
    fn script_in_subfolder_with_project_root() {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path());
        let ctx = context(dir.path());
        let spec = resolve(
            RunOptions {
                script: Some("sub/job.py".into()),
                project_root: Some(".".into()),
                ..Default::default()
            },
            &ctx,
        )
        .unwrap();
        assert_eq!(spec.script, "sub/job.py");
        let err = resolve(
            RunOptions {
                script: Some("train.py".into()),
                project_root: Some("sub".into()),
                ..Default::default()
            },
            &ctx,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::Spec(SpecError::ScriptOutsideProject { .. })
        ));
    }

    #[test]
    fn bad_inputs_are_refused_with_fixes() {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path());
        let ctx = context(dir.path());
        let base = RunOptions {
            script: Some("train.py".into()),
            ..Default::default()
        };
        let cases = [
            RunOptions {
                name: Some("Bad_Name".into()),
                ..base.clone()
            },
            RunOptions {
                workers: Some(0),
                ..base.clone()
            },
            RunOptions {
                memory: Some("lots".into()),
                ..base.clone()
            },
            RunOptions {
                apt: Some(vec!["vim && curl evil".into()]),
                ..base.clone()
            },
            RunOptions {
                env: Some([("1X".to_string(), "v".to_string())].into()),
                ..base.clone()
            },
            RunOptions {
                namespace: Some("Team A".into()),
                ..base.clone()
            },
            RunOptions {
                script: Some("missing.py".into()),
                ..base.clone()
            },
            RunOptions {
                template: Some("nope".into()),
                ..base.clone()
            },
        ];
        for case in cases {
            let err = resolve(case.clone(), &ctx).unwrap_err().to_string();
            assert!(
                err.contains("Fix") || err.contains("fix"),
                "{case:?}: {err}"
            );
        }
    }

    #[test]
    fn replica_layout_per_kind() {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path());
        let ctx = context(dir.path());
        let spec = resolve(
            RunOptions {
                script: Some("train.py".into()),
                workers: Some(3),
                ..Default::default()
            },
            &ctx,
        )
        .unwrap();
        let labels: Vec<_> = spec.replicas().iter().map(Replica::label).collect();
        assert_eq!(labels, ["master-0", "worker-0", "worker-1"]);
        assert_eq!(spec.replicas()[2].rank, 2);
    }
}
