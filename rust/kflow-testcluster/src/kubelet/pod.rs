//! One pod's lifecycle on the node: wait until the scheduler binds it, pull (resolve) its
//! images, materialise its volumes, run init containers one by one, then the main containers
//! side by side, each restarted under the pod's restartPolicy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::container::Outcome;
use super::network::{self, PodNetwork};
use super::restart::restarts;
use super::status::{waiting, with_status};
use super::{name_of, ns_of, Kubelet};
use crate::events;
use crate::node::NODE_NAME;
use crate::resources;
use crate::runtime::{self, Runtime};
use crate::scheduler::Decision;
use crate::store::now_rfc3339;
use crate::volumes;

impl Kubelet {
    pub(super) async fn run_pod(self: Arc<Self>, pod: Value, mut cancel: watch::Receiver<bool>) {
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let init: Vec<Value> = pod["spec"]["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let main: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !self.wait_until_bound(&ns, &name, &uid, &mut cancel).await {
            return;
        }
        let scheduled = self.update_pod(&ns, &name, &uid, |p| {
            let now = now_rfc3339();
            p["status"] = json!({
                "phase": "Pending", "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}], "startTime": now, "qosClass": "BestEffort",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now, "lastProbeTime": null}],
                "containerStatuses": main.iter().map(|c| waiting(c, "ContainerCreating")).collect::<Vec<_>>(),
            });
            if !init.is_empty() {
                p["status"]["initContainerStatuses"] = json!(init.iter().map(|c| waiting(c, "PodInitializing")).collect::<Vec<_>>());
            }
        });
        if !scheduled {
            return;
        }
        if let Some(p) = self.store.get(resources::pods(), &ns, &name) {
            events::record(
                &self.store,
                &p,
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {ns}/{name} to {NODE_NAME}"),
                "default-scheduler",
            );
        }

        let Some(runtimes) = self
            .pull_images(&ns, &name, &uid, &init, &main, &mut cancel)
            .await
        else {
            return;
        };
        if !self.cfg.sandbox {
            self.event(&ns, &name, "Warning", "SandboxUnavailable", "bubblewrap cannot create namespaces here: containers run as plain processes and volumeMounts are not applied");
        }
        if self.own_networks && network::wants_own(&pod) {
            match PodNetwork::create(self.cfg.api_port).await {
                Ok(net) => {
                    if let Ok(mut m) = self.networks.lock() {
                        m.insert(uid.clone(), net);
                    }
                }
                Err(e) => self.event(&ns, &name, "Warning", "FailedCreatePodSandBox", &format!("Failed to create pod sandbox: setting up the pod's network namespace: {e}; the pod uses the node's network")),
            }
        }

        let pod_dir = self.cfg.state_dir.join("pods").join(&uid);
        let Some(volumes) = self
            .prepare_volumes(&ns, &name, &pod, &pod_dir, &mut cancel)
            .await
        else {
            return;
        };
        self.write_hosts();
        let restart_policy = pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string();

        for c in &init {
            let cname = c["name"].as_str().unwrap_or("").to_string();
            let mut attempt = 0;
            loop {
                let rt = runtimes
                    .get(&cname)
                    .cloned()
                    .unwrap_or(runtime::Runtime::Shell);
                let policy = if restart_policy == "Never" {
                    "Never"
                } else {
                    "OnFailure"
                };
                let outcome = self
                    .run_container(
                        &pod,
                        c,
                        &rt,
                        true,
                        attempt,
                        policy,
                        &volumes,
                        &pod_dir,
                        &mut cancel,
                    )
                    .await;
                let Outcome::Exited(exit) = outcome else {
                    return;
                };
                if exit.code == 0 {
                    break;
                }
                if restart_policy == "Never" {
                    self.update_pod(&ns, &name, &uid, |p| {
                        // A failed init container fails the pod; main containers never start.
                        for s in p["status"]["containerStatuses"].as_array_mut().into_iter().flatten() {
                            s["state"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "message": "init container failed"}});
                        }
                    });
                    return;
                }
                attempt += 1;
                if !self.back_off(&ns, &name, attempt, &mut cancel).await {
                    return;
                }
            }
        }

        let mut handles = Vec::new();
        for c in main.clone() {
            let me = self.clone();
            let pod = pod.clone();
            let volumes = volumes.clone();
            let pod_dir = pod_dir.clone();
            let mut cancel = cancel.clone();
            let rt = runtimes
                .get(c["name"].as_str().unwrap_or(""))
                .cloned()
                .unwrap_or(Runtime::Shell);
            let policy = restart_policy.clone();
            handles.push(tokio::spawn(async move {
                let (ns, name) = (ns_of(&pod), name_of(&pod));
                let mut attempt = 0;
                loop {
                    let Outcome::Exited(exit) = me
                        .run_container(
                            &pod,
                            &c,
                            &rt,
                            false,
                            attempt,
                            &policy,
                            &volumes,
                            &pod_dir,
                            &mut cancel,
                        )
                        .await
                    else {
                        return;
                    };
                    if !restarts(&policy, exit.code) {
                        return;
                    }
                    attempt += 1;
                    if !me.back_off(&ns, &name, attempt, &mut cancel).await {
                        return;
                    }
                }
            }));
        }
        for h in handles {
            let _ = h.await;
        }
    }

    /// The scheduler's loop for one pod: bind when it fits, else stay Pending (Unschedulable)
    /// and try again when capacity frees. False when the pod went away.
    async fn wait_until_bound(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        cancel: &mut watch::Receiver<bool>,
    ) -> bool {
        loop {
            let mut freed = self.scheduler.subscribe();
            match self.scheduler.try_bind(&self.store, ns, name, uid) {
                Decision::Bound => return true,
                Decision::Gone => return false,
                Decision::Unschedulable(_) | Decision::WaitingForVolumes => {}
            }
            // The timer is a backstop, as the real scheduler's periodic flush of unschedulable
            // pods; it is long because thousands of pending pods each re-check on it.
            tokio::select! {
                _ = freed.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = cancel.changed() => return false,
            }
        }
    }

    /// Each container's runtime by name. An image that cannot be pulled (no local runtime, or
    /// named unpullable) leaves the pod Pending, its container waiting in ErrImagePull, then
    /// ImagePullBackOff while the pull backs off, over and over; None once the pod is deleted.
    async fn pull_images(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        init: &[Value],
        main: &[Value],
        cancel: &mut watch::Receiver<bool>,
    ) -> Option<HashMap<String, Runtime>> {
        let mut runtimes: HashMap<String, Runtime> = HashMap::new();
        for (c, is_init) in init
            .iter()
            .map(|c| (c, true))
            .chain(main.iter().map(|c| (c, false)))
        {
            let cname = c["name"].as_str().unwrap_or("").to_string();
            let image = c["image"].as_str().unwrap_or("").to_string();
            let unpullable = self
                .cfg
                .unpullable_images
                .iter()
                .any(|p| image.contains(p.as_str()));
            match self.cfg.images.resolve(&image).filter(|_| !unpullable) {
                Some(rt) => {
                    runtimes.insert(cname, rt.clone());
                }
                None => {
                    self.pull_fails(ns, name, uid, &cname, &image, is_init, cancel)
                        .await;
                    return None;
                }
            }
        }
        for c in init.iter().chain(main.iter()) {
            let image = c["image"].as_str().unwrap_or("");
            self.event(
                ns,
                name,
                "Normal",
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
            );
        }
        Some(runtimes)
    }

    /// A pull that never succeeds: the kubelet's events once, then the container's state
    /// alternating between a failed pull and its back-off until the pod is deleted.
    #[allow(clippy::too_many_arguments)]
    async fn pull_fails(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        cname: &str,
        image: &str,
        is_init: bool,
        cancel: &mut watch::Receiver<bool>,
    ) {
        let why = format!("rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": not found");
        let pull_error = format!("Failed to pull image \"{image}\": {why}");
        let back_off = format!("Back-off pulling image \"{image}\"");
        self.event(
            ns,
            name,
            "Normal",
            "Pulling",
            &format!("Pulling image \"{image}\""),
        );
        self.event(ns, name, "Warning", "Failed", &pull_error);
        self.event(ns, name, "Warning", "Failed", "Error: ErrImagePull");
        self.event(ns, name, "Normal", "BackOff", &back_off);
        self.event(ns, name, "Warning", "Failed", "Error: ImagePullBackOff");
        let mut attempt = 0;
        loop {
            let states = [
                (
                    json!({"reason": "ErrImagePull", "message": why}),
                    self.cfg.backoff,
                ),
                (
                    json!({"reason": "ImagePullBackOff", "message": format!("{back_off}: ErrImagePull: {why}")}),
                    self.backoff_delay(attempt + 1),
                ),
            ];
            for (waiting, wait) in states {
                self.update_pod(ns, name, uid, |p| {
                    with_status(p, is_init, cname, |s| {
                        s["state"] = json!({ "waiting": waiting });
                    });
                });
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.changed() => return,
                }
            }
            attempt += 1;
        }
    }

    /// The pod's volumes (name -> host folder), retried every second while a source is missing
    /// (one FailedMount event); None when the pod is deleted meanwhile.
    async fn prepare_volumes(
        &self,
        ns: &str,
        name: &str,
        pod: &Value,
        pod_dir: &Path,
        cancel: &mut watch::Receiver<bool>,
    ) -> Option<Vec<(String, PathBuf)>> {
        let mut reported = false;
        loop {
            let current = self
                .store
                .get(resources::pods(), ns, name)
                .unwrap_or(pod.clone());
            match volumes::prepare(&self.store, &self.cfg.state_dir, pod_dir, &current) {
                Ok(v) => return Some(v),
                Err(e) => {
                    if !reported {
                        self.event(ns, name, "Warning", "FailedMount", &e.to_string());
                        reported = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = cancel.changed() => return None,
                    }
                }
            }
        }
    }
}
