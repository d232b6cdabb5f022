//! Kubeflow Pipelines through the gateway (`/pipeline/apis/v2beta1`): pipelines and their
//! versions, experiments, runs. Pipelines, versions and experiments are named by name or id
//! (a UUID); names are looked up in the namespace (pipelines: the namespace's and the shared
//! ones). A run's parameters given as text are typed after the pipeline's root input
//! definitions before the run is created; the API server checks them again. KFP has no watch:
//! a run is followed by polling with back-off.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{text, Body, DefaultNamespace, Gateway, KubeflowApp, Page, PageRequest};
use crate::auth::Session;
use crate::error::{AppError, Error, Result};
use crate::spec::Context;

const API: &str = "/pipeline/apis/v2beta1";

/// The first and the longest pause between two looks at a followed run.
const POLL_FIRST: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(5);
/// How often a wait looks at `interrupted`.
const POLL_SLICE: Duration = Duration::from_millis(100);

/// A client of Kubeflow Pipelines as the signed-in user.
pub struct Pipelines {
    gw: Gateway,
    namespace: DefaultNamespace,
}

/// A pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineInfo {
    /// The pipeline's id (a UUID).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its namespace; None for a shared pipeline.
    pub namespace: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
}

/// A version of a pipeline (each upload is one).
#[derive(Debug, Clone, Serialize)]
pub struct PipelineVersionInfo {
    /// The version's id (a UUID).
    pub id: String,
    /// The pipeline it belongs to.
    pub pipeline_id: String,
    /// Its display name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
}

/// An experiment: the group runs are created in.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentInfo {
    /// The experiment's id (a UUID).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its namespace.
    pub namespace: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
}

/// Where a pipeline run is, as KFP names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    /// Created, not started.
    Pending,
    /// Running.
    Running,
    /// Ended well.
    Succeeded,
    /// Not run (cached or skipped).
    Skipped,
    /// Ended with an error.
    Failed,
    /// Being cancelled.
    Canceling,
    /// Cancelled.
    Canceled,
    /// Paused.
    Paused,
    /// A state KFP did not (or not yet) report.
    Unspecified,
}

impl RunState {
    fn parse(s: &str) -> RunState {
        match s {
            "PENDING" => RunState::Pending,
            "RUNNING" => RunState::Running,
            "SUCCEEDED" => RunState::Succeeded,
            "SKIPPED" => RunState::Skipped,
            "FAILED" => RunState::Failed,
            "CANCELING" => RunState::Canceling,
            "CANCELED" => RunState::Canceled,
            "PAUSED" => RunState::Paused,
            _ => RunState::Unspecified,
        }
    }

    /// The state as KFP spells it, e.g. `SUCCEEDED`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Pending => "PENDING",
            RunState::Running => "RUNNING",
            RunState::Succeeded => "SUCCEEDED",
            RunState::Skipped => "SKIPPED",
            RunState::Failed => "FAILED",
            RunState::Canceling => "CANCELING",
            RunState::Canceled => "CANCELED",
            RunState::Paused => "PAUSED",
            RunState::Unspecified => "RUNTIME_STATE_UNSPECIFIED",
        }
    }

    /// Whether the run has ended (it will not change again).
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Skipped | RunState::Failed | RunState::Canceled
        )
    }

    /// The exit code of a command that waited for it: 0 when it succeeded (or was skipped).
    pub fn exit_code(&self) -> i32 {
        match self {
            RunState::Succeeded | RunState::Skipped => 0,
            _ => 1,
        }
    }
}

/// One entry of a run's state history.
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    /// The state entered.
    pub state: RunState,
    /// When (RFC 3339).
    pub at: Option<String>,
}

/// A pipeline run.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// The run's id (a UUID).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The experiment it belongs to.
    pub experiment_id: Option<String>,
    /// Where it is.
    pub state: RunState,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// When it ended (RFC 3339); None while it runs.
    pub finished_at: Option<String>,
    /// The pipeline it runs, when started from a pipeline version.
    pub pipeline_id: Option<String>,
    /// The pipeline version it runs.
    pub pipeline_version_id: Option<String>,
    /// Its parameters, typed as the pipeline declares them.
    pub parameters: Map<String, Value>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The states it went through, oldest first.
    pub history: Vec<StateChange>,
}

