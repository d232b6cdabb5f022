//! The whole namespace as Kubeflow users see it: every training job (kflow's or anyone's),
//! PVCs, ConfigMaps, Notebook servers and StorageClasses, listed page by page; PVCs and
//! Notebook servers made, stopped and removed; a Notebook server reached through a
//! port-forward over the API server. A [`Namespace`] comes from [`crate::Client::namespace`]
//! and shares the client's cluster connection.
//!
//! Modules: `rows` (what each listing shows), `lean` (decoding only what a row needs),
//! `listing` (the paged LISTs), `volumes` (PVCs), `notebooks` (Notebook servers),
//! `portforward` (a local port into a pod), `watch` (listings kept live).

mod lean;
mod listing;
mod notebooks;
mod portforward;
mod rows;
mod volumes;
mod watch;

use std::sync::{Arc, OnceLock};

use crate::backend::cluster::capabilities;
use crate::backend::cluster::ClusterBackend;
use crate::error::{Error, ResourceError, Result};
use crate::paging::{Page, PageRequest};

pub use notebooks::{NotebookImages, NotebookRequest, Workspace};
pub use portforward::PortForward;
pub use rows::{
    ConfigMapRow, KeySize, NotebookRow, NotebookState, PvcRow, StorageClassRow, TrainingJobRow,
};
pub use volumes::PvcRequest;
pub use watch::{Listed, Row, RowChange, RowWatch};

use listing::{JobResource, TRAINING_KINDS};

/// One namespace of the cluster, over the client's connection.
pub struct Namespace {
    backend: Arc<ClusterBackend>,
    name: String,
    /// The Kubeflow URL, when configured or signed in: the dashboard's address.
    kubeflow_url: Option<String>,
    /// `defaultPVCsize` from the settings.
    default_pvc_size: Option<String>,
    ctx: crate::Context,
    /// The signed-in session, for Kubeflow's web apps behind the gateway; read from the
    /// keyring on first use.
    session: OnceLock<Option<crate::auth::Session>>,
    served: OnceLock<Served>,
}

/// What the cluster serves of what listings read, asked once per handle.
#[derive(Debug, Clone)]
struct Served {
    jobs: Vec<JobResource>,
    /// The `apiVersion` Notebooks are served under (`kubeflow.org/v1` first), if any.
    notebooks: Option<String>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .field("connection", &self.backend.description)
            .finish()
    }
}

impl Namespace {
    pub(crate) fn new(
        backend: Arc<ClusterBackend>,
        name: String,
        ctx: crate::Context,
    ) -> Namespace {
        let settings = ctx.settings().unwrap_or_default();
        Namespace {
            backend,
            name,
            kubeflow_url: crate::auth::default_url(&ctx),
            default_pvc_size: settings.default_pvc_size,
            ctx,
            session: OnceLock::new(),
            served: OnceLock::new(),
        }
    }

