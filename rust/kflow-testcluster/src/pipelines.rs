//! Kubeflow Pipelines' v2beta1 REST API behind the gateway, at `/pipeline/apis/v2beta1/…` as
//! ml-pipeline-ui proxies it: what `kfp.Client(host=<gateway>/pipeline)` calls. Multi-user mode:
//! pipelines belong to a profile namespace or are shared (no namespace), experiments to a
//! namespace, runs to their experiment's; a user reads and writes only in their own namespaces.
//!
//! Pipelines are uploaded (multipart `uploadfile`, YAML or JSON IR with `pipelineInfo` and
//! `root`) or created with an inline `pipeline_spec`; each upload is a version. A run's
//! `runtime_config.parameters` are checked against the root's input definitions as the API
//! server does at create (types, required, unknown names). Runs do not execute anything: a
//! created run is PENDING, RUNNING after [`RUNNING_AFTER`] and SUCCEEDED after
//! [`SUCCEEDED_AFTER`], with `state_history`; runs seeded from the fixture keep their state.
//! Lists page with page_size (default 20, at most 200) / page_token, sort with `sort_by`
//! (`field [desc]`) and filter with KFP's JSON `filter` predicates. Errors are
//! `google.rpc.Status` JSON with the API server's codes and messages. State lives in memory.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::idp::TokenUser;
use crate::webapps::{self, WebRequest};

/// How long a created run stays PENDING.
pub const RUNNING_AFTER: Duration = Duration::from_millis(500);
/// When a created run has SUCCEEDED.
pub const SUCCEEDED_AFTER: Duration = Duration::from_secs(2);

const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 200;

// google.rpc.Code values the API server answers with.
const INVALID_ARGUMENT: i32 = 3;
const NOT_FOUND: i32 = 5;
const PERMISSION_DENIED: i32 = 7;
const ALREADY_EXISTS: i32 = 6;
const FAILED_PRECONDITION: i32 = 9;
const UNIMPLEMENTED: i32 = 12;

/// The Pipelines API's objects, seeded from the fixture's `pipelines`, `pipelineVersions`,
/// `experiments` and `runs`.
pub struct Pipelines {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pipelines: Vec<Value>,
    versions: Vec<Value>,
    experiments: Vec<Value>,
    runs: Vec<Run>,
}

struct Run {
    body: Value,
    /// Created through the API: the state follows the run's age. Fixture runs keep theirs.
    created: Option<DateTime<Utc>>,
}

/// A refusal as the API server words it: HTTP status, google.rpc code, message.
struct Refusal {
    status: StatusCode,
    code: i32,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (code, message) = (self.code, self.message);
        (
            self.status,
            Json(json!({"error": message, "code": code, "message": message,
                "details": [{"@type": "type.googleapis.com/google.rpc.Status", "code": code, "message": message}]})),
        )
            .into_response()
    }
}

type Answer = Result<Value, Refusal>;

