//! Kubeflow Notebook servers: made the way Kubeflow's notebook web app makes them (a
//! `Notebook` whose pod template holds one container, its workspace and data volumes), waited
//! for with the reason when they cannot start, stopped and started with Kubeflow's stop
//! annotation, and deleted (their volumes stay, as in Kubeflow).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::backend::cluster::api_errors::{api_error, status_code};
use crate::backend::cluster::retry::retry;
use crate::error::{Error, ResourceError, Result};
use crate::spec::validate;

use super::lean::LeanObject;
use super::listing::{LeanNotebook, GPU_RESOURCES, STOP_ANNOTATION};
use super::rows::{NotebookRow, NotebookState};
use super::volumes::{self, PvcRequest};
use super::Namespace;

/// Kubeflow's notebook images (v1.10), offered when the deployment's spawner config cannot be
/// read (not signed in, or no notebook web app).
pub const DEFAULT_IMAGES: [&str; 5] = [
    "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-scipy:v1.10.0",
    "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-pytorch-full:v1.10.0",
    "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-pytorch-cuda-full:v1.10.0",
    "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-tensorflow-full:v1.10.0",
    "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-tensorflow-cuda-full:v1.10.0",
];

/// The port Kubeflow's notebook images serve Jupyter on.
pub const NOTEBOOK_PORT: u16 = 8888;

/// Where the server's home folder lives.
const HOME: &str = "/home/jovyan";

/// The images a Notebook server may be made from.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct NotebookImages {
    /// The image used when none is asked for.
    pub default: String,
    /// Every image offered.
    pub options: Vec<String>,
    /// Whether the list is the deployment's own (its spawner config) rather than kflow's
    /// default list.
    pub from_deployment: bool,
}

/// The workspace volume mounted at the server's home folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Workspace {
    /// A new PVC `<name>-workspace` of this size (`None`: `defaultPVCsize`, else 10Gi).
    New {
        /// Its size, a Kubernetes quantity.
        size: Option<String>,
    },
    /// An existing PVC.
    Existing(String),
    /// No workspace: the home folder is lost when the server stops.
    None,
}

/// A Notebook server to create.
#[derive(Debug, Clone)]
pub struct NotebookRequest {
    /// The server's name.
    pub name: String,
    /// An offered image, by its full name or its short one (`jupyter-scipy`); `None`: the
    /// default image.
    pub image: Option<String>,
    /// Take `image` as it is, even when the deployment does not offer it.
    pub custom_image: bool,
    /// CPU request (`None`: 0.5).
    pub cpu: Option<String>,
    /// Memory request (`None`: 1Gi).
    pub memory: Option<String>,
    /// GPUs.
    pub gpus: u32,
    /// The GPU resource (`None`: `nvidia.com/gpu`).
    pub gpu_vendor: Option<String>,
    /// The home folder's volume.
    pub workspace: Workspace,
    /// Existing PVCs mounted under the home folder, each at `/home/jovyan/<name>`.
    pub data_volumes: Vec<String>,
}

impl NotebookRequest {
    /// A request for a server with the defaults: the default image, 0.5 CPU, 1Gi, no GPU, a
    /// new workspace.
    pub fn named(name: &str) -> NotebookRequest {
        NotebookRequest {
            name: name.to_string(),
            image: None,
            custom_image: false,
            cpu: None,
            memory: None,
            gpus: 0,
            gpu_vendor: None,
            workspace: Workspace::New { size: None },
            data_volumes: Vec::new(),
        }
    }
}

/// The workspace PVC a new server gets.
pub fn workspace_name(notebook: &str) -> String {
    format!("{notebook}-workspace")
}

impl Namespace {
    fn notebook_api(&self) -> Result<Api<DynamicObject>> {
        let version = self.notebook_version()?;
        let (group, v) = version.split_once('/').unwrap_or(("kubeflow.org", "v1"));
        let ar = ApiResource {
            group: group.into(),
            version: v.into(),
            api_version: version.clone(),
            kind: "Notebook".into(),
            plural: "notebooks".into(),
        };
        Ok(Api::namespaced_with(self.client().clone(), &self.name, &ar))
    }

    fn no_notebook(&self, name: &str) -> Error {
        Error::Resource(ResourceError::NotFound {
            kind: "Notebook server",
            name: name.to_string(),
            namespace: self.name.clone(),
            fix: "`kflow notebook list` lists the Notebook servers of the namespace".into(),
        })
    }