/// What run to start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The pipeline, by name or id.
    pub pipeline: String,
    /// The version, by name or id; the newest when None.
    #[serde(default)]
    pub version: Option<String>,
    /// The experiment, by name or id; created when a name is not found. "Default" when None.
    #[serde(default)]
    pub experiment: Option<String>,
    /// The run's display name; the pipeline's name and the time when None.
    #[serde(default)]
    pub name: Option<String>,
    /// Parameters: JSON values, or text that is typed after the pipeline's declaration.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// The namespace (the default one when None).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// What to upload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The compiled pipeline (KFP IR YAML, what the KFP compiler writes).
    pub path: PathBuf,
    /// The pipeline's name; the file's `pipelineInfo.name` when None.
    #[serde(default)]
    pub name: Option<String>,
    /// A description (of the pipeline, or of the version).
    #[serde(default)]
    pub description: Option<String>,
    /// Upload as this new version of the existing pipeline `name`, instead of a new pipeline.
    #[serde(default)]
    pub version: Option<String>,
    /// The namespace (the default one when None); ignored with `shared`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Upload a shared pipeline (no namespace), visible to every user.
    #[serde(default)]
    pub shared: bool,
}

/// What an upload created.
#[derive(Debug, Clone, Serialize)]
pub struct Uploaded {
    /// The pipeline (new, or the one that got a new version).
    pub pipeline: PipelineInfo,
    /// The version the file became.
    pub version: PipelineVersionInfo,
}

impl PipelineInfo {
    fn from_api(v: &Value) -> PipelineInfo {
        PipelineInfo {
            id: text(&v["pipeline_id"]).unwrap_or_default(),
            name: text(&v["display_name"])
                .or_else(|| text(&v["name"]))
                .unwrap_or_default(),
            description: text(&v["description"]),
            namespace: text(&v["namespace"]),
            created_at: text(&v["created_at"]),
        }
    }
}

impl PipelineVersionInfo {
    fn from_api(v: &Value) -> PipelineVersionInfo {
        PipelineVersionInfo {
            id: text(&v["pipeline_version_id"]).unwrap_or_default(),
            pipeline_id: text(&v["pipeline_id"]).unwrap_or_default(),
            name: text(&v["display_name"])
                .or_else(|| text(&v["name"]))
                .unwrap_or_default(),
            description: text(&v["description"]),
            created_at: text(&v["created_at"]),
        }
    }
}

impl ExperimentInfo {
    fn from_api(v: &Value) -> ExperimentInfo {
        ExperimentInfo {
            id: text(&v["experiment_id"]).unwrap_or_default(),
            name: text(&v["display_name"]).unwrap_or_default(),
            description: text(&v["description"]),
            namespace: text(&v["namespace"]),
            created_at: text(&v["created_at"]),
        }
    }
}

/// KFP's "not set" timestamp (protobuf's zero time).
fn set_time(v: &Value) -> Option<String> {
    text(v).filter(|t| !t.starts_with("1970-01-01T00:00:00"))
}

