//! kflow-core's one error type. Every variant says what went wrong, where, and how to fix it,
//! because these messages are shown to users as they are (CLI, Python, kernel, VS Code).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A run parameter has a value kflow cannot use.
    #[error("invalid {field} {value:?}: {problem}. Fix: {fix}")]
    InvalidParameter {
        field: &'static str,
        value: String,
        problem: String,
        fix: String,
    },

    #[error("script {path} does not exist. Fix: pass the path of a .py file, relative to the current folder or absolute")]
    ScriptNotFound { path: PathBuf },

    #[error("script {script} is not inside the project folder {root}. Fix: pass a project_root that contains the script, or leave it out to use the script's folder")]
    ScriptOutsideProject { script: PathBuf, root: PathBuf },

    #[error("template {name:?} was not found (looked in {searched}). Fix: create {name}.json in one of those folders; `kflow templates` lists the ones that exist")]
    TemplateNotFound { name: String, searched: String },

    #[error("template file {path}: key {key:?}: {problem}")]
    TemplateInvalid {
        path: PathBuf,
        key: String,
        problem: String,
    },

    #[error("config file {path}: {problem}")]
    ConfigInvalid { path: PathBuf, problem: String },

    #[error("environment variable {var}={value:?}: {problem}")]
    EnvInvalid {
        var: String,
        value: String,
        problem: String,
    },

    #[error("{path} is a symbolic link to {target}, which is outside the project folder {root}. Fix: copy the file into the project, or list the link in .kflowignore")]
    SymlinkOutsideProject {
        path: PathBuf,
        target: PathBuf,
        root: PathBuf,
    },

    #[error("{path} is a symbolic link to {target} that {problem}. Fix: repair or remove the link, or list it in .kflowignore")]
    BrokenSymlink {
        path: PathBuf,
        target: PathBuf,
        problem: &'static str,
    },

    #[error("the project folder {root} is {what}: packaging it would upload everything you own (keys, tokens, other projects). Fix: put the script in a folder of its own and run it from there, or pass --project-root (project_root=) naming the project's folder")]
    UnsafeProjectRoot { root: PathBuf, what: &'static str },

    #[error("the project folder {root} packs to {size} bytes, over the {limit}-byte limit{mode}. Largest files: {largest}. Fix: list large data files in .kflowignore (or .gitignore) and read them from a volume instead")]
    ProjectTooLarge {
        root: PathBuf,
        size: u64,
        limit: u64,
        mode: String,
        largest: String,
    },

    #[error("no job named {name:?} is known on this machine{elsewhere}. Fix: `kflow jobs` lists the jobs kflow knows")]
    JobNotFound { name: String, elsewhere: String },

    #[error("a job named {name:?} already exists. Fix: choose another name, or delete the old job first (`kflow delete {name}`)")]
    JobExists { name: String },

    #[error("job {name} is still running. Fix: cancel it first (`kflow delete {name}` cancels and deletes)")]
    JobStillRunning { name: String },

    #[error("timed out after {seconds:.1} s waiting for job {name} (it is still {phase}). Fix: wait longer, or check `kflow status {name}`")]
    WaitTimeout {
        name: String,
        seconds: f64,
        phase: String,
    },

    #[error("the {backend} backend cannot {action}: {reason}")]
    Unsupported {
        backend: &'static str,
        action: &'static str,
        reason: String,
    },

    #[error("could not start {what}: {source}. Fix: {fix}")]
    Spawn {
        what: String,
        fix: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("run record {path} is unreadable: {problem}. Fix: delete that folder; the job cannot be restarted")]
    CorruptRecord { path: PathBuf, problem: String },

    /// No usable cluster connection (no kubeconfig, a bad one, an unknown context…).
    #[error("no cluster connection: {problem}. Fix: {fix}")]
    ClusterConfig { problem: String, fix: String },

    /// The API server could not be reached at all (network, TLS, DNS).
    #[error("cannot reach the cluster at {server}: {problem}. Fix: check the network/VPN and that the kubeconfig's server address is right (`kubectl cluster-info` uses the same)")]
    ClusterUnreachable { server: String, problem: String },

    /// Discovery says a job kind is not served: the operator is missing, not a 404 on create.
    #[error("the Kubeflow Training Operator is not installed here ({what} is not served). Fix: ask the cluster admin to install the training operator (kubeflow/training-operator v1.9, which serves kubeflow.org/v1 PyTorchJob, TFJob and MPIJob), or run with backend=\"local\"")]
    OperatorMissing { what: String },

    /// The address answers, but it is no Kubernetes API server (often the Kubeflow URL used
    /// as one after `kflow login`).
    #[error("{server} is not a Kubernetes API server ({problem}). Fix: give the cluster's API server address: `kflow login --api-server https://API-SERVER:6443`, `apiServer = \"…\"` in kflow's config.toml (VS Code: kflow.apiServer), or KFLOW_API_SERVER; `kflow doctor` checks it")]
    NotKubernetesApi { server: String, problem: String },

    /// RBAC refused a call: says what to ask the admin for.
    #[error("you are not allowed to {verb} {resource} in namespace {namespace:?} (the API server said: {message}). Fix: ask your cluster admin to grant you {verb} on {resource} in {namespace:?} (in Kubeflow: be added as a contributor to that profile, which binds the kubeflow-edit role), or pass a namespace you own with namespace=...")]
    Forbidden {
        verb: String,
        resource: String,
        namespace: String,
        message: String,
    },

    /// Any other refusal from the API server, with what kflow was doing.
    #[error("the cluster refused to {action}: {message} (HTTP {code}). Fix: {fix}")]
    ClusterApi {
        action: String,
        code: u16,
        message: String,
        fix: String,
    },

    // Sign-in (auth/). None of these ever carries a password, token or cookie value.
    #[error("sign-in to {url} failed: the identity provider rejected the username or password for {username:?}{message}. Fix: check both and run `kflow login` again")]
    WrongCredentials {
        url: String,
        username: String,
        message: String,
    },

    #[error("sign-in to {url} failed: the account {username:?} is disabled ({message}). Fix: ask your Kubeflow administrator to enable it")]
    AccountDisabled {
        url: String,
        username: String,
        message: String,
    },

    #[error("sign-in to {url} stopped: the identity provider asks {username:?} for {action}, which kflow does not fill in. Fix: sign in once in a browser at {url} and complete it, then run `kflow login` again")]
    LoginActionRequired {
        url: String,
        username: String,
        action: String,
    },

    #[error("sign-in to {url} failed: {problem}. Fix: {fix}")]
    LoginFailed {
        url: String,
        problem: String,
        fix: String,
    },

    #[error("the Kubeflow session for {username:?} at {url} has expired and could not be renewed ({reason}). Fix: run `kflow login`")]
    SessionExpired {
        url: String,
        username: String,
        reason: String,
    },

    #[error("not signed in to Kubeflow. Fix: run `kflow login` (or `kflow.login()` in Python)")]
    NotLoggedIn,

    #[error("the OS keyring ({store}) failed to {action}: {problem}. Fix: unlock the keyring, or run `kflow logout` and sign in again")]
    Keyring {
        store: String,
        action: &'static str,
        problem: String,
    },
}

