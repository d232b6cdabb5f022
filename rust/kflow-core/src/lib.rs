//! kflow's domain: what to run, how its code travels, where it runs, and the job handle over
//! it all. It knows nothing of Python, Jupyter or VS Code: the CLI, the Python package, the
//! kernel and `kflow serve` are thin adapters over this API, and none of them builds a
//! manifest or calls an API server itself.
//!
//! # Where to start
//!
//! [`Client`] is the entry point: made from a [`Context`] (folders, settings, environment)
//! and a [`Launcher`] (how local runs start their supervisor). [`Client::submit`] turns
//! [`RunOptions`] into a checked [`RunSpec`], packages the project and starts it on the
//! configured backend, returning a [`Job`]: [`Job::status`], [`Job::logs`] / [`Job::follow`],
//! [`Job::wait`], [`Job::cancel`], [`Job::restart`], [`Job::delete`], [`Job::describe`].
//! [`Client::preview`] shows what a run would create; [`Client::list`] and [`Client::get`]
//! find runs; [`Client::doctor`] says which cluster runs would use. Every failure is an
//! [`Error`] that says what was wrong and how to fix it. Sign-in lives in [`auth`].
//!
//! # The public API
//!
//! - running: [`Client`] (`new`, `with_session`, `submit`, `preview`, `get`, `adopt`, `list`,
//!   `doctor`, `templates`, `resolve`), [`Context`], [`Dirs`], [`Launcher`], [`supervise`],
//!   [`RunOptions`], [`RunSpec`], [`BackendKind`], [`JobKind`], [`CodeMode`], [`TemplateInfo`]
//! - the run-option grammar every surface parses with: [`RUN_OPTIONS`], [`run_option`],
//!   [`RunOption`], [`OptionValue`]
//! - a run: [`Job`], [`JobStatus`], [`Phase`], [`ReplicaStatus`], [`LogStream`],
//!   [`LogLine`], [`Severity`], [`Progress`], [`Description`], [`RunRecord`]
//! - finding runs: [`Listing`], [`JobSummary`]
//! - previews and packaging: [`Preview`], [`package`], [`PackOptions`], [`Archive`]
//! - the namespace ([`Client::namespace`]): [`Namespace`] (paged listings of training jobs of
//!   every kind, PVCs, ConfigMaps, Notebook servers and StorageClasses; PVCs and Notebook
//!   servers made, stopped, started and deleted; [`PortForward`]; the dashboard URL;
//!   [`Namespace::watch`] keeps a listing live: [`Listed`], [`RowWatch`], [`RowChange`], [`Row`]),
//!   the rows ([`TrainingJobRow`], [`PvcRow`], [`ConfigMapRow`],
//!   [`KeySize`], [`NotebookRow`], [`NotebookState`], [`StorageClassRow`]), [`PvcRequest`],
//!   [`NotebookRequest`], [`Workspace`], [`NotebookImages`]
//! - schedules ([`Client::schedule`], `get_schedule`, `schedules`): [`Schedule`] (a CronJob
//!   running a run's pod: `update`, `trigger`, `runs`, `collect` its runs' outputs,
//!   `delete_run`, `delete`), [`ScheduleRequest`], [`ScheduleUpdate`], [`ScheduleInfo`],
//!   [`ScheduledRun`], [`CollectedRun`]
//! - sessions ([`Client::start_session`], `session`): [`Session`] (one long-lived remote
//!   Python: `wait_ready`, `connect` → [`SessionLink`] and [`SessionEvent`]s, `sync` →
//!   [`Synced`], `ended`, `stop`), [`SessionRequest`], [`DEFAULT_IDLE_TIMEOUT`]
//! - the cluster connection: [`Doctor`]
//! - Kubeflow Pipelines: [`Pipelines`] (`connect`, `list_pipelines`, `list_versions`,
//!   `list_experiments`, `list_runs`, `get_run`, `start_run`, `follow_run`, `upload`),
//!   [`PipelineInfo`], [`PipelineVersionInfo`], [`ExperimentInfo`], [`RunInfo`], [`RunState`],
//!   [`StateChange`], [`RunRequest`], [`UploadRequest`], [`Uploaded`]
//! - the Model Registry: [`ModelRegistry`] (`connect`, `list_models`, `list_versions`,
//!   `list_artifacts`, `register`), [`RegisteredModelInfo`], [`ModelVersionInfo`],
//!   [`ModelArtifactInfo`], [`RegisterRequest`], [`Registered`]; [`KubeflowApp`] names them
//!   in errors
//! - paging, for every listing: [`Page`], [`PageRequest`], [`DEFAULT_PAGE_SIZE`]
//! - errors: [`Error`] over [`SpecError`], [`PackagingError`], [`JobError`],
//!   [`ClusterError`], [`AuthError`], [`SystemError`], [`ResourceError`], [`AppError`];
//!   [`ErrorKind`], [`Result`];
//!   [`events`] (event IDs, [`events::Report`])
//! - sign-in: [`auth`] (`login`, `logout`, `whoami`, `session`, `kubeconfig`, [`auth::Session`])
//!
//! # Modules
//!
//! `jobs` (Client and Job: the thin orchestrator), `backend` (the `Backend` seam; `local`
//! and `cluster` implement it; `packaging`, `description`), `spec` (options, grammar,
//! settings, templates, validation -> RunSpec), `artifacts` (packaging), `manifest` (RunSpec
//! -> Kubernetes objects, code slices, the startup chain), `kubeflow` (job kinds, API
//! versions, conditions), `namespace` (everything else in the namespace: listings, PVCs,
//! Notebook servers, port-forward), `paging` (pages and cursors), `status` (what the surfaces
//! show of a run), `records` (run folders), `auth` (Keycloak/Dex sign-in, keyring, sessions),
//! `kubeflow_apps` (Pipelines and
//! the Model Registry through the gateway), `error`, `events` (event IDs),
//! `paths` (kflow's folders), `jwt` and `pem` (token claims, certificates).

