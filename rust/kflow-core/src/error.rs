//! kflow-core's one error type. Every variant says what went wrong, where, and how to fix it,
//! because these messages are shown to users as they are (CLI, Python, kernel, VS Code).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A run parameter has a value kflow cannot use.
    #[error("invalid {field} {value:?}: {problem}. Fix: {fix}")]
    InvalidParameter { field: &'static str, value: String, problem: String, fix: String },

    #[error("script {path} does not exist. Fix: pass the path of a .py file, relative to the current folder or absolute")]
    ScriptNotFound { path: PathBuf },

    #[error("script {script} is not inside the project folder {root}. Fix: pass a project_root that contains the script, or leave it out to use the script's folder")]
    ScriptOutsideProject { script: PathBuf, root: PathBuf },

    #[error("template {name:?} was not found (looked in {searched}). Fix: create {name}.json in one of those folders; `kflow templates` lists the ones that exist")]
    TemplateNotFound { name: String, searched: String },

    #[error("template file {path}: key {key:?}: {problem}")]
    TemplateInvalid { path: PathBuf, key: String, problem: String },

    #[error("config file {path}: {problem}")]
    ConfigInvalid { path: PathBuf, problem: String },

    #[error("environment variable {var}={value:?}: {problem}")]
    EnvInvalid { var: String, value: String, problem: String },

    #[error("{path} is a symbolic link to {target}, which is outside the project folder {root}. Fix: copy the file into the project, or list the link in .kflowignore")]
    SymlinkOutsideProject { path: PathBuf, target: PathBuf, root: PathBuf },

    #[error("the project folder {root} packs to {size} bytes, over the {limit}-byte limit{mode}. Largest files: {largest}. Fix: list large data files in .kflowignore (or .gitignore) and read them from a volume instead")]
    ProjectTooLarge { root: PathBuf, size: u64, limit: u64, mode: String, largest: String },

    #[error("no job named {name:?} is known on this machine. Fix: `kflow jobs` lists the jobs kflow knows")]
    JobNotFound { name: String },

    #[error("a job named {name:?} already exists. Fix: choose another name, or delete the old job first (`kflow delete {name}`)")]
    JobExists { name: String },

    #[error("job {name} is still running. Fix: cancel it first (`kflow delete {name}` cancels and deletes)")]
    JobStillRunning { name: String },

    #[error("timed out after {seconds:.1} s waiting for job {name} (it is still {phase}). Fix: wait longer, or check `kflow status {name}`")]
    WaitTimeout { name: String, seconds: f64, phase: String },

    #[error("the {backend} backend cannot {action}: {reason}")]
    Unsupported { backend: &'static str, action: &'static str, reason: String },

    #[error("could not start {what}: {source}. Fix: {fix}")]
    Spawn { what: String, fix: String, #[source] source: std::io::Error },

    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, #[source] source: std::io::Error },

    #[error("run record {path} is unreadable: {problem}. Fix: delete that folder; the job cannot be restarted")]
    CorruptRecord { path: PathBuf, problem: String },
}

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }

    pub fn invalid(field: &'static str, value: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Error {
        Error::InvalidParameter { field, value: value.into(), problem: problem.into(), fix: fix.into() }
    }

    /// A short stable category, used by the surfaces to pick an exception class or exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidParameter { .. }
            | Error::ScriptNotFound { .. }
            | Error::ScriptOutsideProject { .. }
            | Error::EnvInvalid { .. }
            | Error::ConfigInvalid { .. } => ErrorKind::Validation,
            Error::TemplateNotFound { .. } | Error::TemplateInvalid { .. } => ErrorKind::Template,
            Error::SymlinkOutsideProject { .. } | Error::ProjectTooLarge { .. } => ErrorKind::Packaging,
            Error::JobNotFound { .. } => ErrorKind::NotFound,
            Error::JobExists { .. } | Error::JobStillRunning { .. } => ErrorKind::Conflict,
            Error::WaitTimeout { .. } => ErrorKind::Timeout,
            Error::Unsupported { .. } | Error::Spawn { .. } | Error::Io { .. } | Error::CorruptRecord { .. } => {
                ErrorKind::Backend
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Validation,
    Template,
    Packaging,
    NotFound,
    Conflict,
    Timeout,
    Backend,
}