impl Error {
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    pub fn invalid(
        field: &'static str,
        value: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Error {
        Error::InvalidParameter {
            field,
            value: value.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
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
            Error::SymlinkOutsideProject { .. }
            | Error::BrokenSymlink { .. }
            | Error::UnsafeProjectRoot { .. }
            | Error::ProjectTooLarge { .. } => ErrorKind::Packaging,
            Error::JobNotFound { .. } => ErrorKind::NotFound,
            Error::JobExists { .. } | Error::JobStillRunning { .. } => ErrorKind::Conflict,
            Error::WaitTimeout { .. } => ErrorKind::Timeout,
            // Sign-in problems the user fixes by changing input map to Validation (exit 2); the
            // session or the keyring failing under a running command map to Backend (exit 1).
            Error::WrongCredentials { .. }
            | Error::AccountDisabled { .. }
            | Error::LoginActionRequired { .. }
            | Error::LoginFailed { .. }
            | Error::NotLoggedIn => ErrorKind::Validation,
            Error::SessionExpired { .. } | Error::Keyring { .. } => ErrorKind::Backend,
            Error::Unsupported { .. }
            | Error::Spawn { .. }
            | Error::Io { .. }
            | Error::CorruptRecord { .. }
            | Error::ClusterConfig { .. }
            | Error::ClusterUnreachable { .. }
            | Error::OperatorMissing { .. }
            | Error::NotKubernetesApi { .. }
            | Error::Forbidden { .. }
            | Error::ClusterApi { .. } => ErrorKind::Backend,
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
