//! One instance of a container, from start to exit: start (retrying config errors), the
//! Created/Started events and running state, then the terminated or CrashLoopBackOff state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::restart::restarts;
use super::status::with_status;
use super::supervise::{self, Waited};
use super::{name_of, ns_of, output, uid_of, Kubelet};
use crate::logs::log_file;
use crate::runtime::Runtime;
use crate::store::now_rfc3339;

#[derive(Debug)]
pub(super) struct Exit {
    pub(super) code: i64,
    oom: bool,
    started_at: String,
    finished_at: String,
}

/// Ways a container fails to start, reported as a waiting state.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("failed to start container: {0}")]
    Spawn(String),
}

pub(super) enum Outcome {
    Exited(Exit),
    Cancelled,
}

impl Kubelet {
    /// Runs one instance of a container to its end (or until the pod is deleted).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_container(
        &self,
        pod: &Value,
        c: &Value,
        rt: &Runtime,
        init: bool,
        attempt: i64,
        policy: &str,
        volumes: &[(String, PathBuf)],
        pod_dir: &Path,
        cancel: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let (ns, name, uid) = (ns_of(pod), name_of(pod), uid_of(pod));
        let cname = c["name"].as_str().unwrap_or("").to_string();
        let mut child = loop {
            match self.start_process(pod, c, rt, attempt, volumes, pod_dir) {
                Ok(child) => break child,
                Err(e) => {
                    let reason = match e {
                        StartError::Config(_) => "CreateContainerConfigError",
                        StartError::Spawn(_) => "CreateContainerError",
                    };
                    self.event(&ns, &name, "Warning", "Failed", &format!("Error: {e}"));
                    self.update_pod(&ns, &name, &uid, |p| {
                        with_status(p, init, &cname, |s| {
                            s["state"] =
                                json!({"waiting": {"reason": reason, "message": e.to_string()}})
                        });
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = cancel.changed() => return Outcome::Cancelled,
                    }
                }
            }
        };
        let started_at = now_rfc3339();
        let pid = child.id().unwrap_or(0);
        let container_id = format!("kflow://{uid}-{cname}-{attempt}");
        self.event(
            &ns,
            &name,
            "Normal",
            "Created",
            &format!("Created container {cname}"),
        );
        self.event(
            &ns,
            &name,
            "Normal",
            "Started",
            &format!("Started container {cname}"),
        );
        self.update_pod(&ns, &name, &uid, |p| {
            with_status(p, init, &cname, |s| {
                s["state"] = json!({"running": {"startedAt": started_at}});
                s["ready"] = json!(!init);
                s["started"] = json!(true);
                s["restartCount"] = json!(attempt);
                s["containerID"] = json!(container_id);
                s["imageID"] = json!(format!("kflow://{}", c["image"].as_str().unwrap_or("")));
            });
        });

        let path = log_file(&self.cfg.state_dir, &ns, &name, &cname, attempt);
        let capture = output::capture(&mut child, path);

        let limit = supervise::memory_limit(c);
        let Waited::Exited { status, oom } = supervise::wait(&mut child, pid, limit, cancel).await
        else {
            return Outcome::Cancelled;
        };
        // Orphans of the container (background jobs) die with it, as with a container's pid 1.
        supervise::kill_group(pid);
        capture.finish().await;
        let code = supervise::exit_code(status, oom);
        let exit = Exit {
            code,
            oom,
            started_at,
            finished_at: now_rfc3339(),
        };
        let reason = if exit.oom {
            "OOMKilled"
        } else if code == 0 {
            "Completed"
        } else {
            "Error"
        };
        // One write for the exit and the restart decision, so no observer ever sees a pod that
        // will restart as Failed or Succeeded.
        let restart = restarts(policy, code);
        let delay = self.backoff_delay(attempt + 1);
        self.update_pod(&ns, &name, &uid, |p| {
            with_status(p, init, &cname, |s| {
                let terminated = json!({"exitCode": exit.code, "reason": reason,
                    "startedAt": exit.started_at, "finishedAt": exit.finished_at, "containerID": s["containerID"].clone()});
                if restart {
                    s["lastState"] = json!({"terminated": terminated});
                    let msg = format!("back-off {}s restarting failed container={cname} pod={name}_{ns}({uid})", delay.as_secs().max(1));
                    s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": msg}});
                    s["restartCount"] = json!(attempt + 1);
                } else {
                    s["state"] = json!({"terminated": terminated});
                }
                s["ready"] = json!(false);
                s["started"] = json!(false);
            });
        });
        if code != 0 {
            self.event(
                &ns,
                &name,
                "Warning",
                "Failed",
                &format!("Container {cname} terminated: {reason} (exit code {code})"),
            );
        }
        Outcome::Exited(exit)
    }
}
