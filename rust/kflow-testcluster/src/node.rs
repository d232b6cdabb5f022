//! The cluster's one Node: what `kubectl get nodes` / `describe node` show and what the
//! scheduler fits pods against (its `status.allocatable`, read from the store so a test may
//! patch it).

use serde_json::{json, Value};

use crate::resources;
use crate::store::{now_rfc3339, Store};

pub const NODE_NAME: &str = "kflow-node";
pub const GPU: &str = "nvidia.com/gpu";

/// The node's size. Defaults are generous (tests run several 2-CPU/8Gi replicas at once) and
/// GPU-less, like a CPU node where the NVIDIA device plugin reports no devices.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub gpus: u32,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            cpu: "64".into(),
            memory: "256Gi".into(),
            pods: 250,
            gpus: 0,
        }
    }
}

impl NodeConfig {
    fn resources(&self) -> Value {
        json!({"cpu": self.cpu, "memory": self.memory, "pods": self.pods.to_string(),
               "ephemeral-storage": "500Gi", GPU: self.gpus.to_string()})
    }
}

pub fn node_object(cfg: &NodeConfig) -> Value {
    let now = now_rfc3339();
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let mut labels = json!({
        "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    });
    if cfg.gpus > 0 {
        // What NVIDIA's GPU feature discovery labels a GPU node with.
        labels["nvidia.com/gpu.present"] = json!("true");
        labels["nvidia.com/gpu.count"] = json!(cfg.gpus.to_string());
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE_NAME, "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": cfg.resources(),
            "allocatable": cfg.resources(),
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": NODE_NAME}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "kflow", "systemUUID": "kflow", "bootID": "kflow",
                "kernelVersion": kernel_version(), "osImage": "kflow-testcluster",
                "containerRuntimeVersion": "bubblewrap://kflow", "kubeletVersion": "v1.33.0",
                "kubeProxyVersion": "v1.33.0", "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    })
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Creates the Node, or resets its size and status to `cfg` (a restart may change the flags).
pub fn register(store: &Store, cfg: &NodeConfig) {
    let obj = node_object(cfg);
    if store.get(resources::nodes(), "", NODE_NAME).is_some() {
        let _ = store.update_with(resources::nodes(), "", NODE_NAME, false, |old| {
            let mut new = old.clone();
            new["status"] = obj["status"].clone();
            if let Some(l) = new["metadata"]["labels"].as_object_mut() {
                l.retain(|k, _| !k.starts_with("nvidia.com/"));
            }
            for (k, v) in obj["metadata"]["labels"].as_object().into_iter().flatten() {
                new["metadata"]["labels"][k] = v.clone();
            }
            Ok(new)
        });
    } else {
        let _ = store.create(resources::nodes(), obj, false);
    }
}

/// `status.allocatable` of the stored node (the scheduler's budget).
pub fn allocatable(store: &Store) -> Value {
    store
        .get(resources::nodes(), "", NODE_NAME)
        .map(|n| n["status"]["allocatable"].clone())
        .unwrap_or_else(|| json!({}))
}
