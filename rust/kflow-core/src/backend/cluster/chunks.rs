//! Archives larger than one ConfigMap travel as several: `<job>-code-000`, `-001`, … each
//! holding one slice (`part`), mounted side by side under /kflow/code-parts and joined by
//! `cat` into `tar`. Every replica on every node gets them from the API server, they are owned
//! by the job like the single ConfigMap, and nothing needs exec rights or a helper pod.

use base64::Engine;
use serde_json::{json, Value};

use crate::manifest::startup::{ARCHIVE_KEY, CODE_MOUNT, WORKSPACE};
use crate::manifest::{code_configmap_name, Manifests};

/// Bytes per slice: a ConfigMap holds at most 1 MiB, and base64 plus metadata need room.
pub const CHUNK_BYTES: usize = 700 * 1024;
pub const PARTS_MOUNT: &str = "/kflow/code-parts";
pub const PART_KEY: &str = "part";

pub fn chunk_name(job: &str, index: usize) -> String {
    format!("{}-{index:03}", code_configmap_name(job))
}

/// Whether an archive of this size needs slicing.
pub fn needed(archive_bytes: usize) -> bool {
    archive_bytes > CHUNK_BYTES
}

/// Rewrites `manifests` for a sliced archive: the code ConfigMap becomes the first slice, the
/// other slices are returned, and each pod mounts all of them and joins them before `tar`.
pub fn split(manifests: &mut Manifests, job_name: &str, archive: &[u8]) -> Vec<Value> {
    let parts: Vec<&[u8]> = archive.chunks(CHUNK_BYTES).collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut cms: Vec<Value> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut cm = manifests.code.clone();
            cm["metadata"]["name"] = json!(chunk_name(job_name, i));
            cm.as_object_mut().map(|o| o.remove("data"));
            cm["binaryData"] = json!({ PART_KEY: b64.encode(part) });
            cm
        })
        .collect();
    rewrite_job(&mut manifests.job, job_name, parts.len());
    manifests.code = cms.remove(0);
    cms
}

/// The pod templates' volumes, mounts and startup script for `count` slices.
pub fn rewrite_job(job: &mut Value, job_name: &str, count: usize) {
    let Some(spec) = job["spec"].as_object_mut() else {
        return;
    };
    let single = format!("tar -xzf {CODE_MOUNT}/{ARCHIVE_KEY} -C {WORKSPACE}");
    let joined = format!("cat {PARTS_MOUNT}/*/{PART_KEY} | tar -xzf - -C {WORKSPACE}");
    for (key, replicas) in spec.iter_mut() {
        if !key.ends_with("ReplicaSpecs") {
            continue;
        }
        for (_, replica) in replicas.as_object_mut().into_iter().flatten() {
            let pod = &mut replica["template"]["spec"];
            if let Some(volumes) = pod["volumes"].as_array_mut() {
                volumes.retain(|v| v["name"] != "kflow-code");
                for i in 0..count {
                    volumes.push(json!({ "name": format!("kflow-code-{i:03}"), "configMap": { "name": chunk_name(job_name, i) } }));
                }
            }
            for container in pod["containers"].as_array_mut().into_iter().flatten() {
                if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                    mounts.retain(|m| m["name"] != "kflow-code");
                    for i in 0..count {
                        mounts.push(json!({ "name": format!("kflow-code-{i:03}"), "mountPath": format!("{PARTS_MOUNT}/{i:03}"), "readOnly": true }));
                    }
                }
                if let Some(script) = container["command"]
                    .get_mut(2)
                    .and_then(|s| s.as_str().map(str::to_string))
                {
                    container["command"][2] = json!(script.replace(&single, &joined));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_rejoin_to_the_archive_and_every_pod_mounts_them() {
        let job = json!({"spec": {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {
            "containers": [{"name": "pytorch", "command": ["/bin/sh", "-c", "set -eu\ntar -xzf /kflow/code/code.tar.gz -C /workspace\nexec python -u t.py\n"],
                "volumeMounts": [{"name": "kflow-code", "mountPath": "/kflow/code", "readOnly": true}, {"name": "kflow-workspace", "mountPath": "/workspace"}]}],
            "volumes": [{"name": "kflow-code", "configMap": {"name": "j-code"}}, {"name": "kflow-workspace", "emptyDir": {}}]}}}}}});
        let code = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j-code", "labels": {"kflow.dev/run-id": "r"}}, "binaryData": {"code.tar.gz": "x"}});
        let mut m = Manifests {
            job,
            code,
            pip_cache: None,
        };
        let archive: Vec<u8> = (0..(CHUNK_BYTES * 2 + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        let rest = split(&mut m, "j", &archive);
        assert_eq!(rest.len(), 2);
        let mut joined = Vec::new();
        for cm in std::iter::once(&m.code).chain(rest.iter()) {
            assert_eq!(cm["metadata"]["labels"]["kflow.dev/run-id"], "r");
            joined.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(cm["binaryData"][PART_KEY].as_str().unwrap())
                    .unwrap(),
            );
        }
        assert_eq!(joined, archive);
        assert_eq!(m.code["metadata"]["name"], "j-code-000");
        let pod = &m.job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"];
        assert_eq!(pod["volumes"].as_array().unwrap().len(), 4);
        assert_eq!(
            pod["containers"][0]["volumeMounts"][3]["mountPath"],
            "/kflow/code-parts/002"
        );
        assert!(pod["containers"][0]["command"][2]
            .as_str()
            .unwrap()
            .contains("cat /kflow/code-parts/*/part | tar -xzf - -C /workspace"));
    }
}