    /// The images the deployment's notebook spawner offers (its config, read through the
    /// gateway when signed in), else Kubeflow's default images.
    pub fn notebook_images(&self) -> NotebookImages {
        let from_spawner = self.session().and_then(spawner_config).and_then(|config| {
            let image = &config["config"]["image"];
            let options: Vec<String> = image["options"]
                .as_array()?
                .iter()
                .filter_map(|o| o.as_str().map(String::from))
                .collect();
            let default = image["value"]
                .as_str()
                .map(String::from)
                .or_else(|| options.first().cloned())?;
            Some(NotebookImages {
                default,
                options,
                from_deployment: true,
            })
        });
        from_spawner.unwrap_or_else(|| NotebookImages {
            default: DEFAULT_IMAGES[0].to_string(),
            options: DEFAULT_IMAGES.iter().map(|s| s.to_string()).collect(),
            from_deployment: false,
        })
    }

    /// The full image for a request: an offered one (by full or short name), or with
    /// `custom` any valid image reference.
    fn pick_image(&self, asked: Option<&str>, custom: bool) -> Result<String> {
        let images = self.notebook_images();
        let Some(asked) = asked else {
            return Ok(images.default);
        };
        if let Some(found) = images.options.iter().find(|o| {
            *o == asked
                || short_image(o) == asked
                || short_image(o).split(':').next() == Some(asked)
        }) {
            return Ok(found.clone());
        }
        validate::image(asked)?;
        if custom {
            return Ok(asked.to_string());
        }
        let offered: Vec<&str> = images.options.iter().map(|o| short_image(o)).collect();
        Err(Error::invalid(
            "image",
            asked,
            if images.from_deployment {
                "this deployment's notebook spawner does not offer that image"
            } else {
                "not one of Kubeflow's notebook images"
            },
            format!(
                "use one of: {} — or pass --custom-image (custom_image=True) to use it anyway",
                offered.join(", ")
            ),
        ))
    }

    /// Creates a Notebook server (and its new workspace PVC). Every value and every volume
    /// is checked first; if the server cannot be created, a workspace made for it is removed.
    pub fn create_notebook(&self, request: &NotebookRequest) -> Result<NotebookRow> {
        let api = self.notebook_api()?;
        volumes::object_name("Notebook server name", &request.name)?;
        let image = self.pick_image(request.image.as_deref(), request.custom_image)?;
        let cpu = request.cpu.clone().unwrap_or_else(|| "0.5".into());
        validate::cpu(&cpu)?;
        let memory = request.memory.clone().unwrap_or_else(|| "1Gi".into());
        validate::memory("memory", &memory)?;
        let vendor = request
            .gpu_vendor
            .clone()
            .unwrap_or_else(|| GPU_RESOURCES[0].to_string());
        if !GPU_RESOURCES.contains(&vendor.as_str()) {
            return Err(Error::invalid(
                "GPU vendor",
                vendor,
                "not a GPU resource Kubeflow's spawner offers",
                format!("use one of: {}", GPU_RESOURCES.join(", ")),
            ));
        }
        if request.gpus > 16 {
            return Err(Error::invalid(
                "GPUs",
                request.gpus.to_string(),
                "more GPUs than any node has",
                "ask for at most 16 (most nodes have 8)",
            ));
        }
        let name = &request.name;
        if self
            .backend
            .block_on(retry(|| api.get_opt(name)))
            .map_err(|e| api_error(e, "get", "notebooks", &self.name))?
            .is_some()
        {
            return Err(Error::Resource(ResourceError::Exists {
                kind: "Notebook server",
                name: name.clone(),
                namespace: self.name.clone(),
            }));
        }
        let mut claims: Vec<(String, String, String)> = Vec::new(); // (volume, claim, mount)
        let mut new_workspace = None;
        match &request.workspace {
            Workspace::New { size } => {
                let pvc = PvcRequest {
                    name: workspace_name(name),
                    size: size.clone(),
                    storage_class: None,
                    access_mode: None,
                };
                let size = pvc
                    .size
                    .as_deref()
                    .or(self.default_pvc_size.as_deref())
                    .unwrap_or(volumes::DEFAULT_PVC_SIZE);
                volumes::storage_size("workspace size", size)?;
                if self.pvc_exists(&pvc.name)? {
                    return Err(Error::invalid(
                        "workspace",
                        &pvc.name,
                        "a PVC of that name already exists",
                        format!(
                            "reuse it (--workspace {0}), or delete it first (`kflow pvc delete {0}`)",
                            pvc.name
                        ),
                    ));
                }
                claims.push(("workspace".into(), pvc.name.clone(), HOME.into()));
                new_workspace = Some(pvc);
            }
            Workspace::Existing(claim) => {
                if !self.pvc_exists(claim)? {
                    return Err(self.no_pvc(claim));
                }
                claims.push(("workspace".into(), claim.clone(), HOME.into()));
            }
            Workspace::None => {}
        }
        for (i, claim) in request.data_volumes.iter().enumerate() {
            if !self.pvc_exists(claim)? {
                return Err(self.no_pvc(claim));
            }
            claims.push((
                format!("data-{i}"),
                claim.clone(),
                format!("{HOME}/{claim}"),
            ));
        }
        let plan = Resolved {
            api_version: self.notebook_version()?,
            image,
            cpu,
            memory,
            gpu_vendor: vendor,
            claims,
            service_account: self.editor_service_account()?,
        };
        let notebook = notebook_manifest(request, &plan);
        if let Some(pvc) = &new_workspace {
            self.create_pvc(pvc)?;
        }
        let object: DynamicObject = serde_json::from_value(notebook).map_err(|e| {
            Error::invalid("notebook", name, e.to_string(), "report this kflow bug")
        })?;
        let created = self
            .backend
            .block_on(api.create(&PostParams::default(), &object));
        match created {
            Ok(nb) => Ok(row_of(nb, &self.name)),
            Err(e) => {
                if let Some(pvc) = &new_workspace {
                    let _ = self.delete_pvc(&pvc.name, true);
                }
                Err(api_error(e, "create", "notebooks", &self.name))
            }
        }
    }

