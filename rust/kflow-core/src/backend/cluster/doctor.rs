//! `kflow doctor`: which connection cluster runs would use (signed-in session, kubeconfig file
//! and context, or the pod's service account), the API server, who kflow acts as, the
//! namespace, which Kubeflow kinds the cluster serves, and whether the user may submit there. It reports names only — never a
//! token — and never fails: what goes wrong becomes its `problem`, with the fix.

use serde::Serialize;

use crate::spec::{BackendKind, Context, JobKind};

use super::access;
use super::capabilities::{self, Capabilities};
use super::connection::{self, Source};
use super::ClusterHandle;

/// The report. `backend` is where runs go when they do not choose.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Doctor {
    /// The default backend, `local` or `cluster`.
    pub backend: String,
    /// Whether any cluster connection is set up (session, kubeconfig or service account).
    pub cluster_configured: bool,
    /// The connection cluster runs would use, when one is set up.
    pub connection: Option<Connection>,
    /// The served Kubeflow job kinds, e.g. "PyTorchJob (kubeflow.org/v1)".
    pub kinds: Vec<String>,
    /// The Notebook API served (e.g. "kubeflow.org/v1"), if any.
    pub notebook: Option<String>,
    /// Whether the user may submit a job (the first served kind, with its code ConfigMaps) in
    /// the connection's namespace, by the API server's access review; None when not asked.
    pub can_submit: Option<bool>,
    /// Why the cluster could not be checked, with what to do; None when all is well.
    pub problem: Option<String>,
    /// Remarks for the user (e.g. that runs use the local backend).
    pub notes: Vec<String>,
}

/// The cluster connection in use, named only (never a token).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Connection {
    /// "session", "kubeconfig", "in-cluster" or "config".
    pub via: String,
    /// Where the connection comes from, in words (the kubeconfig and context, the session…).
    pub description: String,
    /// The API server's address.
    pub server: String,
    /// Who the cluster sees: the session's username, the kubeconfig user, the service account.
    pub user: Option<String>,
    /// The kubeconfig context in use.
    pub context: Option<String>,
    /// The kubeconfig file(s) read.
    pub files: Vec<String>,
    /// The namespace runs go to unless they name one.
    pub namespace: String,
}

impl Doctor {
    /// Exit status for `kflow doctor`: 0 unless a configured cluster could not be checked.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.problem.is_some())
    }
}

/// The Notebook API versions, newest first (Kubeflow 1.7+ serves v1, older ones v1beta1).
const NOTEBOOK_VERSIONS: [&str; 3] = [
    "kubeflow.org/v1",
    "kubeflow.org/v1beta1",
    "kubeflow.org/v1alpha1",
];

/// Whether `source` would find a connection without a session: an explicit source, a
/// kubeconfig file, or a service-account token.
fn source_available(source: &Source, env: &std::collections::BTreeMap<String, String>) -> bool {
    match source {
        Source::Auto => connection::auto_available(env),
        _ => true,
    }
}

pub fn run(handle: &ClusterHandle, ctx: &Context) -> Doctor {
    let mut doctor = probe(handle, ctx);
    // A broken config.toml or KFLOW_* value makes every `kflow run` fail: it comes first.
    if let Err(e) = ctx.settings() {
        doctor.problem = Some(match doctor.problem.take() {
            Some(other) => format!("{e}; and: {other}"),
            None => e.to_string(),
        });
    }
    doctor
}

fn probe(handle: &ClusterHandle, ctx: &Context) -> Doctor {
    let settings = ctx.settings().ok();
    let backend = settings
        .as_ref()
        .and_then(|s| s.backend)
        .unwrap_or_default();
    let mut doctor = Doctor {
        backend: backend.as_str().to_string(),
        cluster_configured: false,
        connection: None,
        kinds: Vec::new(),
        notebook: None,
        can_submit: None,
        problem: None,
        notes: Vec::new(),
    };
    let session = handle.preferred.as_ref().is_some_and(|p| p().is_some());
    if !session && !source_available(&handle.source, &handle.env) {
        doctor.notes.push(
            "no cluster configured (no `kflow login` session, no kubeconfig, not inside a pod): runs use the local backend (this machine). Fix, to use a cluster: `kflow login`, or point KUBECONFIG at your cluster's kubeconfig".into(),
        );
        if backend == BackendKind::Cluster {
            doctor.problem = Some("the configured backend is \"cluster\" but no cluster connection is set up. Fix: `kflow login`, or point KUBECONFIG at your cluster's kubeconfig".into());
        }
        return doctor;
    }
    doctor.cluster_configured = true;
    let cluster = match handle.get() {
        Ok(c) => c,
        Err(e) => {
            doctor.problem = Some(e.to_string());
            return doctor;
        }
    };
    let conn = Connection {
        via: cluster.identity.via.clone(),
        description: cluster.description.clone(),
        server: cluster.server.clone(),
        user: cluster.identity.user.clone(),
        context: cluster.identity.context.clone(),
        files: cluster.identity.files.clone(),
        namespace: cluster.namespace.clone(),
    };
    doctor.connection = Some(conn);
    if backend == BackendKind::Local {
        doctor.notes.push("runs use the local backend unless they ask for the cluster (--cluster, backend=\"cluster\", KFLOW_BACKEND=cluster, or `backend = \"cluster\"` in kflow's config.toml)".into());
    }
    // Asked afresh (not the connection's cached answer): doctor is run to see the present.
    let probed = cluster.block_on(async {
        let caps = capabilities::detect(cluster.client(), &cluster.server).await?;
        let mut notebook = None;
        for version in NOTEBOOK_VERSIONS {
            if capabilities::resources(cluster.client(), version)
                .await?
                .iter()
                .any(|r| r == "notebooks")
            {
                notebook = Some(version.to_string());
                break;
            }
        }
        Ok::<(Capabilities, Option<String>), crate::error::Error>((caps, notebook))
    });
    match probed {
        Ok((caps, notebook)) => {
            doctor.kinds = caps.served().into_iter().map(str::to_string).collect();
            doctor.notebook = notebook;
            if doctor.kinds.is_empty() {
                doctor.problem = Some(
                    crate::error::Error::Cluster(crate::error::ClusterError::OperatorMissing {
                        what: "no Kubeflow training job kind (PyTorchJob, TFJob, MPIJob)".into(),
                    })
                    .to_string(),
                );
            } else if let Some(kind) = [JobKind::PyTorchJob, JobKind::TFJob, JobKind::MPIJob]
                .into_iter()
                .find(|k| caps.require(*k).is_ok())
            {
                let ns = cluster.namespace.clone();
                match cluster.block_on(access::check(
                    cluster.client(),
                    &ns,
                    &access::submission_needs(kind),
                )) {
                    Ok(()) => doctor.can_submit = Some(true),
                    Err(e) => {
                        doctor.can_submit = Some(false);
                        doctor.problem = Some(e.to_string());
                    }
                }
            }
        }
        Err(e) => doctor.problem = Some(e.to_string()),
    }
    doctor
}
