//! Archives larger than one ConfigMap travel as several: `<job>-code-000`, `-001`, … each
//! holding one slice (`part`), mounted side by side under /kflow/code-parts and joined by
//! `cat` into `tar`. Every replica on every node gets them from the API server, they are owned
//! by the job like the single ConfigMap, and nothing needs exec rights or a helper pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::ByteString;

use super::code_configmap_name;

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

/// How many ConfigMaps an archive of `archive_bytes` travels in.
pub fn count(archive_bytes: usize) -> usize {
    if needed(archive_bytes) {
        archive_bytes.div_ceil(CHUNK_BYTES)
    } else {
        1
    }
}

/// The code ConfigMaps of a sliced archive, built from the single code ConfigMap `whole`
/// (its metadata and labels, one slice each in place of its data).
pub(super) fn slices(whole: &ConfigMap, job_name: &str, archive: &[u8]) -> Vec<ConfigMap> {
    archive
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(i, part)| {
            let mut metadata = whole.metadata.clone();
            metadata.name = Some(chunk_name(job_name, i));
            ConfigMap {
                metadata,
                binary_data: Some(BTreeMap::from([(
                    PART_KEY.to_string(),
                    ByteString(part.to_vec()),
                )])),
                ..Default::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::spec;
    use crate::manifest::{build, CodePayload, MpiApi};
    use crate::spec::JobKind;

    #[test]
    fn slices_rejoin_to_the_archive_and_every_pod_mounts_them() {
        let archive: Vec<u8> = (0..(CHUNK_BYTES * 2 + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut spec = spec(JobKind::PyTorchJob);
        spec.pip_cache = false;
        let code = CodePayload::Archive {
            bytes: archive.clone(),
            sha256: "0".repeat(64),
        };
        let m = build(&spec, &code, MpiApi::V1);
        assert_eq!(m.code_parts.len(), 2);
        let mut joined: Vec<u8> = Vec::new();
        for cm in std::iter::once(&m.code).chain(m.code_parts.iter()) {
            let labels = cm.metadata.labels.as_ref().unwrap();
            assert_eq!(labels["kflow.dev/run-id"], spec.run_id);
            joined.extend(&cm.binary_data.as_ref().unwrap()[PART_KEY].0);
        }
        assert_eq!(joined, archive);
        assert_eq!(
            m.code.metadata.name.as_deref(),
            Some("train-abc12-code-000")
        );
        let job = serde_json::to_value(&m.job).unwrap();
        let pod = &job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"];
        assert_eq!(pod["volumes"].as_array().unwrap().len(), 4);
        assert_eq!(
            pod["containers"][0]["volumeMounts"][3]["mountPath"],
            "/kflow/code-parts/002"
        );
        let script = pod["containers"][0]["command"][2].as_str().unwrap();
        assert!(script.contains("cat /kflow/code-parts/*/part | tar -xzf - -C /workspace"));
        assert!(!script.contains("/kflow/code/code.tar.gz"));
        // The record's manifest, without the bytes, says the same about the volumes.
        let elided = CodePayload::Elided {
            sha256: "0".repeat(64),
            bytes: archive.len() as u64,
            parts: count(archive.len()),
        };
        let record = build(&spec, &elided, MpiApi::V1);
        assert_eq!(record.job, m.job);
        assert!(record.code_parts.is_empty());
    }
}