impl RunInfo {
    fn from_api(v: &Value) -> RunInfo {
        let reference = &v["pipeline_version_reference"];
        RunInfo {
            id: text(&v["run_id"]).unwrap_or_default(),
            name: text(&v["display_name"]).unwrap_or_default(),
            experiment_id: text(&v["experiment_id"]),
            state: RunState::parse(v["state"].as_str().unwrap_or("")),
            created_at: set_time(&v["created_at"]),
            finished_at: set_time(&v["finished_at"]),
            pipeline_id: text(&reference["pipeline_id"]),
            pipeline_version_id: text(&reference["pipeline_version_id"])
                .or_else(|| text(&v["pipeline_version_id"])),
            parameters: v["runtime_config"]["parameters"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
            error: text(&v["error"]["message"]),
            history: v["state_history"]
                .as_array()
                .map(|h| {
                    h.iter()
                        .map(|c| StateChange {
                            state: RunState::parse(c["state"].as_str().unwrap_or("")),
                            at: set_time(&c["update_time"]),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A KFP list filter: `key` equals `value`.
fn equals(key: &str, value: &str) -> String {
    json!({"predicates": [{"operation": "EQUALS", "key": key, "string_value": value}]}).to_string()
}

/// Whether `s` is a UUID, the form of KFP's ids (anything else is a name).
fn is_id(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn page_of<T>(v: &Value, key: &str, item: impl Fn(&Value) -> T) -> Page<T> {
    Page {
        items: v[key]
            .as_array()
            .map(|a| a.iter().map(item).collect())
            .unwrap_or_default(),
        next: text(&v["next_page_token"]),
        total: Some(v["total_size"].as_u64().unwrap_or(0)),
    }
}

impl Pipelines {
    /// Kubeflow Pipelines as the user signed in with `kflow login` (the default namespace:
    /// `defaultNamespace` of the settings, else the user's first profile namespace).
    pub fn connect(ctx: &Context) -> Result<Pipelines> {
        let session = crate::auth::session(ctx)?;
        Ok(Pipelines {
            gw: Gateway {
                session,
                app: KubeflowApp::Pipelines,
            },
            namespace: DefaultNamespace::new(Some(ctx)),
        })
    }

    /// Kubeflow Pipelines as `session`'s user (the default namespace: the user's first
    /// profile namespace).
    pub fn new(session: Session) -> Pipelines {
        Pipelines {
            gw: Gateway {
                session,
                app: KubeflowApp::Pipelines,
            },
            namespace: DefaultNamespace::new(None),
        }
    }

    /// The namespace a call uses: `given`, else the default one.
    pub fn namespace(&self, given: Option<&str>) -> Result<String> {
        self.namespace.resolve(&self.gw.session, given)
    }

    /// The pipelines of the namespace and the shared ones.
    pub fn list_pipelines(
        &self,
        namespace: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<PipelineInfo>> {
        let ns = self.namespace(namespace)?;
        let mut q = super::page_query(page, "page_size", "page_token");
        q.push(("namespace", ns.clone()));
        let v = self.gw.get(
            &format!("list the pipelines of namespace {ns}"),
            &format!("{API}/pipelines"),
            &q,
        )?;
        Ok(page_of(&v, "pipelines", PipelineInfo::from_api))
    }

    /// The versions of a pipeline (by name or id), newest first.
    pub fn list_versions(
        &self,
        pipeline: &str,
        namespace: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<PipelineVersionInfo>> {
        let ns = self.namespace(namespace)?;
        let p = self.find_pipeline(pipeline, &ns)?;
        let mut q = super::page_query(page, "page_size", "page_token");
        q.push(("sort_by", "created_at desc".into()));
        let v = self.gw.get(
            &format!("list the versions of pipeline {pipeline}"),
            &format!("{API}/pipelines/{}/versions", p.id),
            &q,
        )?;
        Ok(page_of(
            &v,
            "pipeline_versions",
            PipelineVersionInfo::from_api,
        ))
    }

    /// The experiments of the namespace.
    pub fn list_experiments(
        &self,
        namespace: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ExperimentInfo>> {
        let ns = self.namespace(namespace)?;
        let mut q = super::page_query(page, "page_size", "page_token");
        q.push(("namespace", ns.clone()));
        let v = self.gw.get(
            &format!("list the experiments of namespace {ns}"),
            &format!("{API}/experiments"),
            &q,
        )?;
        Ok(page_of(&v, "experiments", ExperimentInfo::from_api))
    }

    /// The runs of the namespace, or of one experiment (by name or id), newest first.
    pub fn list_runs(
        &self,
        namespace: Option<&str>,
        experiment: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<RunInfo>> {
        let ns = self.namespace(namespace)?;
        let mut q = super::page_query(page, "page_size", "page_token");
        q.push(("sort_by", "created_at desc".into()));
        match experiment {
            Some(e) => q.push(("experiment_id", self.find_experiment(e, &ns, false)?.id)),
            None => q.push(("namespace", ns.clone())),
        }
        let v = self.gw.get(
            &format!("list the runs of namespace {ns}"),
            &format!("{API}/runs"),
            &q,
        )?;
        Ok(page_of(&v, "runs", RunInfo::from_api))
    }

    /// One run, now.
    pub fn get_run(&self, run_id: &str) -> Result<RunInfo> {
        let v = self.gw.get(
            &format!("get run {run_id}"),
            &format!("{API}/runs/{}", segment(run_id)),
            &[],
        )?;
        Ok(RunInfo::from_api(&v))
    }

    /// Starts a run of a pipeline version (see [`RunRequest`] for the defaults).
    pub fn start_run(&self, req: &RunRequest) -> Result<RunInfo> {
        let ns = self.namespace(req.namespace.as_deref())?;
        let pipeline = self.find_pipeline(&req.pipeline, &ns)?;
        let version = match &req.version {
            Some(v) => self.find_version(&pipeline, v)?,
            None => self.newest_version(&pipeline)?,
        };
        let version_id = text(&version["pipeline_version_id"]).unwrap_or_default();
        let spec = match &version["pipeline_spec"] {
            s if s.is_object() => s.clone(),
            _ => self.gw.get(
                &format!("get version {version_id} of pipeline {}", pipeline.name),
                &format!("{API}/pipelines/{}/versions/{version_id}", pipeline.id),
                &[],
            )?["pipeline_spec"]
                .clone(),
        };
        let parameters = typed_parameters(&spec, &req.parameters, &pipeline.name)?;
        let experiment =
            self.find_experiment(req.experiment.as_deref().unwrap_or("Default"), &ns, true)?;
        let name = req.name.clone().unwrap_or_else(|| {
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            format!("{} {now}", pipeline.name)
        });
        let body = json!({
            "display_name": name,
            "experiment_id": experiment.id,
            "pipeline_version_reference": {"pipeline_id": pipeline.id, "pipeline_version_id": version_id},
            "runtime_config": {"parameters": parameters},
        });
        let v = self.gw.call(
            &format!("start a run of pipeline {}", pipeline.name),
            reqwest::Method::POST,
            &format!("{API}/runs"),
            &[],
            Body::Json(body),
        )?;
        Ok(RunInfo::from_api(&v))
    }

    /// Follows a run until it ends: polls with back-off (KFP has no watch), calls `on_change`
    /// with the run whenever its state changes (and first), and returns it at the end. Returns
    /// None when `interrupted` says so (looked at every 100 ms); a `timeout` that runs out is
    /// [`AppError::WaitTimeout`].
    pub fn follow_run(
        &self,
        run_id: &str,
        timeout: Option<Duration>,
        interrupted: &mut dyn FnMut() -> bool,
        on_change: &mut dyn FnMut(&RunInfo),
    ) -> Result<Option<RunInfo>> {
        let start = Instant::now();
        let mut last: Option<RunState> = None;
        let mut pause = POLL_FIRST;
        loop {
            let run = self.get_run(run_id)?;
            if last != Some(run.state) {
                on_change(&run);
                last = Some(run.state);
                pause = POLL_FIRST;
            }
            if run.state.is_finished() {
                return Ok(Some(run));
            }
            let wake = Instant::now() + pause;
            while Instant::now() < wake {
                if interrupted() {
                    return Ok(None);
                }
                if let Some(limit) = timeout.filter(|t| start.elapsed() >= *t) {
                    return Err(Error::App(AppError::WaitTimeout {
                        run: run_id.to_string(),
                        seconds: limit.as_secs_f64(),
                        state: run.state.as_str().to_string(),
                    }));
                }
                std::thread::sleep(POLL_SLICE.min(wake.saturating_duration_since(Instant::now())));
            }
            pause = (pause * 3 / 2).min(POLL_MAX);
        }
    }

    /// Uploads a compiled pipeline as a new pipeline, or as a new version of one (see
    /// [`UploadRequest`]). The file must parse as YAML whose first document has
    /// `pipelineInfo.name` and `root`, which is checked before anything is sent.
    pub fn upload(&self, req: &UploadRequest) -> Result<Uploaded> {
        let (data, spec_name) = read_pipeline_file(&req.path)?;
        let name = req
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(spec_name);
        let ns = if req.shared {
            String::new()
        } else {
            self.namespace(req.namespace.as_deref())?
        };
        let file_name = req
            .path
            .file_name()
            .map(|f| f.to_string_lossy().replace('"', "_"))
            .unwrap_or_else(|| "pipeline.yaml".into());
        let (boundary, bytes) = multipart("uploadfile", &file_name, &data);
        let body = Body::Multipart { boundary, bytes };
        let place = if ns.is_empty() {
            " (shared)".to_string()
        } else {
            format!(" in namespace {ns}")
        };
        match &req.version {
            None => {
                let mut q = vec![("name", name.clone()), ("namespace", ns.clone())];
                if let Some(d) = &req.description {
                    q.push(("description", d.clone()));
                }
                let answer = self.gw.send(
                    reqwest::Method::POST,
                    &format!("{API}/pipelines/upload"),
                    &q,
                    body,
                )?;
                if answer.status == 409 {
                    return Err(Error::App(AppError::Exists {
                        app: KubeflowApp::Pipelines,
                        what: "pipeline",
                        name: name.clone(),
                        place,
                        fix: format!("upload it as a new version: `kflow pipelines upload {} --name {name} --version VERSION` (Python: version=...)", req.path.display()),
                    }));
                }
                let pipeline = PipelineInfo::from_api(
                    &self.gw.check(&format!("upload pipeline {name}"), answer)?,
                );
                let versions = self.gw.get(
                    &format!("list the versions of pipeline {name}"),
                    &format!("{API}/pipelines/{}/versions", pipeline.id),
                    &[("page_size", "1".into())],
                )?;
                let version = versions["pipeline_versions"]
                    .get(0)
                    .map(PipelineVersionInfo::from_api)
                    .ok_or_else(|| {
                        Error::App(AppError::BadAnswer {
                            app: KubeflowApp::Pipelines,
                            action: format!("upload pipeline {name}"),
                            problem: "the new pipeline has no version".into(),
                        })
                    })?;
                Ok(Uploaded { pipeline, version })
            }
            Some(version) => {
                let pipeline = self.find_pipeline(&name, &ns).map_err(|e| match e {
                    Error::App(AppError::NotFound { app, what, name, place, .. }) => Error::App(AppError::NotFound {
                        app,
                        what,
                        fix: format!("upload it without a version first, to create the pipeline: `kflow pipelines upload {} --name {name}`", req.path.display()),
                        name,
                        place,
                    }),
                    other => other,
                })?;
                let mut q = vec![
                    ("name", version.clone()),
                    ("pipelineid", pipeline.id.clone()),
                ];
                if let Some(d) = &req.description {
                    q.push(("description", d.clone()));
                }
                let answer = self.gw.send(
                    reqwest::Method::POST,
                    &format!("{API}/pipelines/upload_version"),
                    &q,
                    body,
                )?;
                if answer.status == 409 {
                    return Err(Error::App(AppError::Exists {
                        app: KubeflowApp::Pipelines,
                        what: "pipeline version",
                        name: version.clone(),
                        place: format!(" of pipeline {}", pipeline.name),
                        fix: format!("choose another version name; `kflow pipelines versions {}` lists the taken ones", pipeline.name),
                    }));
                }
                let v = self.gw.check(
                    &format!("upload version {version} of pipeline {}", pipeline.name),
                    answer,
                )?;
                Ok(Uploaded {
                    pipeline,
                    version: PipelineVersionInfo::from_api(&v),
                })
            }
        }
    }

    /// A pipeline by id, or by name in the namespace (its own before a shared one).
    fn find_pipeline(&self, pipeline: &str, ns: &str) -> Result<PipelineInfo> {
        if is_id(pipeline) {
            let v = self.gw.get(
                &format!("get pipeline {pipeline}"),
                &format!("{API}/pipelines/{pipeline}"),
                &[],
            );
            return v
                .map(|v| PipelineInfo::from_api(&v))
                .map_err(|e| not_found_as(e, "pipeline", pipeline, ""));
        }
        let mut q = vec![
            ("filter", equals("display_name", pipeline)),
            ("page_size", "200".into()),
        ];
        if !ns.is_empty() {
            q.push(("namespace", ns.to_string()));
        }
        let v = self.gw.get(
            &format!("look for pipeline {pipeline}"),
            &format!("{API}/pipelines"),
            &q,
        )?;
        let found: Vec<PipelineInfo> = page_of(&v, "pipelines", PipelineInfo::from_api)
            .items
            .into_iter()
            .filter(|p| p.name == pipeline)
            .collect();
        let own = found
            .iter()
            .find(|p| p.namespace.as_deref() == Some(ns).filter(|n| !n.is_empty()));
        own.or_else(|| found.iter().find(|p| p.namespace.is_none()))
            .cloned()
            .ok_or_else(|| {
                Error::App(AppError::NotFound {
                    app: KubeflowApp::Pipelines,
                    what: "pipeline",
                    name: pipeline.to_string(),
                    place: if ns.is_empty() {
                        " among the shared pipelines".into()
                    } else {
                        format!(" in namespace {ns} or shared")
                    },
                    fix: "`kflow pipelines list` shows the pipelines you can use (pass a name or an id)".into(),
                })
            })
    }

    /// A version of `pipeline` by id or name (the raw API object).
    fn find_version(&self, pipeline: &PipelineInfo, version: &str) -> Result<Value> {
        let missing = || {
            Error::App(AppError::NotFound {
                app: KubeflowApp::Pipelines,
                what: "pipeline version",
                name: version.to_string(),
                place: format!(" of pipeline {}", pipeline.name),
                fix: format!(
                    "`kflow pipelines versions {}` lists its versions",
                    pipeline.name
                ),
            })
        };
        if is_id(version) {
            return self
                .gw
                .get(
                    &format!("get version {version} of pipeline {}", pipeline.name),
                    &format!("{API}/pipelines/{}/versions/{version}", pipeline.id),
                    &[],
                )
                .map_err(|e| match e {
                    Error::App(AppError::Refused { code: 404, .. }) => missing(),
                    other => other,
                });
        }
        let v = self.gw.get(
            &format!("look for version {version} of pipeline {}", pipeline.name),
            &format!("{API}/pipelines/{}/versions", pipeline.id),
            &[
                ("filter", equals("display_name", version)),
                ("page_size", "200".into()),
            ],
        )?;
        v["pipeline_versions"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|x| PipelineVersionInfo::from_api(x).name == version)
            })
            .cloned()
            .ok_or_else(missing)
    }

    fn newest_version(&self, pipeline: &PipelineInfo) -> Result<Value> {
        let v = self.gw.get(
            &format!("get the newest version of pipeline {}", pipeline.name),
            &format!("{API}/pipelines/{}/versions", pipeline.id),
            &[
                ("sort_by", "created_at desc".into()),
                ("page_size", "1".into()),
            ],
        )?;
        v["pipeline_versions"].get(0).cloned().ok_or_else(|| {
            Error::App(AppError::NotFound {
                app: KubeflowApp::Pipelines,
                what: "version of pipeline",
                name: pipeline.name.clone(),
                place: String::new(),
                fix: format!(
                    "upload one: `kflow pipelines upload FILE --name {} --version VERSION`",
                    pipeline.name
                ),
            })
        })
    }

    /// An experiment by id, or by name in the namespace; a missing name is created when
    /// `create` is set (as the KFP SDK does for "Default").
    fn find_experiment(&self, experiment: &str, ns: &str, create: bool) -> Result<ExperimentInfo> {
        if is_id(experiment) {
            let v = self.gw.get(
                &format!("get experiment {experiment}"),
                &format!("{API}/experiments/{experiment}"),
                &[],
            );
            return v
                .map(|v| ExperimentInfo::from_api(&v))
                .map_err(|e| not_found_as(e, "experiment", experiment, ""));
        }
        let v = self.gw.get(
            &format!("look for experiment {experiment}"),
            &format!("{API}/experiments"),
            &[
                ("filter", equals("display_name", experiment)),
                ("namespace", ns.to_string()),
            ],
        )?;
        let found = page_of(&v, "experiments", ExperimentInfo::from_api)
            .items
            .into_iter()
            .find(|e| e.name == experiment);
        match found {
            Some(e) => Ok(e),
            None if create => {
                let v = self.gw.call(
                    &format!("create experiment {experiment} in namespace {ns}"),
                    reqwest::Method::POST,
                    &format!("{API}/experiments"),
                    &[],
                    Body::Json(json!({"display_name": experiment, "namespace": ns})),
                )?;
                Ok(ExperimentInfo::from_api(&v))
            }
            None => Err(Error::App(AppError::NotFound {
                app: KubeflowApp::Pipelines,
                what: "experiment",
                name: experiment.to_string(),
                place: format!(" in namespace {ns}"),
                fix: "`kflow pipelines experiments` lists the experiments".into(),
            })),
        }
    }
}

/// A 404 of a get by id as "no such object".
fn not_found_as(e: Error, what: &'static str, name: &str, place: &str) -> Error {
    match e {
        Error::App(AppError::Refused { code: 404, .. }) => Error::App(AppError::NotFound {
            app: KubeflowApp::Pipelines,
            what,
            name: name.to_string(),
            place: place.to_string(),
            fix: format!(
                "`kflow pipelines {}` lists them",
                if what == "experiment" {
                    "experiments"
                } else {
                    "list"
                }
            ),
        }),
        other => other,
    }
}

/// An id as one URL path segment (ids are UUIDs; anything else must not become a path).
fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// The bytes of a compiled pipeline file and its `pipelineInfo.name`, after the checks KFP's
/// API server makes on a v2 pipeline spec (the first YAML document: pipelineInfo.name, root).
fn read_pipeline_file(path: &std::path::Path) -> Result<(Vec<u8>, String)> {
    let invalid = |problem: String| {
        Error::App(AppError::InvalidPipelineFile {
            path: path.to_path_buf(),
            problem,
        })
    };
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(invalid("there is no such file".into()))
        }
        Err(e) => return Err(Error::io("reading", path)(e)),
    };
    let text = std::str::from_utf8(&data).map_err(|_| {
        invalid("it is not text (kflow uploads the compiled YAML itself, not a .tar.gz or .zip package)".into())
    })?;
    let first = serde_yaml::Deserializer::from_str(text)
        .next()
        .ok_or_else(|| invalid("it is empty".into()))?;
    let spec: Value =
        Deserialize::deserialize(first).map_err(|e| invalid(format!("it is not YAML: {e}")))?;
    if !spec.is_object() {
        return Err(invalid("its first YAML document is not a mapping".into()));
    }
    let name = text_of(&spec["pipelineInfo"]["name"]).ok_or_else(|| {
        invalid(
            "it has no pipelineInfo.name (a KFP v2 pipeline spec has pipelineInfo and root)".into(),
        )
    })?;
    if !spec["root"].is_object() {
        return Err(invalid(
            "it has no root (a KFP v2 pipeline spec has pipelineInfo and root)".into(),
        ));
    }
    Ok((data, name))
}

fn text_of(v: &Value) -> Option<String> {
    text(v).filter(|s| !s.trim().is_empty())
}

/// A multipart/form-data body with one file: (boundary, bytes).
fn multipart(field: &str, file_name: &str, data: &[u8]) -> (String, Vec<u8>) {
    use rand::Rng;
    let boundary: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    let boundary = format!("kflow-{boundary}");
    let mut bytes = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    bytes.extend_from_slice(data);
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, bytes)
}

/// The run's parameters typed as the pipeline's root declares them: a text value of a
/// non-string parameter is read as that type (`3` for NUMBER_INTEGER, `true` for BOOLEAN, JSON
/// for LIST and STRUCT). Other values go as they are; KFP checks them.
fn typed_parameters(
    spec: &Value,
    given: &Map<String, Value>,
    pipeline: &str,
) -> Result<Map<String, Value>> {
    let spec = if spec["pipeline_spec"].is_object() {
        &spec["pipeline_spec"]
    } else {
        spec
    };
    let declared = &spec["root"]["inputDefinitions"]["parameters"];
    let mut out = Map::new();
    for (name, value) in given {
        let kind = declared[name.as_str()]["parameterType"]
            .as_str()
            .unwrap_or("STRING");
        let typed = match (value, kind) {
            (Value::String(s), "NUMBER_INTEGER") => s.trim().parse::<i64>().ok().map(Value::from),
            (Value::String(s), "NUMBER_DOUBLE") => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            (Value::String(s), "BOOLEAN") => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            (Value::String(s), "LIST") => serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_array),
            (Value::String(s), "STRUCT") => serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_object),
            (other, _) => Some(other.clone()),
        };
        let Some(typed) = typed else {
            let example = match kind {
                "NUMBER_INTEGER" => "an integer, e.g. 3",
                "NUMBER_DOUBLE" => "a number, e.g. 0.5",
                "BOOLEAN" => "true or false",
                "LIST" => "a JSON list, e.g. [1, 2]",
                _ => "a JSON object, e.g. {\"k\": 1}",
            };
            return Err(Error::invalid(
                "pipeline parameter",
                format!("{name}={}", value.as_str().unwrap_or_default()),
                format!("pipeline {pipeline} declares {name} as {kind}"),
                format!("pass {example}"),
            ));
        };
        out.insert(name.clone(), typed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_parameters_are_typed_after_the_declaration() {
        let spec = json!({"root": {"inputDefinitions": {"parameters": {
            "epochs": {"parameterType": "NUMBER_INTEGER"}, "lr": {"parameterType": "NUMBER_DOUBLE"},
            "fast": {"parameterType": "BOOLEAN"}, "layers": {"parameterType": "LIST"},
            "label": {"parameterType": "STRING"}}}}});
        let given = json!({"epochs": "3", "lr": "0.5", "fast": "True", "layers": "[1, 2]", "label": "7", "extra": "x"});
        let typed = typed_parameters(&spec, given.as_object().unwrap(), "p").unwrap();
        assert_eq!(
            Value::Object(typed),
            json!({"epochs": 3, "lr": 0.5, "fast": true, "layers": [1, 2], "label": "7", "extra": "x"})
        );
        let bad = typed_parameters(&spec, json!({"epochs": "three"}).as_object().unwrap(), "p")
            .unwrap_err();
        assert!(
            bad.to_string()
                .contains("pipeline p declares epochs as NUMBER_INTEGER"),
            "{bad}"
        );
        assert!(bad.to_string().contains("pass an integer"), "{bad}");
    }

    #[test]
    fn pipeline_files_are_checked_before_upload() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let good = write(
            "good.yaml",
            "pipelineInfo:\n  name: add\nroot:\n  dag: {}\n---\nplatforms: {}\n",
        );
        assert_eq!(read_pipeline_file(&good).unwrap().1, "add");
        for (name, text, problem) in [
            ("list.yaml", "- a\n", "not a mapping"),
            ("noinfo.yaml", "root: {}\n", "no pipelineInfo.name"),
            ("noroot.yaml", "pipelineInfo: {name: add}\n", "no root"),
            ("bad.yaml", "pipelineInfo: [\n", "not YAML"),
        ] {
            let e = read_pipeline_file(&write(name, text)).unwrap_err();
            assert!(e.to_string().contains(problem), "{name}: {e}");
            assert_eq!(e.kind(), crate::ErrorKind::Validation);
        }
    }

    #[test]
    fn ids_are_uuids() {
        assert!(is_id("0b7a1e2c-3d4f-4a5b-8c6d-7e8f9a0b1c2d"));
        assert!(!is_id("my-pipeline"));
        assert!(RunState::parse("SUCCEEDED").is_finished());
        assert!(!RunState::parse("RUNNING").is_finished());
    }
}
