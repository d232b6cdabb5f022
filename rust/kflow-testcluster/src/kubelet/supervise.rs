//! Watching a running container process until it ends: its own exit, the pod's deletion, or
//! its memory limit. The limit is enforced by polling the process tree's RSS rather than with
//! cgroups, so the cluster needs no privileges; going over it is reported as OOMKilled.

use std::process::ExitStatus;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Child;
use tokio::sync::watch;

use crate::runtime;

pub(super) enum Waited {
    /// `status` is None when waiting on the child failed; `oom` when it was killed over its
    /// memory limit.
    Exited {
        status: Option<ExitStatus>,
        oom: bool,
    },
    /// The pod was deleted; the process group is already killed and reaped.
    Cancelled,
}

/// The container's memory limit in bytes: a quantity (`512Mi`) or a bare number.
pub(super) fn memory_limit(c: &Value) -> Option<u64> {
    c["resources"]["limits"]["memory"]
        .as_str()
        .and_then(runtime::parse_quantity)
        .or_else(|| c["resources"]["limits"]["memory"].as_u64())
}

/// Waits for the container's process (pid `pid`, leader of its own group) to exit, killing the
/// group when the pod is deleted or the tree's RSS goes over `limit`.
pub(super) async fn wait(
    child: &mut Child,
    pid: u32,
    limit: Option<u64>,
    cancel: &mut watch::Receiver<bool>,
) -> Waited {
    let mut oom = false;
    let mut mem_tick = tokio::time::interval(Duration::from_millis(50));
    let status = loop {
        tokio::select! {
            st = child.wait() => break st.ok(),
            _ = cancel.changed() => {
                kill_group(pid);
                let _ = child.wait().await;
                return Waited::Cancelled;
            }
            _ = mem_tick.tick(), if limit.is_some() => {
                if runtime::tree_rss(pid) > limit.unwrap_or(u64::MAX) {
                    oom = true;
                    kill_group(pid);
                }
            }
        }
    };
    Waited::Exited { status, oom }
}

/// The container's exit code as the kubelet reports it: 128 + signal for a killed process,
/// 137 for OOMKilled whatever signal the kill showed as, 255 when the status was lost.
pub(super) fn exit_code(status: Option<ExitStatus>, oom: bool) -> i64 {
    let code = match status {
        Some(s) => s.code().map(i64::from).unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + i64::from(s.signal().unwrap_or(9))
        }),
        None => 255,
    };
    if oom {
        137
    } else {
        code
    }
}

pub(super) fn kill_group(pid: u32) {
    if pid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group we created for the child.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
}
