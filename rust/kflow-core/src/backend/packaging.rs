//! A run's project as it travels: packed with the limits of where it goes, and put into the
//! manifests that carry it.

use std::path::Path;

use crate::artifacts::{self, PackOptions, CONFIGMAP_MAX_BYTES};
use crate::error::Result;
use crate::manifest::{self, CodePayload, Manifests, MpiApi};
use crate::spec::{CodeMode, RunSpec};

/// Where a packed project goes, which sets how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// This machine (the local backend, previews).
    Local,
    /// A cluster: the code travels through the API server in ConfigMaps (sliced when large),
    /// so the project is capped well below what would flood it.
    Cluster,
}

/// The largest project (before compression) a cluster run uploads.
const CLUSTER_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Packs the run's project into `out`.
pub(crate) fn package(spec: &RunSpec, out: &Path, to: Destination) -> Result<artifacts::Archive> {
    let (max_bytes, limit_reason) = match (spec.code_mode, to) {
        (CodeMode::Configmap, _) => (
            CONFIGMAP_MAX_BYTES,
            " for ConfigMap mode (a ConfigMap holds at most 1 MiB; code mode targz has no such limit)",
        ),
        (CodeMode::Targz, Destination::Cluster) => (
            CLUSTER_MAX_BYTES,
            " for a cluster run (the code travels through the API server in ConfigMaps)",
        ),
        (CodeMode::Targz, Destination::Local) => (artifacts::DEFAULT_MAX_BYTES, ""),
    };
    let options = PackOptions {
        max_bytes,
        limit_reason: limit_reason.into(),
        entry_script: Some(spec.script.clone().into()),
    };
    artifacts::package(&spec.project_root, out, &options)
}

/// The code as its ConfigMaps carry it: the archive (sliced when large), or its files in
/// ConfigMap mode.
pub(crate) fn code_payload(spec: &RunSpec, archive: Vec<u8>, sha256: &str) -> Result<CodePayload> {
    Ok(match spec.code_mode {
        CodeMode::Targz => CodePayload::Archive {
            bytes: archive,
            sha256: sha256.to_string(),
        },
        CodeMode::Configmap => CodePayload::Files {
            files: artifacts::archive_files(&archive)?,
            sha256: sha256.to_string(),
        },
    })
}

/// The manifests that carry `archive` itself, as a submission creates them.
pub(crate) fn manifests_with_code(
    spec: &RunSpec,
    archive: Vec<u8>,
    sha256: &str,
    mpi: MpiApi,
) -> Result<Manifests> {
    Ok(manifest::build(
        spec,
        &code_payload(spec, archive, sha256)?,
        mpi,
    ))
}

/// The manifests as a run record keeps them: the code by digest and size only.
pub(crate) fn manifests_without_code(
    spec: &RunSpec,
    sha256: &str,
    bytes: u64,
    parts: usize,
    mpi: MpiApi,
) -> Manifests {
    let code = CodePayload::Elided {
        sha256: sha256.to_string(),
        bytes,
        parts,
    };
    manifest::build(spec, &code, mpi)
}
