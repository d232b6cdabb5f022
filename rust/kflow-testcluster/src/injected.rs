//! What the kubelet (and the MPI operators' images) add to a container beyond its spec: the
//! service-account files; the real kubectl at /opt/kube/kubectl in MPI launchers (what v1's
//! kubectl-delivery init container puts there), which their `kubexec.sh` rsh agent and the
//! `mpirun` stand-in call; and, in mpi-operator v2 workers on a machine without OpenSSH, an
//! `sshd` that only keeps the worker alive (the stand-in `mpirun` reaches workers through
//! kubectl exec, not ssh).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::resources;
use crate::runtime::Mount;
use crate::serviceaccount::{self, TokenIssuer};
use crate::store::Store;

pub const KUBECTL_PATH: &str = "/opt/kube/kubectl";
const SSHD_PATH: &str = "/usr/sbin/sshd";
const SSHD_STANDIN: &str = "#!/bin/sh\n# kflow-testcluster: no ssh here; mpirun uses kubectl exec. Serve nothing, stay up.\nexec sleep infinity\n";

pub struct Injector {
    pub tokens: Arc<TokenIssuer>,
    /// The API server's CA (the pods' ca.crt); None when it serves plain HTTP.
    pub ca_pem: Option<String>,
    pub kubectl: Option<PathBuf>,
}

/// Whether a pod is an MPIJob launcher (training operator v1 or mpi-operator v2beta1).
pub fn is_mpi_launcher(pod: &Value) -> bool {
    let labels = &pod["metadata"]["labels"];
    let operator = labels["training.kubeflow.org/operator-name"].as_str();
    matches!(operator, Some("mpijob-controller" | "mpi-operator"))
        && (labels["training.kubeflow.org/replica-type"] == "launcher"
            || labels["training.kubeflow.org/job-role"] == "launcher")
}

fn is_mpi_v2_worker(pod: &Value) -> bool {
    let labels = &pod["metadata"]["labels"];
    labels["training.kubeflow.org/operator-name"] == "mpi-operator"
        && labels["training.kubeflow.org/job-role"] == "worker"
}

/// Inside the sandbox /run is private and /var/run usually links to it; a bind must name the
/// real directory for bubblewrap to create it there.
fn sandbox_target(path: &str) -> String {
    match std::fs::canonicalize("/var/run") {
        Ok(run) if run == Path::new("/run") => path.replacen("/var/run/", "/run/", 1),
        _ => path.to_string(),
    }
}

impl Injector {
    /// Mounts for every container of `pod`; their sources are written under `pod_dir`.
    pub fn mounts(
        &self,
        store: &Store,
        pod: &Value,
        pod_dir: &Path,
    ) -> std::io::Result<Vec<Mount>> {
        let mut out = Vec::new();
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let account = serviceaccount::account_name(pod);
        let sa_type = resources::find("", "v1", "serviceaccounts").expect("served");
        let sa = store.get(sa_type, ns, &account);
        if serviceaccount::automount(pod, sa.as_ref()) {
            let token = self.tokens.issue(ns, &account);
            let dir = serviceaccount::write_files(
                &pod_dir.join("serviceaccount"),
                &token,
                self.ca_pem.as_deref(),
                ns,
            )?;
            out.push(Mount {
                source: dir,
                target: sandbox_target(serviceaccount::MOUNT_PATH),
                read_only: true,
            });
        }
        if let (Some(k), true) = (&self.kubectl, is_mpi_launcher(pod)) {
            out.push(Mount {
                source: k.clone(),
                target: KUBECTL_PATH.into(),
                read_only: true,
            });
        }
        if is_mpi_v2_worker(pod) && !Path::new(SSHD_PATH).exists() {
            use std::os::unix::fs::PermissionsExt;
            let sshd = pod_dir.join("sshd");
            std::fs::write(&sshd, SSHD_STANDIN)?;
            std::fs::set_permissions(&sshd, std::fs::Permissions::from_mode(0o755))?;
            out.push(Mount {
                source: sshd,
                target: SSHD_PATH.into(),
                read_only: true,
            });
        }
        Ok(out)
    }
}
