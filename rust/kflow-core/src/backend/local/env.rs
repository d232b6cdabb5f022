//! The environment the training operator gives each replica, reproduced for local processes:
//! the addresses become 127.0.0.1 and free ports, everything else keeps its meaning.

use std::collections::BTreeMap;
use std::net::TcpListener;

use crate::spec::{JobKind, Replica, RunSpec};

/// A port nobody listens on right now. The small race until the master binds it is the same
/// one torchrun's own free-port pick has.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(29500)
}

pub fn operator_env(spec: &RunSpec, replica: &Replica, ports: &[u16]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let replicas = spec.replicas();
    let world = replicas.len().to_string();
    env.insert("PYTHONUNBUFFERED".into(), "1".into());
    match spec.kind {
        JobKind::PyTorchJob => {
            let port = ports[0].to_string();
            for (k, v) in [
                ("MASTER_ADDR", "127.0.0.1".to_string()),
                ("PET_MASTER_ADDR", "127.0.0.1".to_string()),
                ("MASTER_PORT", port.clone()),
                ("PET_MASTER_PORT", port),
                ("WORLD_SIZE", world.clone()),
                ("RANK", replica.rank.to_string()),
                ("PET_NODE_RANK", replica.rank.to_string()),
                ("PET_NNODES", world),
            ] {
                env.insert(k.into(), v);
            }
        }
        JobKind::TFJob => {
            // The operator sets TF_CONFIG only for distributed jobs.
            if replicas.len() > 1 {
                let workers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
                let config = serde_json::json!({
                    "cluster": { "worker": workers },
                    "task": { "type": "worker", "index": replica.index },
                    "environment": "cloud",
                });
                env.insert("TF_CONFIG".into(), config.to_string());
            }
        }
        JobKind::MPIJob => {
            // What mpirun gives each rank, since locally there is no mpirun in between.
            for (k, v) in [
                ("OMPI_COMM_WORLD_SIZE", world.clone()),
                ("OMPI_COMM_WORLD_RANK", replica.rank.to_string()),
                ("OMPI_COMM_WORLD_LOCAL_RANK", replica.rank.to_string()),
                ("PMI_SIZE", world),
                ("PMI_RANK", replica.rank.to_string()),
            ] {
                env.insert(k.into(), v);
            }
        }
    }
    env
}

/// GPUs this machine has, by the IDs CUDA_VISIBLE_DEVICES uses.
pub fn local_gpus(inherited: Option<&str>) -> Vec<String> {
    if let Some(list) = inherited {
        return list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    let Ok(out) = std::process::Command::new("nvidia-smi").arg("-L").output() else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    let count = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("GPU "))
        .count();
    (0..count).map(|i| i.to_string()).collect()
}

/// CUDA_VISIBLE_DEVICES for each replica: `gpu` devices each, in order, like a scheduler that
/// hands out whole GPUs. `Err` says why the request cannot be met.
pub fn split_gpus(
    gpus: &[String],
    per_replica: u32,
    replicas: usize,
) -> Result<Vec<String>, String> {
    let per = per_replica as usize;
    if per == 0 {
        return Ok(vec![String::new(); replicas]);
    }
    if gpus.len() < per * replicas {
        return Err(format!(
            "the job asks for {per} GPU(s) for each of {replicas} replica(s) but this machine has {}",
            gpus.len()
        ));
    }
    Ok((0..replicas)
        .map(|r| gpus[r * per..(r + 1) * per].join(","))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_are_split_without_overlap() {
        let gpus: Vec<String> = (0..4).map(|i| i.to_string()).collect();
        assert_eq!(split_gpus(&gpus, 2, 2).unwrap(), ["0,1", "2,3"]);
        assert_eq!(split_gpus(&gpus, 0, 3).unwrap(), ["", "", ""]);
        assert!(split_gpus(&gpus, 3, 2).unwrap_err().contains("has 4"));
        assert_eq!(local_gpus(Some("2, 5")), ["2", "5"]);
    }
}
