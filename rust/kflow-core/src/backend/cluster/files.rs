//! A command in a replica's container and copies out of it, through the API server's
//! `pods/exec` (WebSocket), as `kubectl exec` and `kubectl cp` do: a copy is `tar` in the
//! container, unpacked here while it streams, so its size is bounded by neither memory nor the
//! 1 MiB a ConfigMap holds.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess, ListParams};
use tokio::io::AsyncReadExt;

use crate::backend::files::{output_text, unpack_tar, CopiedFiles, ExecOutput, EXEC_OUTPUT_LIMIT};
use crate::error::{Error, JobError, Result};
use crate::records::RunRecord;

use super::api_errors::api_error;
use super::retry::retry;
use super::status::{main_container, replica_name};
use super::{pod_selector, tracking, ClusterBackend};

/// The replica's pod and its main container, once it runs.
async fn running_pod(
    pods: &Api<Pod>,
    ns: &str,
    record: &RunRecord,
    replica: &str,
) -> Result<(String, String)> {
    let name = &record.spec.name;
    let lp = ListParams::default().labels(&pod_selector(name, &record.spec.run_id));
    let list = retry(|| pods.list(&lp))
        .await
        .map_err(|e| api_error(e, "list", "pods", ns))?;
    let not_running = |phase: &str| {
        Error::Job(JobError::ReplicaNotRunning {
            name: name.clone(),
            replica: replica.to_string(),
            phase: phase.to_string(),
        })
    };
    let pod = list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find(|p| replica_name(p).as_deref() == Some(replica))
        .ok_or_else(|| not_running("without a pod"))?;
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    if phase != "Running" {
        return Err(not_running(&phase));
    }
    let container = main_container(&pod).unwrap_or_default();
    Ok((pod.metadata.name.unwrap_or_default(), container))
}

/// A container to run commands in, and the names its failures are told under.
pub(crate) struct ExecTarget {
    pub pods: Api<Pod>,
    pub pod: String,
    pub container: String,
    /// The job (or schedule) and replica (or helper) the container belongs to.
    pub owner: String,
    pub replica: String,
}

impl ExecTarget {
    fn error(&self, command: &str, problem: String) -> Error {
        Error::Job(JobError::Exec {
            name: self.owner.clone(),
            replica: self.replica.clone(),
            command: command.to_string(),
            problem,
        })
    }

    /// Starts `argv` in the container; stdin closed.
    async fn start(&self, argv: &[String]) -> Result<AttachedProcess> {
        let ap = AttachParams::default()
            .container(self.container.clone())
            .stdin(false)
            .stdout(true)
            .stderr(true)
            .max_stdout_buf_size(1024 * 1024)
            .max_stderr_buf_size(64 * 1024);
        self.pods
            .exec(&self.pod, argv.to_vec(), &ap)
            .await
            .map_err(|e| self.error(&argv[0], e.to_string()))
    }

    /// Runs `argv` to its end; its output capped at [`EXEC_OUTPUT_LIMIT`] per stream.
    pub async fn exec(&self, argv: &[String]) -> Result<ExecOutput> {
        let mut process = self.start(argv).await?;
        let (stdout, stderr) =
            tokio::join!(read_capped(process.stdout()), read_capped(process.stderr()));
        let code = exit_code(&mut process).await;
        let _ = process.join().await;
        let exit_code = code.ok_or_else(|| {
            self.error(
                &argv[0],
                "the stream ended without the command's exit status".into(),
            )
        })?;
        Ok(ExecOutput {
            exit_code,
            stdout: output_text(stdout),
            stderr: output_text(stderr),
        })
    }

    /// The folder `path` in the container, unpacked into `dest` while it streams.
    pub async fn copy_from(&self, path: &str, dest: &std::path::Path) -> Result<CopiedFiles> {
        // `--` ends tar's options, so a path starting with `-` stays a path.
        let argv: Vec<String> = ["tar", "-cf", "-", "-C", path, "--", "."]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let what = format!("copying {path}");
        let mut process = self.start(&argv).await?;
        let stdout = process
            .stdout()
            .ok_or_else(|| self.error(&what, "no output stream".into()))?;
        let stderr = read_capped(process.stderr());
        let dest = dest.to_path_buf();
        let bridge = tokio_util::io::SyncIoBridge::new(stdout);
        let unpack = tokio::task::spawn_blocking(move || unpack_tar(bridge, &dest));
        let (unpacked, stderr) = tokio::join!(unpack, stderr);
        let code = exit_code(&mut process).await;
        let _ = process.join().await;
        let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
        let problem = match (code, unpacked) {
            (Some(0), Ok(Ok(copied))) => return Ok(copied),
            (Some(code), _) if code != 0 => format!("tar exited with {code}: {stderr}"),
            (_, Ok(Err(e))) => format!("unpacking here: {e}"),
            (_, Err(e)) => e.to_string(),
            (_, Ok(Ok(_))) => {
                "the stream ended before tar did (the pod stopped or the connection dropped)".into()
            }
        };
        Err(self.error(&what, problem))
    }
}

/// The replica's running container.
async fn replica_target(
    backend: &ClusterBackend,
    record: &RunRecord,
    replica: &str,
) -> Result<ExecTarget> {
    let (_, ns) = tracking::jobs_api(backend, record);
    let pods: Api<Pod> = Api::namespaced(backend.client().clone(), &ns);
    let (pod, container) = running_pod(&pods, &ns, record, replica).await?;
    Ok(ExecTarget {
        pods,
        pod,
        container,
        owner: record.spec.name.clone(),
        replica: replica.to_string(),
    })
}

/// The pods API and the name of a replica's running pod (for a port-forward to it).
pub(crate) fn replica_pod(
    backend: &ClusterBackend,
    record: &RunRecord,
    replica: &str,
) -> Result<(Api<Pod>, String)> {
    backend.block_on(async {
        let target = replica_target(backend, record, replica).await?;
        Ok((target.pods, target.pod))
    })
}

/// The command's exit code from the Status the API server ends the stream with.
async fn exit_code(process: &mut AttachedProcess) -> Option<i32> {
    let status = process.take_status()?.await?;
    if status.status.as_deref() == Some("Success") {
        return Some(0);
    }
    status
        .details
        .and_then(|d| d.causes)
        .into_iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message?.parse().ok())
}

async fn read_capped(reader: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(r) = reader {
        let _ = r.take(EXEC_OUTPUT_LIMIT as u64).read_to_end(&mut out).await;
    }
    out
}

pub(super) fn exec(
    backend: &ClusterBackend,
    record: &RunRecord,
    replica: &str,
    argv: &[String],
) -> Result<ExecOutput> {
    backend.block_on(async {
        replica_target(backend, record, replica)
            .await?
            .exec(argv)
            .await
    })
}

pub(super) fn copy_from(
    backend: &ClusterBackend,
    record: &RunRecord,
    replica: &str,
    path: &str,
    dest: &std::path::Path,
) -> Result<CopiedFiles> {
    backend.block_on(async {
        replica_target(backend, record, replica)
            .await?
            .copy_from(path, dest)
            .await
    })
}