fn rpc_error(status: StatusCode, code: i32, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> Refusal {
    rpc_error(
        StatusCode::BAD_REQUEST,
        INVALID_ARGUMENT,
        format!("Invalid input error: {}", message.into()),
    )
}

fn not_found(what: &str, id: &str) -> Refusal {
    rpc_error(
        StatusCode::NOT_FOUND,
        NOT_FOUND,
        format!("Failed to get {what} {id}: ResourceNotFoundError: {what} {id} not found"),
    )
}

fn forbidden(user: &TokenUser, ns: &str) -> Refusal {
    rpc_error(
        StatusCode::FORBIDDEN,
        PERMISSION_DENIED,
        format!("Failed to authorize with API: PermissionDenied: User '{}' is not authorized with reason:  (request: namespace {ns})", user.username),
    )
}

fn can_use(user: &TokenUser, ns: &str) -> bool {
    ns.is_empty() || user.namespaces.iter().any(|n| n == ns)
}

fn ns_of(o: &Value) -> &str {
    o["namespace"].as_str().unwrap_or("")
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A random UUID (version 4), as the API server names its objects.
fn uuid() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn body_json(req: &WebRequest) -> Result<Value, Refusal> {
    serde_json::from_slice(req.body)
        .map_err(|e| invalid(format!("the request body is not JSON: {e}")))
}

impl Pipelines {
    /// The API seeded from `fixture` (its keys: see the module doc).
    pub fn new(fixture: &Value) -> Pipelines {
        let list = |key: &str| fixture[key].as_array().cloned().unwrap_or_default();
        let runs = list("runs")
            .into_iter()
            .map(|body| Run {
                body,
                created: None,
            })
            .collect();
        Pipelines {
            state: Mutex::new(State {
                pipelines: list("pipelines"),
                versions: list("pipelineVersions"),
                experiments: list("experiments"),
                runs,
            }),
        }
    }

    /// Answers `segs` below `/pipeline/apis/v2beta1`.
    pub fn serve(&self, req: &WebRequest, segs: &[&str]) -> Response {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let answer = match (req.method, segs) {
            (&Method::GET, ["healthz"]) => {
                Ok(json!({"multi_user": true, "pipeline_store": "database"}))
            }
            (&Method::GET, ["pipelines"]) => state.list_pipelines(req),
            (&Method::POST, ["pipelines"]) => state.create_pipeline(req),
            (&Method::POST, ["pipelines", "upload"]) => state.upload(req),
            (&Method::POST, ["pipelines", "upload_version"]) => state.upload_version(req),
            (&Method::POST, ["pipelines", "create"]) => state.create_pipeline_and_version(req),
            (&Method::GET, ["pipelines", "names", name]) => state.pipeline_by_name(req, name),
            (&Method::GET, ["pipelines", id]) => state.pipeline(req.user, id).cloned(),
            (&Method::DELETE, ["pipelines", id]) => state.delete_pipeline(req, id),
            (&Method::GET, ["pipelines", id, "versions"]) => state.list_versions(req, id),
            (&Method::POST, ["pipelines", id, "versions"]) => state.create_version(req, id),
            (&Method::GET, ["pipelines", id, "versions", vid]) => {
                state.version(req.user, id, vid).cloned()
            }
            (&Method::DELETE, ["pipelines", id, "versions", vid]) => {
                state.delete_version(req.user, id, vid)
            }
            (&Method::GET, ["experiments"]) => state.list_experiments(req),
            (&Method::POST, ["experiments"]) => state.create_experiment(req),
            (&Method::GET, ["experiments", id]) => state.experiment(req.user, id).cloned(),
            (&Method::DELETE, ["experiments", id]) => state.delete_experiment(req.user, id),
            (&Method::GET, ["runs"]) => state.list_runs(req),
            (&Method::POST, ["runs"]) => state.create_run(req),
            (&Method::GET, ["runs", id]) => state.run(req.user, id),
            (&Method::DELETE, ["runs", id]) => state.delete_run(req.user, id),
            (_, ["healthz" | "pipelines" | "experiments" | "runs", ..]) => Err(rpc_error(
                StatusCode::NOT_IMPLEMENTED,
                UNIMPLEMENTED,
                format!(
                    "{} {} is not served by the test cluster",
                    req.method,
                    segs.join("/")
                ),
            )),
            _ => Err(rpc_error(StatusCode::NOT_FOUND, NOT_FOUND, "Not Found")),
        };
        match answer {
            Ok(v) => Json(v).into_response(),
            Err(r) => r.into_response(),
        }
    }
}

impl State {
    fn pipeline(&self, user: &TokenUser, id: &str) -> Result<&Value, Refusal> {
        let p = self
            .pipelines
            .iter()
            .find(|p| p["pipeline_id"].as_str() == Some(id))
            .ok_or_else(|| not_found("pipeline", id))?;
        if !can_use(user, ns_of(p)) {
            return Err(forbidden(user, ns_of(p)));
        }
        Ok(p)
    }

    fn namespace_query(req: &WebRequest) -> Result<String, Refusal> {
        let ns = req.query.get("namespace").cloned().unwrap_or_default();
        if !can_use(req.user, &ns) {
            return Err(forbidden(req.user, &ns));
        }
        Ok(ns)
    }

    fn list_pipelines(&self, req: &WebRequest) -> Answer {
        let ns = Self::namespace_query(req)?;
        let items = self
            .pipelines
            .iter()
            .filter(|p| {
                can_use(req.user, ns_of(p))
                    && (ns.is_empty() || ns_of(p).is_empty() || ns_of(p) == ns)
            })
            .cloned()
            .collect();
        listing(req, items, "pipelines")
    }

    fn pipeline_by_name(&self, req: &WebRequest, name: &str) -> Answer {
        let ns = Self::namespace_query(req)?;
        self.pipelines
            .iter()
            .find(|p| p["name"].as_str() == Some(name) && ns_of(p) == ns)
            .cloned()
            .ok_or_else(|| not_found("pipeline", name))
    }

    /// Adds a pipeline (namespace checked by the caller) after the API server's checks.
    fn add_pipeline(
        &mut self,
        name: &str,
        display_name: &str,
        description: &str,
        ns: &str,
    ) -> Answer {
        if name.trim().is_empty() {
            return Err(invalid("Pipeline name cannot be empty"));
        }
        if self
            .pipelines
            .iter()
            .any(|p| p["name"].as_str() == Some(name) && ns_of(p) == ns)
        {
            return Err(rpc_error(
                StatusCode::CONFLICT,
                ALREADY_EXISTS,
                format!("Failed to create a new pipeline. The name {name} already exists. Please specify a new name"),
            ));
        }
        let mut p = json!({"pipeline_id": uuid(), "name": name, "display_name": display_name,
            "created_at": timestamp(Utc::now())});
        if !description.is_empty() {
            p["description"] = json!(description);
        }
        if !ns.is_empty() {
            p["namespace"] = json!(ns);
        }
        self.pipelines.push(p.clone());
        Ok(p)
    }

    /// Adds a version of a visible pipeline; `spec` is the version's stored pipeline_spec.
    fn add_version(
        &mut self,
        pipeline_id: &str,
        name: &str,
        display_name: &str,
        description: &str,
        spec: Value,
    ) -> Answer {
        if name.trim().is_empty() {
            return Err(invalid("Pipeline version name cannot be empty"));
        }
        if self.versions.iter().any(|v| {
            v["pipeline_id"].as_str() == Some(pipeline_id) && v["name"].as_str() == Some(name)
        }) {
            return Err(rpc_error(
                StatusCode::CONFLICT,
                ALREADY_EXISTS,
                format!("Failed to create a new pipeline version. The name {name} already exists in pipeline {pipeline_id}. Please specify a new name"),
            ));
        }
        let mut v = json!({"pipeline_id": pipeline_id, "pipeline_version_id": uuid(), "name": name,
            "display_name": display_name, "created_at": timestamp(Utc::now()), "pipeline_spec": spec});
        if !description.is_empty() {
            v["description"] = json!(description);
        }
        self.versions.push(v.clone());
        Ok(v)
    }

    fn create_pipeline(&mut self, req: &WebRequest) -> Answer {
        let body = body_json(req)?;
        self.create_from(req.user, &body)
    }

    fn create_from(&mut self, user: &TokenUser, p: &Value) -> Answer {
        let ns = ns_of(p).to_string();
        if !can_use(user, &ns) {
            return Err(forbidden(user, &ns));
        }
        let name = p["name"]
            .as_str()
            .or(p["display_name"].as_str())
            .unwrap_or("");
        let display = p["display_name"].as_str().unwrap_or(name);
        let description = p["description"].as_str().unwrap_or("");
        self.add_pipeline(name, display, description, &ns)
    }

    fn create_pipeline_and_version(&mut self, req: &WebRequest) -> Answer {
        let body = body_json(req)?;
        let spec = inline_spec(&body["pipeline_version"])?;
        let pipeline = self.create_from(req.user, &body["pipeline"])?;
        let id = pipeline["pipeline_id"].as_str().unwrap_or("").to_string();
        let v = &body["pipeline_version"];
        let name = v["name"]
            .as_str()
            .or(v["display_name"].as_str())
            .or(pipeline["name"].as_str())
            .unwrap_or("")
            .to_string();
        let display = v["display_name"].as_str().unwrap_or(&name).to_string();
        self.add_version(
            &id,
            &name,
            &display,
            v["description"].as_str().unwrap_or(""),
            spec,
        )?;
        Ok(pipeline)
    }

    fn upload(&mut self, req: &WebRequest) -> Answer {
        let (file_name, spec) = uploaded_spec(req)?;
        let ns = req.query.get("namespace").cloned().unwrap_or_default();
        if !can_use(req.user, &ns) {
            return Err(forbidden(req.user, &ns));
        }
        let name = upload_name(req, &file_name);
        let display = req
            .query
            .get("display_name")
            .cloned()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| name.clone());
        let description = req.query.get("description").cloned().unwrap_or_default();
        let pipeline = self.add_pipeline(&name, &display, &description, &ns)?;
        let id = pipeline["pipeline_id"].as_str().unwrap_or("").to_string();
        self.add_version(&id, &name, &display, &description, spec)?;
        Ok(pipeline)
    }

    fn upload_version(&mut self, req: &WebRequest) -> Answer {
        let (file_name, spec) = uploaded_spec(req)?;
        let pipeline_id = req.query.get("pipelineid").cloned().unwrap_or_default();
        if pipeline_id.is_empty() {
            return Err(invalid(
                "Failed to create a pipeline version: the pipelineid query parameter is missing",
            ));
        }
        self.pipeline(req.user, &pipeline_id)?;
        let name = upload_name(req, &file_name);
        let display = req
            .query
            .get("display_name")
            .cloned()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| name.clone());
        let description = req.query.get("description").cloned().unwrap_or_default();
        self.add_version(&pipeline_id, &name, &display, &description, spec)
    }

    fn delete_pipeline(&mut self, req: &WebRequest, id: &str) -> Answer {
        self.pipeline(req.user, id)?;
        let has_versions = self
            .versions
            .iter()
            .any(|v| v["pipeline_id"].as_str() == Some(id));
        if has_versions && req.query.get("cascade").map(String::as_str) != Some("true") {
            return Err(rpc_error(
                StatusCode::BAD_REQUEST,
                FAILED_PRECONDITION,
                format!("Failed to delete pipeline with id {id} as it has existing pipeline versions (try deleting them first or set cascade=true)"),
            ));
        }
        self.versions
            .retain(|v| v["pipeline_id"].as_str() != Some(id));
        self.pipelines
            .retain(|p| p["pipeline_id"].as_str() != Some(id));
        Ok(json!({}))
    }

    fn version(&self, user: &TokenUser, pipeline_id: &str, vid: &str) -> Result<&Value, Refusal> {
        self.pipeline(user, pipeline_id)?;
        self.versions
            .iter()
            .find(|v| {
                v["pipeline_id"].as_str() == Some(pipeline_id)
                    && v["pipeline_version_id"].as_str() == Some(vid)
            })
            .ok_or_else(|| not_found("pipeline version", vid))
    }

    fn list_versions(&self, req: &WebRequest, pipeline_id: &str) -> Answer {
        self.pipeline(req.user, pipeline_id)?;
        let items = self
            .versions
            .iter()
            .filter(|v| v["pipeline_id"].as_str() == Some(pipeline_id))
            .cloned()
            .collect();
        listing(req, items, "pipeline_versions")
    }

    fn create_version(&mut self, req: &WebRequest, pipeline_id: &str) -> Answer {
        let body = body_json(req)?;
        self.pipeline(req.user, pipeline_id)?;
        let spec = inline_spec(&body)?;
        let name = body["name"]
            .as_str()
            .or(body["display_name"].as_str())
            .unwrap_or("")
            .to_string();
        let display = body["display_name"].as_str().unwrap_or(&name).to_string();
        self.add_version(
            pipeline_id,
            &name,
            &display,
            body["description"].as_str().unwrap_or(""),
            spec,
        )
    }

    fn delete_version(&mut self, user: &TokenUser, pipeline_id: &str, vid: &str) -> Answer {
        self.version(user, pipeline_id, vid)?;
        self.versions
            .retain(|v| v["pipeline_version_id"].as_str() != Some(vid));
        Ok(json!({}))
    }

    fn experiment(&self, user: &TokenUser, id: &str) -> Result<&Value, Refusal> {
        let e = self
            .experiments
            .iter()
            .find(|e| e["experiment_id"].as_str() == Some(id))
            .ok_or_else(|| not_found("experiment", id))?;
        if !can_use(user, ns_of(e)) {
            return Err(forbidden(user, ns_of(e)));
        }
        Ok(e)
    }

    fn list_experiments(&self, req: &WebRequest) -> Answer {
        let ns = Self::namespace_query(req)?;
        let items = self
            .experiments
            .iter()
            .filter(|e| can_use(req.user, ns_of(e)) && (ns.is_empty() || ns_of(e) == ns))
            .cloned()
            .collect();
        listing(req, items, "experiments")
    }

    fn create_experiment(&mut self, req: &WebRequest) -> Answer {
        let body = body_json(req)?;
        let name = body["display_name"].as_str().unwrap_or("");
        if name.trim().is_empty() {
            return Err(invalid(
                "Experiment name is empty. Please specify a valid experiment name",
            ));
        }
        let ns = ns_of(&body).to_string();
        if ns.is_empty() {
            return Err(invalid("Experiment namespace is empty. Please specify a valid namespace in multi-user mode"));
        }
        if !can_use(req.user, &ns) {
            return Err(forbidden(req.user, &ns));
        }
        if self
            .experiments
            .iter()
            .any(|e| e["display_name"].as_str() == Some(name) && ns_of(e) == ns)
        {
            return Err(rpc_error(
                StatusCode::CONFLICT,
                ALREADY_EXISTS,
                format!("Failed to create a new experiment. The name {name} already exists. Please specify a new name"),
            ));
        }
        let mut e = json!({"experiment_id": uuid(), "display_name": name, "namespace": ns,
            "created_at": timestamp(Utc::now()), "storage_state": "AVAILABLE",
            "last_run_created_at": "1970-01-01T00:00:00Z"});
        if let Some(d) = body["description"].as_str().filter(|d| !d.is_empty()) {
            e["description"] = json!(d);
        }
        self.experiments.push(e.clone());
        Ok(e)
    }

    fn delete_experiment(&mut self, user: &TokenUser, id: &str) -> Answer {
        self.experiment(user, id)?;
        self.experiments
            .retain(|e| e["experiment_id"].as_str() != Some(id));
        self.runs
            .retain(|r| r.body["experiment_id"].as_str() != Some(id));
        Ok(json!({}))
    }

    /// The namespace a run belongs to: its experiment's (fixture runs may name their own).
    fn run_namespace(&self, run: &Value) -> String {
        if let Some(ns) = run["namespace"].as_str() {
            return ns.to_string();
        }
        let exp = run["experiment_id"].as_str();
        self.experiments
            .iter()
            .find(|e| e["experiment_id"].as_str() == exp)
            .map(|e| ns_of(e).to_string())
            .unwrap_or_default()
    }

    fn run(&self, user: &TokenUser, id: &str) -> Answer {
        let run = self
            .runs
            .iter()
            .find(|r| r.body["run_id"].as_str() == Some(id))
            .ok_or_else(|| not_found("run", id))?;
        let ns = self.run_namespace(&run.body);
        if !can_use(user, &ns) {
            return Err(forbidden(user, &ns));
        }
        Ok(run.render(Utc::now()))
    }

    fn list_runs(&self, req: &WebRequest) -> Answer {
        let ns = match req.query.get("experiment_id").filter(|e| !e.is_empty()) {
            Some(exp) => ns_of(self.experiment(req.user, exp)?).to_string(),
            None => Self::namespace_query(req)?,
        };
        let experiment = req.query.get("experiment_id").filter(|e| !e.is_empty());
        let now = Utc::now();
        let items = self
            .runs
            .iter()
            .filter(|r| {
                let run_ns = self.run_namespace(&r.body);
                can_use(req.user, &run_ns)
                    && (ns.is_empty() || run_ns == ns)
                    && experiment.is_none_or(|e| r.body["experiment_id"].as_str() == Some(e))
            })
            .map(|r| r.render(now))
            .collect();
        listing(req, items, "runs")
    }

    fn create_run(&mut self, req: &WebRequest) -> Answer {
        let body = body_json(req)?;
        let name = body["display_name"].as_str().unwrap_or("");
        if name.trim().is_empty() {
            return Err(invalid("Failed to create a run due to invalid name: The run name is empty. Please specify a valid name"));
        }
        let experiment_id = body["experiment_id"].as_str().unwrap_or("");
        if experiment_id.is_empty() {
            return Err(invalid("Failed to create a run due to invalid experimentId and namespace combination: Experiment id can not be empty in multi-user mode"));
        }
        let experiment = self.experiment(req.user, experiment_id)?;
        let ns = ns_of(experiment).to_string();
        let mut run = json!({"run_id": uuid(), "experiment_id": experiment_id, "display_name": name,
            "storage_state": "AVAILABLE", "service_account": body["service_account"].as_str().unwrap_or("default-editor")});
        if let Some(d) = body["description"].as_str().filter(|d| !d.is_empty()) {
            run["description"] = json!(d);
        }
        let spec = match (&body["pipeline_version_reference"], &body["pipeline_spec"]) {
            (r, _) if r.is_object() => {
                let pipeline_id = r["pipeline_id"].as_str().unwrap_or("");
                if pipeline_id.is_empty() {
                    return Err(invalid(
                        "Failed to create a run: pipeline_version_reference needs a pipeline_id",
                    ));
                }
                let pipeline_ns = ns_of(self.pipeline(req.user, pipeline_id)?).to_string();
                if !pipeline_ns.is_empty() && pipeline_ns != ns {
                    return Err(invalid(format!("Failed to create a run: pipeline {pipeline_id} belongs to namespace '{pipeline_ns}', the experiment to '{ns}'")));
                }
                let version = match r["pipeline_version_id"].as_str().filter(|v| !v.is_empty()) {
                    Some(vid) => self.version(req.user, pipeline_id, vid)?,
                    None => self
                        .versions
                        .iter()
                        .rfind(|v| v["pipeline_id"].as_str() == Some(pipeline_id))
                        .ok_or_else(|| {
                            invalid(format!(
                                "Failed to create a run: pipeline {pipeline_id} has no versions"
                            ))
                        })?,
                };
                run["pipeline_version_reference"] = json!({"pipeline_id": pipeline_id,
                    "pipeline_version_id": version["pipeline_version_id"]});
                version["pipeline_spec"].clone()
            }
            (_, s) if s.is_object() => {
                run["pipeline_spec"] = s.clone();
                s.clone()
            }
            _ => {
                return Err(invalid("Failed to create a run: a run needs a pipeline_version_reference or a pipeline_spec"));
            }
        };
        let config = &body["runtime_config"];
        let parameters = config["parameters"].as_object();
        check_parameters(&spec, parameters)
            .map_err(|m| invalid(format!("Failed to create a run: {m}")))?;
        let mut runtime_config = json!({"parameters": parameters.cloned().unwrap_or_default()});
        if let Some(root) = config["pipeline_root"].as_str().filter(|r| !r.is_empty()) {
            runtime_config["pipeline_root"] = json!(root);
        }
        run["runtime_config"] = runtime_config;
        let now = Utc::now();
        if let Some(e) = self
            .experiments
            .iter_mut()
            .find(|e| e["experiment_id"].as_str() == Some(experiment_id))
        {
            e["last_run_created_at"] = json!(timestamp(now));
        }
        let run = Run {
            body: run,
            created: Some(now),
        };
        let shown = run.render(now);
        self.runs.push(run);
        Ok(shown)
    }

    fn delete_run(&mut self, user: &TokenUser, id: &str) -> Answer {
        self.run(user, id)?;
        self.runs.retain(|r| r.body["run_id"].as_str() != Some(id));
        Ok(json!({}))
    }
}

