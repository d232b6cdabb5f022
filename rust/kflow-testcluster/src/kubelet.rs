//! The kubelet: runs each pod's containers as local processes (under bubblewrap when the
//! machine allows it), turns their stdout/stderr into timestamped logs, and reports phases,
//! container states, restarts (Always/OnFailure/Never with back-off), OOMKilled and events.
//!
//! This module watches the store and keeps one task per live pod; the rest, one concept each:
//! - `pod`: one pod's lifecycle (binding, image pulls, volumes, init then main containers).
//! - `container`: one container instance from start to exit, and the states it reports.
//! - `sandbox`: starting the process under bubblewrap, and `ExecContext` for pods/exec.
//! - `env`: the container's env (valueFrom, envFrom) and `$(VAR)` expansion.
//! - `supervise`: waiting on the process, memory-limit (OOMKilled) enforcement, exit codes.
//! - `restart`: restartPolicy and the CrashLoopBackOff back-off.
//! - `output`: stdout/stderr into the timestamped log file.
//! - `status`: pod status writes, phase and conditions.
//! - `hosts`: the shared /etc/hosts.
//! - `network`: a network namespace of their own for StatefulSets' pods.

mod container;
mod env;
mod hosts;
mod network;
mod output;
mod pod;
mod restart;
mod sandbox;
mod status;
mod supervise;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast::error::RecvError, watch};

use crate::events;
use crate::injected::Injector;
use crate::logs::log_file;
use crate::resources;
use crate::runtime::ImageTable;
use crate::scheduler::Scheduler;
use crate::store::{EventType, Store};

pub use env::expand_vars;
pub use network::supported as pod_networks_supported;
pub use sandbox::ExecContext;

pub struct KubeletConfig {
    pub state_dir: PathBuf,
    pub images: ImageTable,
    /// Run containers under bubblewrap; false runs them as plain child processes (no mounts).
    pub sandbox: bool,
    pub api_port: u16,
    /// First restart back-off; doubles per restart up to 10x. The real kubelet uses 10s.
    /// Image pulls back off the same way.
    pub backoff: Duration,
    /// Images containing one of these cannot be pulled.
    pub unpullable_images: Vec<String>,
    /// A folder of wheels pods may `pip install` from (PIP_FIND_LINKS); pip never uses an index.
    pub wheel_dir: Option<PathBuf>,
    /// Service-account files and MPI launchers' kubectl.
    pub injector: Injector,
}

pub struct Kubelet {
    store: Arc<Store>,
    cfg: KubeletConfig,
    /// Pods being run, by uid; sending `true` stops them (the pod was deleted).
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    hosts_lock: Mutex<()>,
    /// A deferred /etc/hosts rewrite is on its way (see `write_hosts_soon`).
    hosts_pending: std::sync::atomic::AtomicBool,
    /// (pod uid, container) -> how its current instance runs, for pods/exec.
    exec_contexts: Mutex<HashMap<(String, String), Arc<ExecContext>>>,
    scheduler: Scheduler,
    /// Whether pods can have network namespaces of their own here (see `network`).
    own_networks: bool,
    /// Pods' own networks, by uid.
    networks: Mutex<HashMap<String, Arc<network::PodNetwork>>>,
}

impl Kubelet {
    pub fn new(store: Arc<Store>, cfg: KubeletConfig) -> Arc<Kubelet> {
        let own_networks = cfg.sandbox && network::supported();
        Arc::new(Kubelet {
            store,
            cfg,
            running: Mutex::new(HashMap::new()),
            hosts_lock: Mutex::new(()),
            hosts_pending: Default::default(),
            exec_contexts: Mutex::new(HashMap::new()),
            scheduler: Scheduler::default(),
            own_networks,
            networks: Mutex::new(HashMap::new()),
        })
    }

    /// Whether pods of StatefulSets get network namespaces of their own (see `network`).
    pub fn own_networks(&self) -> bool {
        self.own_networks
    }

