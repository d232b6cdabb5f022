//! Restarts: which exits the pod's restartPolicy starts again, and the CrashLoopBackOff delay
//! before each new start.

use std::time::Duration;

use tokio::sync::watch;

use super::Kubelet;

/// Whether a container that exited with `code` is started again under the pod restartPolicy.
pub(super) fn restarts(policy: &str, code: i64) -> bool {
    policy == "Always" || (policy == "OnFailure" && code != 0)
}

impl Kubelet {
    pub(super) fn backoff_delay(&self, attempt: i64) -> Duration {
        self.cfg.backoff * 2u32.saturating_pow((attempt - 1).clamp(0, 3) as u32)
    }

    /// Waits the restart back-off (the CrashLoopBackOff state was written when the container
    /// exited). False when the pod was deleted meanwhile.
    pub(super) async fn back_off(
        &self,
        ns: &str,
        name: &str,
        attempt: i64,
        cancel: &mut watch::Receiver<bool>,
    ) -> bool {
        let delay = self.backoff_delay(attempt);
        self.event(
            ns,
            name,
            "Warning",
            "BackOff",
            "Back-off restarting failed container",
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = cancel.changed() => false,
        }
    }
}