    /// Kubeflow profiles give each namespace a `default-editor` service account, which
    /// notebook pods run as so they can use the namespace's APIs; other clusters get the
    /// namespace's default one.
    fn editor_service_account(&self) -> Result<Option<&'static str>> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client().clone(), &self.name);
        match self.backend.block_on(api.get_opt("default-editor")) {
            Ok(found) => Ok(found.map(|_| "default-editor")),
            Err(e) if status_code(&e) == Some(403) => Ok(None),
            Err(e) => Err(api_error(e, "get", "serviceaccounts", &self.name)),
        }
    }

    /// One Notebook server.
    pub fn notebook(&self, name: &str) -> Result<NotebookRow> {
        let api = self.notebook_api()?;
        let found = self
            .backend
            .block_on(retry(|| api.get_opt(name)))
            .map_err(|e| api_error(e, "get", "notebooks", &self.name))?;
        found
            .map(|nb| row_of(nb, &self.name))
            .ok_or_else(|| self.no_notebook(name))
    }

    /// Waits until the server is Ready; `on_change` hears each new state. A server that
    /// cannot start (image pull, unschedulable) ends the wait at once with the reason.
    pub fn wait_notebook(
        &self,
        name: &str,
        timeout: Duration,
        on_change: &mut dyn FnMut(&NotebookRow),
    ) -> Result<NotebookRow> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<(NotebookState, Option<String>)> = None;
        loop {
            let row = self.notebook(name)?;
            let now = (row.state, row.reason.clone());
            if last.as_ref() != Some(&now) {
                on_change(&row);
                last = Some(now);
            }
            match row.state {
                NotebookState::Ready => return Ok(row),
                NotebookState::Error => {
                    let reason = row.reason.clone().unwrap_or_else(|| "unknown".into());
                    return Err(Error::Resource(ResourceError::Stuck {
                        what: "Notebook server",
                        fix: stuck_fix(&reason),
                        name: name.to_string(),
                        reason,
                    }));
                }
                NotebookState::Stopped => {
                    return Err(Error::Resource(ResourceError::Stuck {
                        what: "Notebook server",
                        name: name.to_string(),
                        reason: "it is stopped".into(),
                        fix: format!("start it first: `kflow notebook start {name}`"),
                    }))
                }
                NotebookState::Starting => {}
            }
            if Instant::now() >= deadline {
                return Err(Error::Resource(ResourceError::NotReady {
                    name: name.to_string(),
                    seconds: timeout.as_secs(),
                    state: row.reason.unwrap_or_else(|| row.state.as_str().to_string()),
                }));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops the server (Kubeflow's stop annotation: its pod goes, its volumes stay).
    pub fn stop_notebook(&self, name: &str) -> Result<NotebookRow> {
        let stamp = crate::records::now();
        self.annotate_notebook(name, json!({ STOP_ANNOTATION: stamp }))
    }

    /// Starts a stopped server again.
    pub fn start_notebook(&self, name: &str) -> Result<NotebookRow> {
        self.annotate_notebook(name, json!({ STOP_ANNOTATION: Value::Null }))
    }

    fn annotate_notebook(&self, name: &str, annotations: Value) -> Result<NotebookRow> {
        let api = self.notebook_api()?;
        let patch = json!({"metadata": {"annotations": annotations}});
        match self
            .backend
            .block_on(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)))
        {
            Ok(nb) => Ok(row_of(nb, &self.name)),
            Err(e) if status_code(&e) == Some(404) => Err(self.no_notebook(name)),
            Err(e) => Err(api_error(e, "patch", "notebooks", &self.name)),
        }
    }

    /// Deletes the server; its workspace and data PVCs stay (delete them with `delete_pvc`).
    pub fn delete_notebook(&self, name: &str) -> Result<()> {
        let api = self.notebook_api()?;
        match self
            .backend
            .block_on(api.delete(name, &DeleteParams::background()))
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Err(self.no_notebook(name)),
            Err(e) => Err(api_error(e, "delete", "notebooks", &self.name)),
        }
    }
}