impl Run {
    /// The run as the API shows it at `now`: state, history and times follow its age.
    fn render(&self, now: DateTime<Utc>) -> Value {
        let mut out = self.body.clone();
        let Some(created) = self.created else {
            return out;
        };
        let at = |d: Duration| created + chrono::Duration::from_std(d).unwrap_or_default();
        let mut history = vec![("PENDING", created)];
        for (state, since) in [("RUNNING", RUNNING_AFTER), ("SUCCEEDED", SUCCEEDED_AFTER)] {
            if now >= at(since) {
                history.push((state, at(since)));
            }
        }
        let (state, _) = history[history.len() - 1];
        out["created_at"] = json!(timestamp(created));
        out["scheduled_at"] = json!(timestamp(created));
        out["finished_at"] = json!(if state == "SUCCEEDED" {
            timestamp(at(SUCCEEDED_AFTER))
        } else {
            "1970-01-01T00:00:00Z".to_string()
        });
        out["state"] = json!(state);
        out["state_history"] = history
            .iter()
            .map(|(s, t)| json!({"update_time": timestamp(*t), "state": s}))
            .collect();
        out
    }
}

/// The name of an uploaded pipeline or version: `name`, else `display_name`, else the file's
/// name without its extension (as the API server's buildPipelineName).
fn upload_name(req: &WebRequest, file_name: &str) -> String {
    for key in ["name", "display_name"] {
        if let Some(n) = req.query.get(key).filter(|n| !n.is_empty()) {
            return n.clone();
        }
    }
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    base.split('.').next().unwrap_or(base).to_string()
}

