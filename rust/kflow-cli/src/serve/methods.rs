//! The protocol's methods, each a call into kflow-core (`docs/serve-protocol.md` lists them
//! with their params and results).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kflow_core::auth::{self, Zeroizing};
use kflow_core::{
    Error, Job, JobKind, Listed, ModelRegistry, Namespace, NotebookRequest, PageRequest, Pipelines,
    PvcRequest, RunOptions, Workspace as NotebookWorkspace,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::secrets::SecretsOverConnection;
use super::{Reply, RpcError, Server, Workspace, PROTOCOL};

/// How long a log follow waits for lines before it looks at its stop flag; lines that arrive
/// within it travel in one notification.
const LOG_BATCH: Duration = Duration::from_millis(50);
/// How long a watch waits for changes before it looks at its stop flag.
const WATCH_WAIT: Duration = Duration::from_millis(250);
/// How often the session monitor looks at the session's expiry and refresh counters (in
/// memory: no request is made).
const SESSION_LOOK: Duration = Duration::from_millis(500);

fn params<T: DeserializeOwned>(value: Value) -> Result<T, RpcError> {
    let value = if value.is_null() { json!({}) } else { value };
    serde_json::from_value(value).map_err(|e| RpcError::invalid_params(format!("params: {e}")))
}

/// The job a `{ name }` request names, handed to `act`.
fn on_job(ws: &Workspace, raw: Value, act: impl FnOnce(Job) -> kflow_core::Result<Value>) -> Reply {
    let p: NameParams = params(raw)?;
    ws.client
        .get(&p.name)
        .and_then(act)
        .map_err(|e| RpcError::from_kflow(&e, &ws.ctx))
}

fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The method's reply.
pub fn handle(server: &Arc<Server>, method: &str, raw: Value) -> Reply {
    if method == "initialize" {
        return initialize(server, raw);
    }
    let ws = server.workspace()?;
    let kflow = |e: Error| RpcError::from_kflow(&e, &ws.ctx);
    Ok(match method {
        "settings/update" => {
            let p: SettingsParams = params(raw)?;
            server.set_workspace(p.settings, ws.folder.clone())?;
            json!({ "applied": true })
        }
        "whoami" => to_json(&auth::whoami(&ws.ctx).map_err(kflow)?),
        "login" => login(server, &ws, params(raw)?)?,
        "logout" => {
            let who = auth::logout(&ws.ctx).map_err(kflow)?;
            server.session_generation.fetch_add(1, Ordering::SeqCst);
            server.set_workspace(ws.settings.clone(), ws.folder.clone())?;
            let now = auth::whoami(&ws.ctx).map_err(kflow)?;
            server.notify(
                "session/state",
                json!({ "state": "signed-out", "identity": now }),
            );
            to_json(&who)
        }
        "doctor" => to_json(&ws.client.doctor()),
        "dashboard" => {
            let p: NamespaceParams = params(raw)?;
            json!({ "url": namespace(&ws, &p.namespace)?.dashboard_url().map_err(kflow)? })
        }
        "run" => {
            let p: OptionsParams = params(raw)?;
            let job = ws.client.submit(run_options(p.options)?).map_err(kflow)?;
            let record = job.record();
            json!({
                "name": job.name(),
                "kind": record.spec.kind.as_str(),
                "backend": to_json(&record.spec.backend),
                "namespace": record.spec.namespace,
                "code_sha256": record.code_sha256,
                "replicas": job.replica_names(),
                "warnings": job.warnings(),
            })
        }
        "preview" => {
            let p: PreviewParams = params(raw)?;
            let preview = ws
                .client
                .preview(run_options(p.options)?, p.with_code)
                .map_err(kflow)?;
            json!({
                "yaml": preview.to_yaml(),
                "summary": preview.archive.summary(),
                "withheld": preview.archive.withheld,
            })
        }
        "resolve" => {
            let p: OptionsParams = params(raw)?;
            to_json(&ws.client.resolve(run_options(p.options)?).map_err(kflow)?)
        }
        "templates" => {
            let p: TemplatesParams = params(raw)?;
            let root = p.project_root.unwrap_or_else(|| ws.ctx.cwd.clone());
            let mut out = Vec::new();
            for t in ws.client.templates(Some(&root)).map_err(kflow)? {
                let options = t.options().map_err(kflow)?;
                out.push(json!({
                    "name": t.name, "path": t.path, "scope": t.scope, "options": options,
                }));
            }
            Value::Array(out)
        }
        "images" => images(&ws, params(raw)?)?,
        "job/status" => on_job(&ws, raw, |job| {
            let mut status = to_json(&job.status()?);
            status["name"] = json!(job.name());
            status["kind"] = json!(job.spec().kind.as_str());
            Ok(status)
        })?,
        "job/describe" => on_job(&ws, raw, |job| Ok(to_json(&job.describe()?)))?,
        "job/yaml" => on_job(&ws, raw, |job| Ok(json!({ "yaml": job.manifest_yaml() })))?,
        "job/cancel" => on_job(&ws, raw, |job| Ok(to_json(&job.cancel()?)))?,
        "job/delete" => on_job(&ws, raw, |job| job.delete().map(|()| Value::Null))?,
        "job/restart" => on_job(&ws, raw, |job| {
            let job = job.restart()?;
            Ok(json!({ "name": job.name(), "attempt": job.record().attempt }))
        })?,
        "list" => list(&ws, params(raw)?)?,
        "watch/start" => watch(server, &ws, params(raw)?)?,
        "watch/stop" | "logs/unfollow" => {
            let p: StopParams = params(raw)?;
            let id = p
                .watch_id
                .or(p.follow_id)
                .ok_or_else(|| RpcError::invalid_params("params: give watchId (or followId)"))?;
            json!({ "stopped": server.stop_running(id) })
        }
        "logs/follow" => follow(server, &ws, params(raw)?)?,
        "notebook/create" => {
            let p: NotebookParams = params(raw)?;
            let ns = namespace(&ws, &p.namespace)?;
            to_json(&ns.create_notebook(&p.request()?).map_err(kflow)?)
        }
        "notebook/images" => {
            let p: NamespaceParams = params(raw)?;
            to_json(&namespace(&ws, &p.namespace)?.notebook_images())
        }
        "notebook/stop" | "notebook/start" | "notebook/delete" => {
            let p: NamespacedName = params(raw)?;
            let ns = namespace(&ws, &p.namespace)?;
            match method {
                "notebook/stop" => to_json(&ns.stop_notebook(&p.name).map_err(kflow)?),
                "notebook/start" => to_json(&ns.start_notebook(&p.name).map_err(kflow)?),
                _ => {
                    ns.delete_notebook(&p.name).map_err(kflow)?;
                    Value::Null
                }
            }
        }
        "pvc/create" => {
            let p: PvcParams = params(raw)?;
            let ns = namespace(&ws, &p.namespace)?;
            let request = PvcRequest {
                name: p.name,
                size: p.size,
                storage_class: p.storage_class,
                access_mode: p.access_mode,
            };
            to_json(&ns.create_pvc(&request).map_err(kflow)?)
        }
        "pvc/delete" => {
            let p: PvcDeleteParams = params(raw)?;
            namespace(&ws, &p.namespace)?
                .delete_pvc(&p.name, p.force)
                .map_err(kflow)?;
            Value::Null
        }
        _ => return Err(RpcError::method_not_found(method)),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InitializeParams {
    #[serde(default)]
    settings: serde_json::Map<String, Value>,
    workspace_folder: Option<PathBuf>,
    secret_store: Option<String>,
    client_name: Option<String>,
}

fn initialize(server: &Arc<Server>, raw: Value) -> Reply {
    let p: InitializeParams = params(raw)?;
    match p.secret_store.as_deref() {
        None | Some("keyring") => {}
        Some("client") => {
            let name = format!(
                "{}'s secret storage",
                p.client_name.as_deref().unwrap_or("the editor")
            );
            let secrets = SecretsOverConnection(Arc::downgrade(server));
            auth::use_editor_store(name, Box::new(secrets));
            let kind = auth::SecretStore::detect().kind();
            // A second initialize keeps the first editor store; any other store was in use
            // before and stays.
            if !matches!(kind, auth::StoreKind::Editor(_)) {
                return Err(RpcError::invalid_params(format!(
                    "secretStore \"client\": this process already keeps secrets in {}",
                    kind.describe()
                )));
            }
        }
        Some(other) => {
            return Err(RpcError::invalid_params(format!(
                "secretStore: {other:?} is not \"client\" or \"keyring\""
            )))
        }
    }
    let ws = server.set_workspace(p.settings, p.workspace_folder)?;
    let who = auth::whoami(&ws.ctx).map_err(|e| RpcError::from_kflow(&e, &ws.ctx))?;
    if who.signed_in {
        monitor_session(server, &ws);
    }
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": PROTOCOL,
        "identity": who,
        "secretStore": auth::SecretStore::detect().kind().short(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsParams {
    settings: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LoginParams {
    url: Option<String>,
    api_server: Option<String>,
    username: String,
    password: String,
    #[serde(default)]
    store_password: bool,
}

fn login(server: &Arc<Server>, ws: &Workspace, p: LoginParams) -> Reply {
    let request = auth::LoginRequest {
        url: p.url,
        api_server: p.api_server,
        username: p.username,
        password: Zeroizing::new(p.password),
        store_password: p.store_password,
    };
    let who = auth::login(&ws.ctx, request).map_err(|e| RpcError::from_kflow(&e, &ws.ctx))?;
    // The client connects through the new session from now on.
    let ws = server.set_workspace(ws.settings.clone(), ws.folder.clone())?;
    server.notify(
        "session/state",
        json!({ "state": "signed-in", "identity": who }),
    );
    monitor_session(server, &ws);
    Ok(to_json(&who))
}

/// Tells the editor when the session renews itself and, once, when it can no longer.
fn monitor_session(server: &Arc<Server>, ws: &Workspace) {
    let Ok(session) = auth::session(&ws.ctx) else {
        return;
    };
    let generation = server.session_generation.fetch_add(1, Ordering::SeqCst) + 1;
    let server = Arc::clone(server);
    let ctx = ws.ctx.clone();
    std::thread::spawn(move || {
        let renewals = |s: &auth::Session| s.refresh_count() + s.relogin_count();
        let mut seen = renewals(&session);
        while server.session_generation.load(Ordering::SeqCst) == generation {
            std::thread::sleep(SESSION_LOOK);
            let now = renewals(&session);
            if now != seen {
                seen = now;
                if let Ok(who) = auth::whoami(&ctx) {
                    server.notify(
                        "session/state",
                        json!({ "state": "refreshed", "identity": who }),
                    );
                }
            } else if session.expires_at() <= auth::now_secs() {
                // The refresher gave up (no refresh token left, no stored password): one
                // notice, and the editor offers to sign in again.
                let who = auth::whoami(&ctx).ok();
                server.notify(
                    "session/state",
                    json!({ "state": "expired", "identity": who }),
                );
                return;
            }
        }
    });
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionsParams {
    options: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PreviewParams {
    options: Value,
    #[serde(default)]
    with_code: bool,
}

/// The run options, with unknown keys refused (a misspelt `gpus` must not be dropped).
fn run_options(value: Value) -> Result<RunOptions, RpcError> {
    let known = to_json(&RunOptions::default());
    if let (Some(given), Some(known)) = (value.as_object(), known.as_object()) {
        if let Some(odd) = given.keys().find(|k| !known.contains_key(*k)) {
            let mut names: Vec<&String> = known.keys().collect();
            names.sort();
            return Err(RpcError::invalid_params(format!(
                "options: unknown run option {odd:?}; the options are {}",
                names
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    serde_json::from_value(value).map_err(|e| RpcError::invalid_params(format!("options: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TemplatesParams {
    project_root: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesParams {
    kind: Option<JobKind>,
    namespace: Option<String>,
}

/// The images a run may pick: the settings' and kflow's defaults, then the deployment's
/// offered images (its spawner config, when signed in).
fn images(ws: &Workspace, p: ImagesParams) -> Reply {
    let kflow = |e: Error| RpcError::from_kflow(&e, &ws.ctx);
    let settings = ws.ctx.settings().map_err(kflow)?;
    let kind = p.kind.unwrap_or_default();
    let default = settings
        .default_image
        .clone()
        .unwrap_or_else(|| kind.default_image().to_string());
    let mut options = vec![default.clone()];
    for k in [JobKind::PyTorchJob, JobKind::TFJob, JobKind::MPIJob] {
        options.push(k.default_image().to_string());
    }
    let mut from_deployment = false;
    if let Ok(ns) = ws.client.namespace(p.namespace.as_deref()) {
        let offered = ns.notebook_images();
        if offered.from_deployment {
            from_deployment = true;
            options.extend(offered.options);
        }
    }
    let mut seen = std::collections::HashSet::new();
    options.retain(|o| seen.insert(o.clone()));
    Ok(json!({ "default": default, "options": options, "from_deployment": from_deployment }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameParams {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceParams {
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespacedName {
    name: String,
    namespace: Option<String>,
}

fn namespace(ws: &Workspace, name: &Option<String>) -> Result<Namespace, RpcError> {
    ws.client
        .namespace(name.as_deref())
        .map_err(|e| RpcError::from_kflow(&e, &ws.ctx))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    what: String,
    namespace: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
    /// For `runs`: one experiment's.
    experiment: Option<String>,
}

fn list(ws: &Workspace, p: ListParams) -> Reply {
    let kflow = |e: Error| RpcError::from_kflow(&e, &ws.ctx);
    let page = PageRequest {
        limit: p.limit,
        cursor: p.cursor,
    };
    let ns = p.namespace.as_deref();
    Ok(match p.what.as_str() {
        "pipelines" | "experiments" | "runs" => {
            let kfp = Pipelines::connect(&ws.ctx).map_err(kflow)?;
            match p.what.as_str() {
                "pipelines" => to_json(&kfp.list_pipelines(ns, &page).map_err(kflow)?),
                "experiments" => to_json(&kfp.list_experiments(ns, &page).map_err(kflow)?),
                _ => to_json(
                    &kfp.list_runs(ns, p.experiment.as_deref(), &page)
                        .map_err(kflow)?,
                ),
            }
        }
        "models" => {
            let registry = ModelRegistry::connect(&ws.ctx).map_err(kflow)?;
            to_json(&registry.list_models(&page).map_err(kflow)?)
        }
        what => {
            let listed = Listed::named(what).ok_or_else(|| bad_what(what, true))?;
            let ns = namespace(ws, &p.namespace)?;
            match listed {
                Listed::TrainingJobs => to_json(&ns.training_jobs(&page).map_err(kflow)?),
                Listed::Pvcs => to_json(&ns.pvcs(&page).map_err(kflow)?),
                Listed::ConfigMaps => to_json(&ns.config_maps(&page).map_err(kflow)?),
                Listed::Notebooks => to_json(&ns.notebooks(&page).map_err(kflow)?),
                Listed::StorageClasses => to_json(&ns.storage_classes(&page).map_err(kflow)?),
            }
        }
    })
}

fn bad_what(what: &str, listing: bool) -> RpcError {
    let known = if listing {
        "jobs, pvcs, configmaps, notebooks, storageclasses, pipelines, experiments, runs, models"
    } else {
        "jobs, pvcs, configmaps, notebooks, storageclasses"
    };
    RpcError::invalid_params(format!("what: {what:?} is not one of {known}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchParams {
    what: String,
    namespace: Option<String>,
}

fn watch(server: &Arc<Server>, ws: &Workspace, p: WatchParams) -> Reply {
    let listed = Listed::named(&p.what).ok_or_else(|| bad_what(&p.what, false))?;
    let rows = namespace(ws, &p.namespace)?
        .watch(listed)
        .map_err(|e| RpcError::from_kflow(&e, &ws.ctx))?;
    let (id, stop) = server.start_running();
    let server = Arc::clone(server);
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let changes = rows.next_changes(WATCH_WAIT);
            if !changes.is_empty() && !stop.load(Ordering::SeqCst) {
                server.notify(
                    "watch/changes",
                    json!({ "watchId": id, "changes": changes }),
                );
            }
        }
    });
    Ok(json!({ "watchId": id }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StopParams {
    watch_id: Option<u64>,
    follow_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowParams {
    name: String,
    follow: Option<bool>,
}

fn follow(server: &Arc<Server>, ws: &Workspace, p: FollowParams) -> Reply {
    let job = ws
        .client
        .get(&p.name)
        .map_err(|e| RpcError::from_kflow(&e, &ws.ctx))?;
    let replicas = job.replica_names();
    let (id, stop) = server.start_running();
    let server = Arc::clone(server);
    let ctx = ws.ctx.clone();
    let mut logs = job.logs(p.follow.unwrap_or(true));
    std::thread::spawn(move || {
        let name = job.name().to_string();
        let end = loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match logs.poll_wait(LOG_BATCH) {
                Ok(Some(lines)) if lines.is_empty() => {}
                Ok(Some(lines)) => {
                    let lines: Vec<Value> = lines
                        .iter()
                        .map(|l| {
                            json!({ "replica": l.replica, "text": l.text, "severity": l.severity() })
                        })
                        .collect();
                    server.notify(
                        "logs/lines",
                        json!({ "followId": id, "name": name, "lines": lines }),
                    );
                }
                Ok(None) => break json!({ "status": job.status().ok() }),
                Err(e) => break json!({ "error": RpcError::from_kflow(&e, &ctx).data }),
            }
        };
        let mut params = json!({ "followId": id, "name": name });
        if let (Some(params), Some(end)) = (params.as_object_mut(), end.as_object()) {
            params.extend(end.clone());
        }
        server.notify("logs/end", params);
        server.finished_running(id);
    });
    Ok(json!({ "followId": id, "replicas": replicas }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NotebookParams {
    name: String,
    namespace: Option<String>,
    image: Option<String>,
    #[serde(default)]
    custom_image: bool,
    cpu: Option<String>,
    memory: Option<String>,
    #[serde(default)]
    gpus: u32,
    gpu_vendor: Option<String>,
    /// `"none"`, or an existing PVC's name; unset: a new workspace PVC.
    workspace: Option<String>,
    workspace_size: Option<String>,
    #[serde(default)]
    data_volumes: Vec<String>,
}

impl NotebookParams {
    fn request(self) -> Result<NotebookRequest, RpcError> {
        let workspace = match (self.workspace.as_deref(), self.workspace_size) {
            (Some(_), Some(_)) => {
                return Err(RpcError::invalid_params(
                    "give workspace (an existing PVC, or \"none\") or workspaceSize (a new one), not both",
                ))
            }
            (Some("none"), None) => NotebookWorkspace::None,
            (Some(pvc), None) => NotebookWorkspace::Existing(pvc.to_string()),
            (None, size) => NotebookWorkspace::New { size },
        };
        Ok(NotebookRequest {
            name: self.name,
            image: self.image,
            custom_image: self.custom_image,
            cpu: self.cpu,
            memory: self.memory,
            gpus: self.gpus,
            gpu_vendor: self.gpu_vendor,
            workspace,
            data_volumes: self.data_volumes,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PvcParams {
    name: String,
    namespace: Option<String>,
    size: Option<String>,
    storage_class: Option<String>,
    access_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PvcDeleteParams {
    name: String,
    namespace: Option<String>,
    #[serde(default)]
    force: bool,
}