/// The notebook web app's spawner config (`/jupyter/api/config` behind the gateway), when the
/// deployment has one and lets the user read it.
fn spawner_config(session: &crate::auth::Session) -> Option<Value> {
    let session = session.clone();
    crate::auth::run(async move {
        let request = session
            .gateway_request(reqwest::Method::GET, "/jupyter/api/config", false)
            .await
            .ok()?;
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json::<Value>().await.ok()
    })
}

/// What to change for a server that cannot start, by its reason.
fn stuck_fix(reason: &str) -> String {
    if reason.contains("Image") || reason.contains("ErrImage") {
        "pick an image the deployment offers (`kflow notebook images`), check its name and tag, or ask the admin for pull access".into()
    } else if reason.contains("Unschedulable") {
        "ask for fewer GPUs, CPUs or memory (no node has what it asks for), or ask the admin for capacity".into()
    } else {
        "see its pod's events: `kubectl describe pod NAME-0`".into()
    }
}

/// `ghcr.io/kubeflow/…/jupyter-scipy:v1.10.0` -> `jupyter-scipy:v1.10.0`.
fn short_image(image: &str) -> &str {
    image.rsplit('/').next().unwrap_or(image)
}

fn row_of(nb: DynamicObject, namespace: &str) -> NotebookRow {
    let value = serde_json::to_value(&nb).unwrap_or_default();
    serde_json::from_value::<LeanNotebook>(value.clone())
        .unwrap_or_else(|_| LeanNotebook::from_odd(&value))
        .row(namespace)
}

/// A request's values once checked and defaulted.
struct Resolved {
    api_version: String,
    image: String,
    cpu: String,
    memory: String,
    gpu_vendor: String,
    /// (volume name, claim, mount path) of each volume.
    claims: Vec<(String, String, String)>,
    service_account: Option<&'static str>,
}

/// The Notebook as Kubeflow's notebook web app writes it.
fn notebook_manifest(request: &NotebookRequest, plan: &Resolved) -> Value {
    let Resolved {
        api_version,
        image,
        cpu,
        memory,
        gpu_vendor,
        claims,
        service_account,
    } = plan;
    let name = &request.name;
    let mut limits = BTreeMap::from([("memory".to_string(), memory.clone())]);
    if request.gpus > 0 {
        limits.insert(gpu_vendor.clone(), request.gpus.to_string());
    }
    let mounts: Vec<Value> = claims
        .iter()
        .map(|(volume, _, path)| json!({"name": volume, "mountPath": path}))
        .collect();
    let volumes: Vec<Value> = claims
        .iter()
        .map(|(volume, claim, _)| json!({"name": volume, "persistentVolumeClaim": {"claimName": claim}}))
        .collect();
    let mut pod = json!({
        "containers": [{
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits},
            "volumeMounts": mounts,
            "ports": [{"name": "notebook-port", "containerPort": NOTEBOOK_PORT, "protocol": "TCP"}],
        }],
        "volumes": volumes,
    });
    if let Some(sa) = service_account {
        pod["serviceAccountName"] = json!(sa);
    }
    json!({
        "apiVersion": api_version,
        "kind": "Notebook",
        "metadata": {
            "name": name,
            "labels": {"app": name, crate::manifest::MANAGED_BY: "kflow"},
            "annotations": {"notebooks.kubeflow.org/server-type": "jupyter"},
        },
        "spec": {"template": {"spec": pod}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_like_the_web_app() {
        let mut req = NotebookRequest::named("lab");
        req.gpus = 2;
        let claims = vec![
            (
                "workspace".to_string(),
                "lab-workspace".to_string(),
                HOME.to_string(),
            ),
            (
                "data-0".to_string(),
                "data".to_string(),
                format!("{HOME}/data"),
            ),
        ];
        let plan = Resolved {
            api_version: "kubeflow.org/v1".into(),
            image: DEFAULT_IMAGES[0].into(),
            cpu: "1".into(),
            memory: "2Gi".into(),
            gpu_vendor: "nvidia.com/gpu".into(),
            claims,
            service_account: Some("default-editor"),
        };
        let nb = notebook_manifest(&req, &plan);
        let c = &nb["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "2");
        assert_eq!(c["volumeMounts"][1]["mountPath"], "/home/jovyan/data");
        assert_eq!(
            nb["spec"]["template"]["spec"]["serviceAccountName"],
            "default-editor"
        );
        assert_eq!(short_image(DEFAULT_IMAGES[0]), "jupyter-scipy:v1.10.0");
    }
}