    pub async fn run(self: Arc<Self>) {
        let mut rx = self.store.subscribe();
        self.resync();
        loop {
            match rx.recv().await {
                Ok(c) if c.resource.plural == "pods" => match c.kind {
                    EventType::Deleted => {
                        self.stop(c.object["metadata"]["uid"].as_str().unwrap_or(""));
                        self.scheduler.capacity_freed();
                        // Logs are per pod: a new pod of the same name (an MPIJob or
                        // PyTorchJob run again) must not show the old one's.
                        let any = log_file(&self.cfg.state_dir, c.namespace(), c.name(), "c", 0);
                        if let (Some(dir), false) =
                            (any.parent().and_then(Path::parent), c.name().is_empty())
                        {
                            let _ = std::fs::remove_dir_all(dir);
                        }
                    }
                    _ => {
                        if matches!(
                            c.object["status"]["phase"].as_str(),
                            Some("Succeeded" | "Failed")
                        ) {
                            self.scheduler.capacity_freed();
                        }
                        self.ensure(&c.object)
                    }
                },
                Ok(c) if c.resource.plural == "nodes" => self.scheduler.capacity_freed(),
                Ok(c) if c.resource.plural == "persistentvolumeclaims" => {
                    self.scheduler.claims_changed()
                }
                Ok(c) if c.resource.plural == "services" => self.write_hosts_soon(),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => self.resync(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Stops every pod process (server shutdown).
    pub fn shutdown(&self) {
        let senders: Vec<_> = self
            .running
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for s in senders {
            let _ = s.send(true);
        }
    }

    /// A connection to a port of the pod, as the container runtime dials it for port-forward:
    /// inside the pod's own network, or on the node's.
    pub async fn dial(&self, uid: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        match self.network(uid) {
            Some(net) => net.dial(port).await,
            None => tokio::net::TcpStream::connect(("127.0.0.1", port)).await,
        }
    }

    fn network(&self, uid: &str) -> Option<Arc<network::PodNetwork>> {
        self.networks.lock().ok()?.get(uid).cloned()
    }

    /// How to run more commands in a running container (pods/exec).
    pub fn exec_context(&self, uid: &str, container: &str) -> Option<Arc<ExecContext>> {
        self.exec_contexts
            .lock()
            .ok()?
            .get(&(uid.to_string(), container.to_string()))
            .cloned()
    }

    fn resync(self: &Arc<Self>) {
        let live = self
            .store
            .list(resources::pods(), None, None, None, &|_| true)
            .items;
        let uids: Vec<String> = live
            .iter()
            .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
            .collect();
        let gone: Vec<String> = self
            .running
            .lock()
            .map(|m| m.keys().filter(|u| !uids.contains(u)).cloned().collect())
            .unwrap_or_default();
        for uid in gone {
            self.stop(&uid);
        }
        for p in live {
            self.ensure(&p);
        }
    }

    fn stop(&self, uid: &str) {
        if let Ok(mut m) = self.exec_contexts.lock() {
            m.retain(|(u, _), _| u != uid);
        }
        if let Some(tx) = self.running.lock().ok().and_then(|mut m| m.remove(uid)) {
            let _ = tx.send(true);
        }
    }

    fn ensure(self: &Arc<Self>, pod: &Value) {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
        if matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        ) {
            return;
        }
        let rx = {
            let Ok(mut m) = self.running.lock() else {
                return;
            };
            if m.contains_key(&uid) {
                return;
            }
            let (tx, rx) = watch::channel(false);
            m.insert(uid.clone(), tx);
            rx
        };
        let me = self.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            me.clone().run_pod(pod, rx).await;
            if let Ok(mut m) = me.networks.lock() {
                m.remove(&uid);
            }
            if let Ok(mut m) = me.running.lock() {
                m.remove(&uid);
            }
        });
    }

    fn event(&self, ns: &str, name: &str, t: &str, reason: &str, msg: &str) {
        if let Some(pod) = self.store.get(resources::pods(), ns, name) {
            events::record(&self.store, &pod, t, reason, msg, "kubelet");
        }
    }
}

fn ns_of(p: &Value) -> String {
    p["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string()
}
fn name_of(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap_or("").to_string()
}
fn uid_of(p: &Value) -> String {
    p["metadata"]["uid"].as_str().unwrap_or("").to_string()
}