    fn session(&self) -> Option<&crate::auth::Session> {
        self.session
            .get_or_init(|| crate::auth::session(&self.ctx).ok())
            .as_ref()
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn client(&self) -> &kube::Client {
        self.backend.client()
    }

    fn served(&self) -> Result<Served> {
        if let Some(s) = self.served.get() {
            return Ok(s.clone());
        }
        let client = self.client().clone();
        let found = self.backend.block_on(async move {
            let v1 = capabilities::resources(&client, "kubeflow.org/v1").await?;
            let v1beta1 = capabilities::resources(&client, "kubeflow.org/v1beta1").await?;
            let v2beta1 = capabilities::resources(&client, "kubeflow.org/v2beta1").await?;
            let mut jobs = Vec::new();
            for (plural, kind) in TRAINING_KINDS {
                for (version, served) in
                    [("kubeflow.org/v1", &v1), ("kubeflow.org/v2beta1", &v2beta1)]
                {
                    if served.iter().any(|r| r == plural) {
                        jobs.push(JobResource {
                            api_version: version.into(),
                            plural: plural.into(),
                            kind,
                        });
                    }
                }
            }
            let notebooks = [("kubeflow.org/v1", &v1), ("kubeflow.org/v1beta1", &v1beta1)]
                .into_iter()
                .find(|(_, served)| served.iter().any(|r| r == "notebooks"))
                .map(|(v, _)| v.to_string());
            Ok::<_, Error>(Served { jobs, notebooks })
        })?;
        Ok(self.served.get_or_init(|| found).clone())
    }

    /// A page of the training jobs of every kind the cluster serves (PyTorchJob, TFJob,
    /// MPIJob, XGBoostJob, PaddleJob, JAXJob), kflow's and everyone else's.
    pub fn training_jobs(&self, page: &PageRequest) -> Result<Page<TrainingJobRow>> {
        let served = self.served()?;
        self.backend.block_on(listing::training_jobs(
            self.client(),
            &self.name,
            &served.jobs,
            page,
        ))
    }

    /// A page of the PVCs, with the pods that mount each.
    pub fn pvcs(&self, page: &PageRequest) -> Result<Page<PvcRow>> {
        let ns = self.name.clone();
        self.backend.block_on(async {
            let listed: Page<listing::LeanPvc> = listing::simple_page(
                self.client(),
                &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
                "persistentvolumeclaims",
                &ns,
                page,
                |p| p,
            )
            .await?;
            let mounts = volumes::mounts(self.client(), &ns).await?;
            Ok(Page {
                items: listed.items.into_iter().map(|p| p.row(&mounts)).collect(),
                next: listed.next,
                total: listed.total,
            })
        })
    }

    /// A page of the ConfigMaps: keys with their sizes, kflow's code parts marked.
    pub fn config_maps(&self, page: &PageRequest) -> Result<Page<ConfigMapRow>> {
        self.backend.block_on(listing::simple_page(
            self.client(),
            &format!("/api/v1/namespaces/{}/configmaps", self.name),
            "configmaps",
            &self.name,
            page,
            listing::LeanConfigMap::row,
        ))
    }

    /// A page of the Notebook servers.
    pub fn notebooks(&self, page: &PageRequest) -> Result<Page<NotebookRow>> {
        let version = self.notebook_version()?;
        let ns = self.name.clone();
        self.backend.block_on(listing::simple_page(
            self.client(),
            &format!("/apis/{version}/namespaces/{ns}/notebooks"),
            "notebooks",
            &ns,
            page,
            |n: listing::LeanNotebook| n.row(&ns),
        ))
    }

    /// A page of the cluster's StorageClasses (the default one marked).
    pub fn storage_classes(&self, page: &PageRequest) -> Result<Page<StorageClassRow>> {
        self.backend.block_on(listing::simple_page(
            self.client(),
            "/apis/storage.k8s.io/v1/storageclasses",
            "storageclasses",
            "",
            page,
            listing::LeanStorageClass::row,
        ))
    }

    /// The Notebook API version, or the error every Notebook call gives when the controller
    /// is not installed.
    fn notebook_version(&self) -> Result<String> {
        self.served()?.notebooks.ok_or_else(|| {
            Error::Resource(ResourceError::NotInstalled {
                what: "the Kubeflow Notebook controller".into(),
                evidence: "the cluster serves no kubeflow.org notebooks (v1 or v1beta1)".into(),
                fix: "ask the cluster admin to install Kubeflow's notebook-controller, or run the code as a training job (`kflow run`)".into(),
            })
        })
    }

    /// The Kubeflow URL of a page of the central dashboard, for this namespace.
    pub fn dashboard_url(&self) -> Result<String> {
        let base = self.kubeflow_url.clone().ok_or_else(|| {
            Error::invalid(
                "url",
                "",
                "kflow does not know this deployment's Kubeflow URL",
                "sign in with `kflow login --url https://KUBEFLOW`, or set `url = \"https://KUBEFLOW\"` in kflow's config.toml (KFLOW_URL)",
            )
        })?;
        Ok(format!("{}/?ns={}", base.trim_end_matches('/'), self.name))
    }
}