/// The `uploadfile` part of a multipart upload: its file name and the pipeline spec in it.
fn uploaded_spec(req: &WebRequest) -> Result<(String, Value), Refusal> {
    let content_type = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let failed = |why: &str| invalid(format!("Failed to read pipeline from file: {why}"));
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_string())
        .ok_or_else(|| failed("the request is not multipart/form-data"))?;
    let (file_name, data) = multipart_file(req.body, &boundary, "uploadfile")
        .ok_or_else(|| failed("no uploadfile part in the form"))?;
    let lower = file_name.to_ascii_lowercase();
    if [".tar.gz", ".tgz", ".zip"]
        .iter()
        .any(|ext| lower.ends_with(ext))
    {
        return Err(invalid(format!(
            "Failed to read a pipeline spec file: {file_name}: the test cluster reads YAML or JSON pipeline files only"
        )));
    }
    let text = String::from_utf8(data)
        .map_err(|_| invalid("Failed to read a pipeline spec file: it is not UTF-8 text"))?;
    let spec = parse_pipeline_file(&text)
        .map_err(|m| invalid(format!("Failed to read a pipeline spec file: {m}")))?;
    Ok((file_name, spec))
}

/// The `field` file of a multipart/form-data body: (filename, bytes).
fn multipart_file(body: &[u8], boundary: &str, field: &str) -> Option<(String, Vec<u8>)> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        if &body[i..i + d.len()] == d {
            starts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    for pair in starts.windows(2) {
        let part = &body[pair[0] + d.len()..pair[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let split = part.windows(4).position(|w| w == b"\r\n\r\n")?;
        let headers = String::from_utf8_lossy(&part[..split]).to_string();
        let data = &part[split + 4..];
        let disposition = headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
        let param = |key: &str| {
            disposition.split(';').find_map(|p| {
                p.trim()
                    .strip_prefix(&format!("{key}="))
                    .map(|v| v.trim_matches('"').to_string())
            })
        };
        if param("name").as_deref() == Some(field) {
            return Some((param("filename").unwrap_or_default(), data.to_vec()));
        }
    }
    None
}

/// The pipeline_spec of an inline create (a PipelineVersion's `pipeline_spec`); a
/// `package_url` would need the API server to download it.
fn inline_spec(version: &Value) -> Result<Value, Refusal> {
    match &version["pipeline_spec"] {
        s if s.is_object() => {
            check_spec(pipeline_spec_of(s)).map_err(|m| invalid(format!("Failed to create a pipeline version: {m}")))?;
            Ok(s.clone())
        }
        _ if version["package_url"]["pipeline_url"].is_string() => Err(invalid(
            "Failed to create a pipeline version: the test cluster does not download package_url; upload the file (pipelines/upload_version) instead",
        )),
        _ => Err(invalid("Failed to create a pipeline version: it has neither a pipeline_spec nor a package_url")),
    }
}

/// An uploaded file as the API server stores it: the pipeline spec, or
/// `{pipeline_spec, platform_spec}` when a second YAML document (the platform spec) follows.
fn parse_pipeline_file(text: &str) -> Result<Value, String> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| format!("failed to parse pipeline spec YAML: {e}"))?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    let mut docs = docs.into_iter();
    let spec = docs.next().ok_or("the file is empty")?;
    check_spec(&spec)?;
    Ok(match docs.next() {
        Some(platform) => json!({"pipeline_spec": spec, "platform_spec": platform}),
        None => spec,
    })
}

