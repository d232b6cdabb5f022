//! kflow-core's errors, one enum per area (what to run, packaging, jobs, the cluster, sign-in,
//! this machine, Kubeflow's web apps) under the crate's [`Error`]. Each says what went wrong and where; how to fix
//! it is a separate field ([`Error::fix`]), so every surface (CLI, Python, kernel, `kflow
//! serve`) can show the two apart; `Display` joins them as `problem. Fix: fix`. None of them
//! ever carries a password, token or cookie value.

use std::path::PathBuf;

use crate::kubeflow_apps::KubeflowApp;

/// A kflow-core result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any failure of kflow-core, by area.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What to run: options, settings, templates, the script.
    #[error("{}", joined(.0, .0.fix()))]
    Spec(#[source] SpecError),
    /// Packaging the project.
    #[error("{}", joined(.0, .0.fix()))]
    Packaging(#[source] PackagingError),
    /// A run kflow knows (or does not).
    #[error("{}", joined(.0, .0.fix()))]
    Job(#[source] JobError),
    /// The cluster connection and the API server's answers.
    #[error("{}", joined(.0, .0.fix()))]
    Cluster(#[source] ClusterError),
    /// Signing in to Kubeflow and the session.
    #[error("{}", joined(.0, .0.fix()))]
    Auth(#[source] AuthError),
    /// This machine: files, processes.
    #[error("{}", joined(.0, .0.fix()))]
    System(#[source] SystemError),
    /// The namespace's other objects: PVCs, Notebook servers, Kubeflow's web apps.
    #[error("{}", joined(.0, .0.fix()))]
    Resource(#[source] ResourceError),
    /// Kubeflow's web apps: Pipelines, the Model Registry.
    #[error("{}", joined(.0, .0.fix()))]
    App(#[source] AppError),
}

fn joined(problem: &dyn std::fmt::Display, fix: Option<String>) -> String {
    match fix {
        Some(fix) => format!("{problem}. Fix: {fix}"),
        None => problem.to_string(),
    }
}

/// What to run could not be worked out from the options, settings and templates.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A run parameter has a value kflow cannot use.
    #[error("invalid {field} {value:?}: {problem}")]
    InvalidParameter {
        /// The parameter's name, as the user wrote it.
        field: &'static str,
        /// The value that was given.
        value: String,
        /// Why the value cannot be used.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// The script to run does not exist.
    #[error("script {path} does not exist")]
    ScriptNotFound {
        /// The script path that was given.
        path: PathBuf,
    },
    /// The script lies outside the project folder, so it would not be packaged.
    #[error("script {script} is not inside the project folder {root}")]
    ScriptOutsideProject {
        /// The script path.
        script: PathBuf,
        /// The project folder it should be in.
        root: PathBuf,
    },
    /// No template of that name exists in any template folder.
    #[error("template {name:?} was not found (looked in {searched})")]
    TemplateNotFound {
        /// The template name asked for.
        name: String,
        /// The folders that were searched, for the message.
        searched: String,
    },
    /// A template file has a key kflow cannot use.
    #[error("template file {path}: key {key:?}: {problem}")]
    TemplateInvalid {
        /// The template file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// kflow's config file cannot be read or parsed.
    #[error("config file {path}: {problem}")]
    ConfigInvalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A `KFLOW_*` environment variable has a value kflow cannot use.
    #[error("environment variable {var}={value:?}: {problem}")]
    EnvInvalid {
        /// The variable's name.
        var: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl SpecError {
    /// How to fix it, when there is more to say than the problem.
    pub fn fix(&self) -> Option<String> {
        Some(match self {
            SpecError::InvalidParameter { fix, .. } => fix.clone(),
            SpecError::ScriptNotFound { .. } => {
                "pass the path of a .py file, relative to the current folder or absolute".into()
            }
            SpecError::ScriptOutsideProject { .. } => "pass a project_root that contains the script, or leave it out to use the script's folder".into(),
            SpecError::TemplateNotFound { name, .. } => format!("create {name}.json in one of those folders; `kflow templates` lists the ones that exist"),
            SpecError::TemplateInvalid { .. }
            | SpecError::ConfigInvalid { .. }
            | SpecError::EnvInvalid { .. } => return None,
        })
    }
}

/// The project could not be packaged safely.
#[derive(Debug, thiserror::Error)]
pub enum PackagingError {
    /// A symbolic link in the project points outside it, so its target would leak or be missing.
    #[error("{path} is a symbolic link to {target}, which is outside the project folder {root}")]
    SymlinkOutsideProject {
        /// The link, inside the project.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
        /// The project folder.
        root: PathBuf,
    },
    /// A symbolic link in the project cannot be followed.
    #[error("{path} is a symbolic link to {target} that {problem}")]
    BrokenSymlink {
        /// The link, inside the project.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
        /// Why it cannot be followed (it does not exist, loops…).
        problem: &'static str,
    },
    /// The project folder is too broad to upload (the home folder, `/`…).
    #[error("the project folder {root} is {what}: packaging it would upload everything you own (keys, tokens, other projects)")]
    UnsafeProjectRoot {
        /// The project folder.
        root: PathBuf,
        /// What it is, e.g. "your home folder".
        what: &'static str,
    },
    /// The packed project is over the size limit for its code mode.
    #[error("the project folder {root} packs to {size} bytes, over the {limit}-byte limit{mode}. Largest files: {largest}")]
    ProjectTooLarge {
        /// The project folder.
        root: PathBuf,
        /// The packed size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
        /// Why this limit applies (e.g. " for ConfigMap mode"), as a suffix; may be empty.
        mode: String,
        /// The largest files, to say what to leave out.
        largest: String,
    },
}

impl PackagingError {
    /// How to fix it.
    pub fn fix(&self) -> Option<String> {
        Some(match self {
            PackagingError::SymlinkOutsideProject { .. } => "copy the file into the project, or list the link in .kflowignore",
            PackagingError::BrokenSymlink { .. } => "repair or remove the link, or list it in .kflowignore",
            PackagingError::UnsafeProjectRoot { .. } => "put the script in a folder of its own and run it from there, or pass --project-root (project_root=) naming the project's folder",
            PackagingError::ProjectTooLarge { .. } => "list large data files in .kflowignore (or .gitignore) and read them from a volume instead",
        }.to_string())
    }
}

/// A run kflow was asked about.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No run of that name is known.
    #[error("no job named {name:?} is known on this machine{elsewhere}")]
    NotFound {
        /// The job name asked for.
        name: String,
        /// Where else it might be, as a suffix for the message (may be empty).
        elsewhere: String,
    },
    /// A run of that name already exists.
    #[error("a job named {name:?} already exists")]
    Exists {
        /// The name that is taken.
        name: String,
    },
    /// A wait for a run to finish ran out of time.
    #[error("timed out after {seconds:.1} s waiting for job {name} (it is still {phase})")]
    WaitTimeout {
        /// The job waited for.
        name: String,
        /// How long kflow waited, in seconds.
        seconds: f64,
        /// The phase the job was still in.
        phase: String,
    },
    /// A run's saved record cannot be read.
    #[error("run record {path} is unreadable: {problem}")]
    CorruptRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A job kflow did not make has no stored spec and code to run again.
    #[error(
        "job {name:?} was not made by kflow: there is no stored spec and code to restart it from"
    )]
    NotRestartable {
        /// The job.
        name: String,
    },
    /// A replica name the job does not have.
    #[error("job {name:?} has no replica {replica:?} (it has {})", known.join(", "))]
    UnknownReplica {
        /// The job.
        name: String,
        /// The replica asked for.
        replica: String,
        /// The replicas it has.
        known: Vec<String>,
    },
    /// `exec` with nothing to run.
    #[error("no command given to run in job {name:?}")]
    NoCommand {
        /// The job.
        name: String,
    },
    /// Commands and copies reach a replica only while its container runs.
    #[error("replica {replica} of job {name:?} is not running (it is {phase})")]
    ReplicaNotRunning {
        /// The job.
        name: String,
        /// The replica.
        replica: String,
        /// Where its pod or process is instead.
        phase: String,
    },
    /// A command in a replica could not be run, or a copy out of it failed.
    #[error("{command} in replica {replica} of job {name:?} failed: {problem}")]
    Exec {
        /// The job.
        name: String,
        /// The replica.
        replica: String,
        /// The command, for the message.
        command: String,
        /// What went wrong.
        problem: String,
    },
}

impl JobError {
    /// How to fix it.
    pub fn fix(&self) -> Option<String> {
        Some(match self {
            JobError::NotFound { .. } => "`kflow jobs` lists the jobs kflow knows".to_string(),
            JobError::Exists { name } => {
                format!("choose another name, or delete the old job first (`kflow delete {name}`)")
            }
            JobError::WaitTimeout { name, .. } => {
                format!("wait longer, or check `kflow status {name}`")
            }
            JobError::CorruptRecord { .. } => {
                "delete that folder; the job cannot be restarted".to_string()
            }
            JobError::NotRestartable { .. } => {
                "create it again the way it was made (kubectl apply, TrainingClient), or run its script with `kflow run`".to_string()
            }
            JobError::UnknownReplica { known, .. } => {
                format!("name one of {}", known.join(", "))
            }
            JobError::NoCommand { .. } => {
                "give the program and its arguments, e.g. [\"python\", \"-c\", \"print(1)\"]".to_string()
            }
            JobError::ReplicaNotRunning { name, .. } => {
                format!("reach it while it runs; `kflow describe {name}` shows where its pods are")
            }
            JobError::Exec { name, .. } => {
                format!("check that the image has the command, and `kflow describe {name}`")
            }
        })
    }
}

/// The cluster could not be used, or refused.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No usable cluster connection (no kubeconfig, a bad one, an unknown context…).
    #[error("no cluster connection: {problem}")]
    Config {
        /// What is wrong with the connection settings.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// The API server could not be reached at all (network, TLS, DNS).
    #[error("cannot reach the cluster at {server}: {problem}")]
    Unreachable {
        /// The API server address tried.
        server: String,
        /// Why it could not be reached.
        problem: String,
    },
    /// Discovery says a job kind is not served: the operator is missing, not a 404 on create.
    #[error("the Kubeflow Training Operator is not installed here ({what} is not served)")]
    OperatorMissing {
        /// The resource that is not served, e.g. `kubeflow.org/v1 PyTorchJob`.
        what: String,
    },
    /// The address answers, but it is no Kubernetes API server (often the Kubeflow URL used
    /// as one after `kflow login`).
    #[error("{server} is not a Kubernetes API server ({problem})")]
    NotKubernetesApi {
        /// The address that was used as the API server.
        server: String,
        /// What it answered instead.
        problem: String,
    },
    /// RBAC refused a call: says what to ask the admin for.
    #[error("you are not allowed to {verb} {resource} in namespace {namespace:?} (the API server said: {message})")]
    Forbidden {
        /// The refused verb (create, list, get…).
        verb: String,
        /// The resource it was refused on.
        resource: String,
        /// The namespace of the call.
        namespace: String,
        /// The API server's message.
        message: String,
    },
    /// Any other refusal from the API server, with what kflow was doing.
    #[error("the cluster refused to {action}: {message} (HTTP {code})")]
    Api {
        /// What kflow was doing, e.g. "create the PyTorchJob".
        action: String,
        /// The HTTP status code.
        code: u16,
        /// The API server's message.
        message: String,
        /// How to fix it.
        fix: String,
    },
}

impl ClusterError {
    /// How to fix it.
    pub fn fix(&self) -> Option<String> {
        Some(match self {
            ClusterError::Config { fix, .. } | ClusterError::Api { fix, .. } => fix.clone(),
            ClusterError::Unreachable { .. } => "check the network/VPN and that the kubeconfig's server address is right (`kubectl cluster-info` uses the same)".into(),
            ClusterError::OperatorMissing { .. } => "ask the cluster admin to install the training operator (kubeflow/training-operator v1.9, which serves kubeflow.org/v1 PyTorchJob, TFJob and MPIJob), or run with backend=\"local\"".into(),
            ClusterError::NotKubernetesApi { .. } => "give the cluster's API server address: `kflow login --api-server https://API-SERVER:6443`, `apiServer = \"…\"` in kflow's config.toml (VS Code: kflow.apiServer), or KFLOW_API_SERVER; `kflow doctor` checks it".into(),
            ClusterError::Forbidden { verb, resource, namespace, .. } => format!("ask your cluster admin to grant you {verb} on {resource} in {namespace:?} (in Kubeflow: be added as a contributor to that profile, which binds the kubeflow-edit role), or pass a namespace you own with namespace=..."),
        })
    }
}

/// Signing in, or the session, failed. None of these ever carries a password, token or cookie.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The identity provider rejected the username or password.
    #[error("sign-in to {url} failed: the identity provider rejected the username or password for {username:?}{message}")]
    WrongCredentials {
        /// The Kubeflow address signed in to.
        url: String,
        /// The username tried.
        username: String,
        /// The provider's message, as a suffix for the message (may be empty).
        message: String,
    },
    /// The account exists but is disabled.
    #[error("sign-in to {url} failed: the account {username:?} is disabled ({message})")]
    AccountDisabled {
        /// The Kubeflow address signed in to.
        url: String,
        /// The username tried.
        username: String,
        /// The provider's message.
        message: String,
    },
    /// The identity provider wants an interactive step (password change, OTP…) kflow cannot do.
    #[error("sign-in to {url} stopped: the identity provider asks {username:?} for {action}, which kflow does not fill in")]
    LoginActionRequired {
        /// The Kubeflow address signed in to.
        url: String,
        /// The username tried.
        username: String,
        /// What the provider asks for.
        action: String,
    },
    /// Sign-in failed for another reason (network, an unexpected page…).
    #[error("sign-in to {url} failed: {problem}")]
    LoginFailed {
        /// The Kubeflow address signed in to.
        url: String,
        /// What went wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// The saved session ran out and could not be renewed from the stored credentials.
    #[error("the Kubeflow session for {username:?} at {url} has expired and could not be renewed ({reason})")]
    SessionExpired {
        /// The Kubeflow address of the session.
        url: String,
        /// The signed-in username.
        username: String,
        /// Why renewing failed.
        reason: String,
    },
    /// No Kubeflow session is saved.
    #[error("not signed in to Kubeflow")]
    NotLoggedIn,
    /// The OS keyring holding the credentials failed.
    #[error("the OS keyring ({store}) failed to {action}: {problem}")]
    Keyring {
        /// Which credential store, as kflow describes it.
        store: String,
        /// What kflow asked of it (read, save, delete…).
        action: &'static str,
        /// The keyring's error.
        problem: String,
    },
}

impl AuthError {
    /// How to fix it.
    pub fn fix(&self) -> Option<String> {
        Some(match self {
            AuthError::WrongCredentials { .. } => {
                "check both and run `kflow login` again".to_string()
            }
            AuthError::AccountDisabled { .. } => {
                "ask your Kubeflow administrator to enable it".to_string()
            }
            AuthError::LoginActionRequired { url, .. } => format!(
                "sign in once in a browser at {url} and complete it, then run `kflow login` again"
            ),
            AuthError::LoginFailed { fix, .. } => fix.clone(),
            AuthError::SessionExpired { .. } => "run `kflow login`".to_string(),
            AuthError::NotLoggedIn => {
                "run `kflow login` (or `kflow.login()` in Python)".to_string()
            }
            AuthError::Keyring { .. } => {
                "unlock the keyring, or run `kflow logout` and sign in again".to_string()
            }
        })
    }
}

/// One of Kubeflow's web apps (Pipelines, the Model Registry) could not be used, or refused.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The deployment has no such app: the gateway has no route to its API.
    #[error("{app} is not installed in this deployment ({url} has no {app} API)")]
    NotInstalled {
        /// The app.
        app: KubeflowApp,
        /// The Kubeflow URL signed in to.
        url: String,
    },
    /// The app could not be reached (network, TLS).
    #[error("cannot reach {app} at {url}: {problem}")]
    Unreachable {
        /// The app.
        app: KubeflowApp,
        /// The Kubeflow URL signed in to.
        url: String,
        /// Why it could not be reached.
        problem: String,
    },
    /// The app refused a request.
    #[error("{app} refused to {action}: {message} (HTTP {code})")]
    Refused {
        /// The app.
        app: KubeflowApp,
        /// What kflow asked, e.g. "start a run of pipeline train".
        action: String,
        /// The HTTP status code.
        code: u16,
        /// The app's message.
        message: String,
    },
    /// The app answered with something its API does not return.
    #[error("{app} gave an unexpected answer when asked to {action}: {problem}")]
    BadAnswer {
        /// The app.
        app: KubeflowApp,
        /// What kflow asked.
        action: String,
        /// What was wrong with the answer.
        problem: String,
    },
    /// No object of that name (or id).
    #[error("{app} has no {what} {name:?}{place}")]
    NotFound {
        /// The app.
        app: KubeflowApp,
        /// What was looked for, e.g. "pipeline".
        what: &'static str,
        /// The name or id asked for.
        name: String,
        /// Where it was looked for, as a suffix for the message (may be empty).
        place: String,
        /// How to find the right one.
        fix: String,
    },
    /// The name is taken.
    #[error("{app} already has a {what} {name:?}{place}")]
    Exists {
        /// The app.
        app: KubeflowApp,
        /// What was to be created, e.g. "pipeline".
        what: &'static str,
        /// The name that is taken.
        name: String,
        /// Where, as a suffix for the message (may be empty).
        place: String,
        /// What to do instead.
        fix: String,
    },
    /// A file that is not a compiled pipeline (KFP IR YAML).
    #[error("{path} is not a compiled Kubeflow pipeline: {problem}")]
    InvalidPipelineFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A wait for a pipeline run to end ran out of time.
    #[error("timed out after {seconds:.1} s waiting for pipeline run {run} (it is still {state})")]
    WaitTimeout {
        /// The run's id.
        run: String,
        /// How long kflow waited, in seconds.
        seconds: f64,
        /// The state the run was still in.
        state: String,
    },
}

impl AppError {
    /// How to fix it.
    pub fn fix(&self) -> Option<String> {
        Some(match self {
            AppError::NotInstalled { app, url } => format!("ask your Kubeflow administrator to install {app}, or sign in to the deployment that has it (`kflow whoami` shows {url}; `kflow login --url URL` changes it)"),
            AppError::Unreachable { .. } => "check the network/VPN and the Kubeflow URL (`kflow whoami` shows it)".into(),
            AppError::Refused { app, code, .. } => match code {
                401 => "the Kubeflow session is no longer accepted: run `kflow login`".into(),
                403 => "use a namespace you are a contributor of (--namespace / namespace=...), or ask the namespace's owner to add you to their profile".into(),
                400 | 422 => format!("correct what was passed: the message says what {app} expects"),
                409 => "choose another name".into(),
                _ => format!("try again; if it persists, ask your Kubeflow administrator to look at {app}'s logs"),
            },
            AppError::BadAnswer { app, .. } => format!("check that the Kubeflow URL is right and {app} is installed there; if both are, report this as a kflow bug"),
            AppError::NotFound { fix, .. } | AppError::Exists { fix, .. } => fix.clone(),
            AppError::InvalidPipelineFile { .. } => "pass the YAML file the KFP compiler writes (`kfp.compiler.Compiler().compile(pipeline_func, \"pipeline.yaml\")` or `kfp dsl compile`), with pipelineInfo and root".into(),
            AppError::WaitTimeout { run, .. } => format!("wait longer (--timeout / timeout=), or follow it again with `kflow pipelines follow {run}`"),
        })
    }
}

/// This machine could not do what a run needs.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// The backend cannot do what was asked (e.g. restart a local run).
    #[error("the {backend} backend cannot {action}: {reason}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// What was asked of it.
        action: &'static str,
        /// Why it cannot.
        reason: String,
    },
    /// A process could not be started.
    #[error("could not start {what}: {source}")]
    Spawn {
        /// The program that failed to start.
        what: String,
        /// How to fix it.
        fix: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A namespace object (PVC, Notebook server) or a Kubeflow component could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// No object of that kind and name in the namespace.
    #[error("no {kind} named {name:?} in namespace {namespace:?}")]
    NotFound {
        /// What was looked for: "PVC", "Notebook server", "training job".
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The namespace looked in.
        namespace: String,
        /// How to find the right name.
        fix: String,
    },
    /// The name is taken.
    #[error("a {kind} named {name:?} already exists in namespace {namespace:?}")]
    Exists {
        /// "PVC", "Notebook server".
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// A PVC that running pods mount was not deleted.
    #[error("PVC {name:?} is mounted by running pods: {}", pods.join(", "))]
    InUse {
        /// The PVC.
        name: String,
        /// The running pods that mount it.
        pods: Vec<String>,
    },
    /// A Kubeflow component this needs is not part of the deployment.
    #[error("{what} is not installed in this deployment ({evidence})")]
    NotInstalled {
        /// The component: "the Kubeflow Notebook controller", "Kubeflow Pipelines".
        what: String,
        /// What showed it: "kubeflow.org notebooks is not served".
        evidence: String,
        /// What to do instead.
        fix: String,
    },
    /// A Notebook server (or a helper pod) that cannot become ready without a change.
    #[error("{what} {name:?} cannot start: {reason}")]
    Stuck {
        /// "Notebook server", "the reader pod".
        what: &'static str,
        /// The server.
        name: String,
        /// Why: the image pull or scheduling failure the cluster reports.
        reason: String,
        /// What to change.
        fix: String,
    },
    /// What a deleted object owned was still there when the wait for the garbage collector ran
    /// out.
    #[error("{owned} still exist {seconds} s after {owner} was deleted")]
    NotGone {
        /// The owner: "the schedule nightly".
        owner: String,
        /// What is left, by name.
        owned: String,
        /// How long kflow waited.
        seconds: u64,
    },
    /// Waiting for a Notebook server ran out.
    #[error("Notebook server {name:?} was not ready after {seconds} s ({state})")]
    NotReady {
        /// The server.
        name: String,
        /// How long kflow waited.
        seconds: u64,
        /// Its state when the wait ended.
        state: String,
    },
    /// A session's connection ended while it was in use.
    #[error("the session {name:?} ended: {reason}")]
    SessionEnded {
        /// The session.
        name: String,
        /// Why: its pod's failure reason, or what broke the connection.
        reason: String,
    },
}

impl ResourceError {
    /// How to fix it.
    pub fn fix(&self) -> Option<String> {
        Some(match self {
            ResourceError::NotFound { fix, .. }
            | ResourceError::NotInstalled { fix, .. }
            | ResourceError::Stuck { fix, .. } => fix.clone(),
            ResourceError::Exists { kind, .. } => {
                format!("choose another name, or delete the old {kind} first")
            }
            ResourceError::InUse { .. } => {
                "stop the pods or Notebook servers that use it first, or delete it anyway with --force (force=True): Kubernetes then removes it once they end".into()
            }
            ResourceError::SessionEnded { .. } => {
                "run the cell again: a fresh session starts (its state starts empty)".into()
            }
            ResourceError::NotGone { .. } => {
                "wait a little and try again: the cluster's garbage collector removes them (`kubectl get pvc,configmaps` shows them)".into()
            }
            ResourceError::NotReady { name, .. } => format!(
                "wait longer (`kflow notebook list` shows its state), or see why with `kubectl describe pod {name}-0`"
            ),
        })
    }
}

impl SystemError {
    /// How to fix it, when kflow knows.
    pub fn fix(&self) -> Option<String> {
        match self {
            SystemError::Spawn { fix, .. } => Some(fix.clone()),
            SystemError::Unsupported { .. } | SystemError::Io { .. } => None,
        }
    }
}

macro_rules! from_area {
    ($($area:ident => $variant:ident),*) => {
        $(impl From<$area> for Error {
            fn from(e: $area) -> Error {
                Error::$variant(e)
            }
        })*
    };
}
from_area!(SpecError => Spec, PackagingError => Packaging, JobError => Job,
    ClusterError => Cluster, AuthError => Auth, SystemError => System,
    ResourceError => Resource, AppError => App);

impl Error {
    /// A file operation's error, naming what was done to which path.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| {
            Error::System(SystemError::Io {
                action,
                path,
                source,
            })
        }
    }

    /// A run parameter kflow cannot use, with how to fix it.
    pub fn invalid(
        field: &'static str,
        value: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Error {
        Error::Spec(SpecError::InvalidParameter {
            field,
            value: value.into(),
            problem: problem.into(),
            fix: fix.into(),
        })
    }

    /// What went wrong and where, without the fix.
    pub fn problem(&self) -> String {
        match self {
            Error::Spec(e) => e.to_string(),
            Error::Packaging(e) => e.to_string(),
            Error::Job(e) => e.to_string(),
            Error::Cluster(e) => e.to_string(),
            Error::Auth(e) => e.to_string(),
            Error::System(e) => e.to_string(),
            Error::Resource(e) => e.to_string(),
            Error::App(e) => e.to_string(),
        }
    }

    /// How to fix it, when kflow knows.
    pub fn fix(&self) -> Option<String> {
        match self {
            Error::Spec(e) => e.fix(),
            Error::Packaging(e) => e.fix(),
            Error::Job(e) => e.fix(),
            Error::Cluster(e) => e.fix(),
            Error::Auth(e) => e.fix(),
            Error::System(e) => e.fix(),
            Error::Resource(e) => e.fix(),
            Error::App(e) => e.fix(),
        }
    }

    /// A short stable category, used by the surfaces to pick an exception class or exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Spec(SpecError::TemplateNotFound { .. } | SpecError::TemplateInvalid { .. }) => {
                ErrorKind::Template
            }
            Error::Spec(_) => ErrorKind::Validation,
            Error::Packaging(_) => ErrorKind::Packaging,
            Error::Job(JobError::NotFound { .. }) => ErrorKind::NotFound,
            Error::Job(JobError::Exists { .. }) => ErrorKind::Conflict,
            Error::Job(JobError::WaitTimeout { .. }) => ErrorKind::Timeout,
            Error::Job(JobError::CorruptRecord { .. }) => ErrorKind::Backend,
            Error::Job(
                JobError::NotRestartable { .. }
                | JobError::UnknownReplica { .. }
                | JobError::NoCommand { .. },
            ) => ErrorKind::Validation,
            Error::Job(JobError::ReplicaNotRunning { .. }) => ErrorKind::Conflict,
            Error::Job(JobError::Exec { .. }) => ErrorKind::Backend,
            // Sign-in problems the user fixes by changing input map to Validation (exit 2); the
            // session or the keyring failing under a running command map to Backend (exit 1).
            Error::Auth(AuthError::SessionExpired { .. } | AuthError::Keyring { .. }) => {
                ErrorKind::Backend
            }
            Error::Auth(_) => ErrorKind::Validation,
            Error::Resource(ResourceError::NotFound { .. }) => ErrorKind::NotFound,
            Error::Resource(ResourceError::Exists { .. } | ResourceError::InUse { .. }) => {
                ErrorKind::Conflict
            }
            Error::Resource(ResourceError::NotInstalled { .. }) => ErrorKind::NotInstalled,
            Error::Resource(ResourceError::NotReady { .. } | ResourceError::NotGone { .. }) => {
                ErrorKind::Timeout
            }
            Error::Resource(ResourceError::Stuck { .. } | ResourceError::SessionEnded { .. }) => {
                ErrorKind::Backend
            }
            Error::Cluster(_) | Error::System(_) => ErrorKind::Backend,
            Error::App(AppError::NotFound { .. } | AppError::Refused { code: 404, .. }) => {
                ErrorKind::NotFound
            }
            Error::App(AppError::Exists { .. }) => ErrorKind::Conflict,
            Error::App(AppError::NotInstalled { .. }) => ErrorKind::NotInstalled,
            Error::App(AppError::WaitTimeout { .. }) => ErrorKind::Timeout,
            // Refusals of what the user passed (and their session or namespace) map to
            // Validation (exit 2), as sign-in problems do.
            Error::App(
                AppError::InvalidPipelineFile { .. }
                | AppError::Refused {
                    code: 400 | 401 | 403 | 409 | 422,
                    ..
                },
            ) => ErrorKind::Validation,
            Error::App(_) => ErrorKind::Backend,
        }
    }
}

/// A short stable category of an error: what the surfaces map to exception classes and exit
/// codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user's input (options, settings, credentials) is wrong.
    Validation,
    /// A template is missing or wrong.
    Template,
    /// The project could not be packaged.
    Packaging,
    /// No such job.
    NotFound,
    /// The name is taken.
    Conflict,
    /// A wait ran out.
    Timeout,
    /// A Kubeflow component is not part of the deployment.
    NotInstalled,
    /// The backend (cluster, this machine, the keyring) failed.
    Backend,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fix_is_a_field_and_display_joins_it() {
        let e: Error = JobError::Exists { name: "j".into() }.into();
        assert_eq!(e.problem(), "a job named \"j\" already exists");
        assert_eq!(
            e.fix().as_deref(),
            Some("choose another name, or delete the old job first (`kflow delete j`)")
        );
        assert_eq!(
            e.to_string(),
            format!("{}. Fix: {}", e.problem(), e.fix().unwrap())
        );
        let io = Error::io("reading", "/x")(std::io::Error::other("boom"));
        assert_eq!(
            (io.to_string(), io.fix()),
            ("reading /x: boom".into(), None)
        );
        assert!(std::error::Error::source(&io).is_some());
    }
}