#![warn(missing_docs)]

mod artifacts;
pub mod auth;
mod backend;
mod error;
pub mod events;
mod jobs;
mod jwt;
mod kubeflow;
mod kubeflow_apps;
mod manifest;
mod namespace;
mod paging;
mod paths;
mod pem;
mod records;
mod schedules;
mod sessions;
mod spec;
mod status;

pub use artifacts::{package, Archive, PackOptions};
pub use backend::cluster::doctor::{Connection, Doctor};
pub use backend::description::{Condition, Description, EventInfo, PodInfo};
pub use backend::files::{CopiedFiles, ExecOutput};
pub use backend::local::{supervise, Launcher};
pub use backend::LogStream;
pub use error::{
    AppError, AuthError, ClusterError, Error, ErrorKind, JobError, PackagingError, ResourceError,
    Result, SpecError, SystemError,
};
pub use jobs::{Client, Job, Listing, Preview, Progress};
pub use kubeflow::JobKind;
pub use kubeflow_apps::{
    ExperimentInfo, KubeflowApp, ModelArtifactInfo, ModelRegistry, ModelVersionInfo, PipelineInfo,
    PipelineVersionInfo, Pipelines, RegisterRequest, Registered, RegisteredModelInfo, RunInfo,
    RunRequest, RunState, StateChange, UploadRequest, Uploaded,
};
pub use namespace::{
    ConfigMapRow, KeySize, Listed, Namespace, NotebookImages, NotebookRequest, NotebookRow,
    NotebookState, PortForward, PvcRequest, PvcRow, Row, RowChange, RowWatch, StorageClassRow,
    TrainingJobRow, Workspace,
};
pub use paging::{Page, PageRequest, DEFAULT_PAGE_SIZE};
pub use paths::Dirs;
pub use records::RunRecord;
pub use schedules::{
    CollectedRun, Schedule, ScheduleInfo, ScheduleRequest, ScheduleUpdate, ScheduledRun,
    DEFAULT_OUTPUTS_SIZE,
};
pub use sessions::{
    Session, SessionEvent, SessionLink, SessionRequest, Synced, DEFAULT_IDLE_TIMEOUT,
};
pub use spec::grammar::{run_option, OptionValue, RunOption, RUN_OPTIONS};
pub use spec::template::TemplateInfo;
pub use spec::{BackendKind, CodeMode, Context, RunOptions, RunSpec};
pub use status::{JobStatus, JobSummary, LogLine, Phase, ReplicaStatus, Severity};