/// The PipelineSpec inside a stored spec (see [`parse_pipeline_file`]).
fn pipeline_spec_of(stored: &Value) -> &Value {
    if stored["pipeline_spec"].is_object() {
        &stored["pipeline_spec"]
    } else {
        stored
    }
}

/// The API server's template checks on a v2 PipelineSpec.
fn check_spec(spec: &Value) -> Result<(), String> {
    if !spec.is_object() {
        return Err("unknown template format: the document is not a KFP pipeline spec".into());
    }
    let name = spec["pipelineInfo"]["name"].as_str().unwrap_or("");
    if name.is_empty() || !spec["root"].is_object() {
        return Err(
            "unknown template format: a KFP v2 pipeline spec has pipelineInfo.name and root".into(),
        );
    }
    if let Some(v) = spec["schemaVersion"].as_str().filter(|v| *v != "2.1.0") {
        return Err(format!(
            "KFP only supports schema version 2.1.0, but the pipeline spec has version {v}"
        ));
    }
    // The API server's pattern is not anchored: a name passes with one lowercase letter or digit.
    if !name
        .chars()
        .any(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err("invalid v2 pipeline spec: name should consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into());
    }
    Ok(())
}

/// The API server's validatePipelineJobInputs: each root input parameter given with the
/// right JSON type or optional/defaulted, and no parameter the pipeline does not take.
fn check_parameters(stored: &Value, given: Option<&Map<String, Value>>) -> Result<(), String> {
    let empty = Map::new();
    let declared = pipeline_spec_of(stored)["root"]["inputDefinitions"]["parameters"]
        .as_object()
        .unwrap_or(&empty);
    let given = given.unwrap_or(&empty);
    for (name, param) in declared {
        let Some(value) = given.get(name) else {
            if param["isOptional"] != json!(true) && param.get("defaultValue").is_none() {
                return Err(format!("parameter {name} is not optional, yet has neither default value nor user provided value"));
            }
            continue;
        };
        let kind = param["parameterType"]
            .as_str()
            .unwrap_or("PARAMETER_TYPE_ENUM_UNSPECIFIED");
        let fits = match kind {
            "NUMBER_DOUBLE" | "NUMBER_INTEGER" => value.is_number(),
            "STRING" => value.is_string(),
            "BOOLEAN" => value.is_boolean(),
            "LIST" => value.is_array(),
            "STRUCT" => value.is_object(),
            "TASK_FINAL_STATUS" => {
                return Err(format!("input parameter {name} requires type TASK_FINAL_STATUS, which is invalid for root component"));
            }
            "PARAMETER_TYPE_ENUM_UNSPECIFIED" => {
                return Err(format!("input parameter {name} has unspecified type"))
            }
            _ => return Err(format!("input parameter {name} requires type unknown")),
        };
        if !fits {
            let (wanted, what) = match kind {
                "NUMBER_DOUBLE" | "NUMBER_INTEGER" => ("double or integer", "number"),
                "STRING" => ("string", "string"),
                "BOOLEAN" => ("bool", "bool"),
                "LIST" => ("list", "list"),
                _ => ("struct", "struct"),
            };
            return Err(format!("input parameter {name} requires type {wanted}, but the input parameter is not of {what} value type"));
        }
    }
    let mut extra: Vec<&str> = given
        .keys()
        .filter(|k| !declared.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !extra.is_empty() {
        extra.sort_unstable();
        return Err(format!(
            "parameter(s) provided are not required by pipeline: {}",
            extra.join(", ")
        ));
    }
    Ok(())
}

/// One page of `items` under `key`, filtered and sorted as the request asks.
fn listing(req: &WebRequest, items: Vec<Value>, key: &str) -> Answer {
    let mut items = match req.query.get("filter").filter(|f| !f.is_empty()) {
        Some(f) => {
            let predicates = parse_filter(f).map_err(invalid)?;
            items
                .into_iter()
                .filter(|o| predicates.iter().all(|p| p.matches(o)))
                .collect()
        }
        None => items,
    };
    if let Some(sort) = req.query.get("sort_by").filter(|s| !s.trim().is_empty()) {
        let mut words = sort.split_whitespace();
        let field = words.next().unwrap_or("").to_string();
        let descending = words.next().is_some_and(|w| w.eq_ignore_ascii_case("desc"));
        let text = |o: &Value| match &o[field.as_str()] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        items.sort_by_key(text);
        if descending {
            items.reverse();
        }
    }
    let total = items.len();
    let size = req
        .query
        .get("page_size")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .min(MAX_PAGE_SIZE);
    let (page, next) = webapps::page(items, size, req.query.get("page_token"));
    // Proto JSON leaves out empty fields: no total_size 0, no empty list, no empty token.
    let mut body = json!({});
    if total > 0 {
        body["total_size"] = json!(total);
    }
    if !page.is_empty() {
        body[key] = json!(page);
    }
    if !next.is_empty() {
        body["next_page_token"] = json!(next);
    }
    Ok(body)
}

/// One predicate of KFP's `filter` (filter.proto as JSON, operations by name or number).
struct Predicate {
    op: String,
    key: String,
    values: Vec<Value>,
}

fn parse_filter(text: &str) -> Result<Vec<Predicate>, String> {
    let bad = |why: String| format!("failed to parse valid filter from {text:?}: {why}");
    let filter: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let ops = [
        "",
        "EQUALS",
        "NOT_EQUALS",
        "GREATER_THAN",
        "",
        "GREATER_THAN_EQUALS",
        "LESS_THAN",
        "LESS_THAN_EQUALS",
        "IN",
        "IS_SUBSTRING",
    ];
    let mut out = Vec::new();
    for p in filter["predicates"].as_array().cloned().unwrap_or_default() {
        let op = match &p["operation"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => ops
                .get(n.as_u64().unwrap_or(0) as usize)
                .copied()
                .unwrap_or("")
                .to_string(),
            _ => String::new(),
        };
        if op.is_empty() || !ops.contains(&op.as_str()) {
            return Err(bad(format!("unknown operation {}", p["operation"])));
        }
        let key = p["key"].as_str().unwrap_or("").to_string();
        let field = |snake: &str, camel: &str| p.get(snake).or_else(|| p.get(camel)).cloned();
        let values = if let Some(list) = field("string_values", "stringValues")
            .or_else(|| field("int_values", "intValues"))
            .or_else(|| field("long_values", "longValues"))
        {
            list["values"].as_array().cloned().unwrap_or_default()
        } else {
            let single = ["string_value", "int_value", "long_value", "timestamp_value"]
                .iter()
                .zip(["stringValue", "intValue", "longValue", "timestampValue"])
                .find_map(|(s, c)| field(s, c));
            vec![single.ok_or_else(|| bad(format!("predicate on {key} has no value")))?]
        };
        out.push(Predicate { op, key, values });
    }
    Ok(out)
}

impl Predicate {
    fn matches(&self, o: &Value) -> bool {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let actual = text(&o[self.key.as_str()]);
        let wanted = self.values.first().map(text).unwrap_or_default();
        match self.op.as_str() {
            "EQUALS" => actual == wanted,
            "NOT_EQUALS" => actual != wanted,
            "IN" => self.values.iter().any(|v| text(v) == actual),
            "IS_SUBSTRING" => actual.contains(&wanted),
            "GREATER_THAN" => actual > wanted,
            "GREATER_THAN_EQUALS" => actual >= wanted,
            "LESS_THAN" => actual < wanted,
            _ => actual <= wanted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "pipelineInfo:\n  name: add\nroot:\n  inputDefinitions:\n    parameters:\n      a:\n        parameterType: NUMBER_INTEGER\n      label:\n        parameterType: STRING\n        defaultValue: x\nschemaVersion: 2.1.0\n";

    #[test]
    fn parameters_are_checked_as_the_api_server_does() {
        let spec = parse_pipeline_file(SPEC).unwrap();
        let params = |v: Value| v.as_object().cloned().unwrap();
        assert!(check_parameters(&spec, Some(&params(json!({"a": 1})))).is_ok());
        let wrong = check_parameters(&spec, Some(&params(json!({"a": "1"})))).unwrap_err();
        assert!(
            wrong.contains("input parameter a requires type double or integer"),
            "{wrong}"
        );
        let missing = check_parameters(&spec, None).unwrap_err();
        assert!(missing.contains("parameter a is not optional"), "{missing}");
        let extra = check_parameters(&spec, Some(&params(json!({"a": 1, "b": 2})))).unwrap_err();
        assert!(extra.ends_with("not required by pipeline: b"), "{extra}");
    }

    #[test]
    fn pipeline_files_need_pipeline_info_and_root() {
        assert!(parse_pipeline_file("root: {}\n")
            .unwrap_err()
            .contains("pipelineInfo.name and root"));
        assert!(parse_pipeline_file("pipelineInfo: {name: ___}\nroot: {}\n")
            .unwrap_err()
            .contains("lower case"));
        let two =
            parse_pipeline_file(&format!("{SPEC}---\nplatforms: {{kubernetes: {{}}}}\n")).unwrap();
        assert_eq!(two["pipeline_spec"]["pipelineInfo"]["name"], json!("add"));
    }

    #[test]
    fn multipart_upload_is_read() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"p.yaml\"\r\nContent-Type: application/octet-stream\r\n\r\nabc\r\n--XyZ--\r\n";
        assert_eq!(
            multipart_file(body, "XyZ", "uploadfile"),
            Some(("p.yaml".into(), b"abc".to_vec()))
        );
        assert_eq!(multipart_file(body, "XyZ", "other"), None);
    }

    #[test]
    fn runs_move_through_their_states() {
        let created = Utc::now();
        let run = Run {
            body: json!({"run_id": "r"}),
            created: Some(created),
        };
        let at = |ms: i64| run.render(created + chrono::Duration::milliseconds(ms));
        assert_eq!(at(0)["state"], json!("PENDING"));
        assert_eq!(at(600)["state"], json!("RUNNING"));
        let done = at(2500);
        assert_eq!(done["state"], json!("SUCCEEDED"));
        let states: Vec<&str> = done["state_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["PENDING", "RUNNING", "SUCCEEDED"]);
    }

    #[test]
    fn filters_by_name() {
        let p = parse_filter(
            r#"{"predicates": [{"operation": 1, "key": "display_name", "stringValue": "a"}]}"#,
        )
        .unwrap();
        assert!(p[0].matches(&json!({"display_name": "a"})));
        assert!(!p[0].matches(&json!({"display_name": "b"})));
        assert!(parse_filter("{").is_err());
    }
}
