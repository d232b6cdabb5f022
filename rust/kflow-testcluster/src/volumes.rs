//! Pod volumes as host folders: emptyDir per pod, PVCs under `state-dir/pvcs/<ns>/<claim>`,
//! ConfigMaps and Secrets written out as files (binaryData and Secret data base64-decoded,
//! `items` key -> path), hostPath as is.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::resources;
use crate::runtime::Mount;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The kubelet's wording, shown in a FailedMount event; the kubelet retries.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {reason}")]
    SetUp { volume: String, reason: String },
    #[error(
        "unable to attach or mount volumes: unmounted volumes=[{0}]: volume not found in pod spec"
    )]
    UnknownVolume(String),
    #[error("writing volume {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn pvc_dir(state_dir: &Path, ns: &str, claim: &str) -> PathBuf {
    state_dir.join("pvcs").join(ns).join(claim)
}

/// A file of a ConfigMap/Secret volume: relative path, bytes, permission bits.
type VolumeFile = (String, Vec<u8>, u32);

/// Writes `files` under `dir`, replacing what was there. Modes matter: MPI's kubexec.sh is
/// run as a program (items mode 0555).
fn write_files(dir: &Path, files: Vec<VolumeFile>) -> Result<(), VolumeError> {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (rel, bytes, mode) in files {
        // A key cannot escape the volume folder.
        if rel.split('/').any(|p| p == "..") || rel.starts_with('/') {
            continue;
        }
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, bytes).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(io(&path))?;
    }
    Ok(())
}

/// The (key, bytes) pairs of a ConfigMap or Secret, decoded.
fn source_files(obj: &Value, secret: bool) -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for (k, v) in obj["data"].as_object().into_iter().flatten() {
        let s = v.as_str().unwrap_or("");
        let bytes = if secret {
            b64.decode(s).unwrap_or_else(|_| s.as_bytes().to_vec())
        } else {
            s.as_bytes().to_vec()
        };
        out.push((k.clone(), bytes));
    }
    for (k, v) in obj["binaryData"].as_object().into_iter().flatten() {
        out.push((
            k.clone(),
            b64.decode(v.as_str().unwrap_or("")).unwrap_or_default(),
        ));
    }
    out
}

/// The files `items` asks for (all keys when absent), with `items[].mode` or `default_mode`.
fn select_items(
    all: Vec<(String, Vec<u8>)>,
    items: &Value,
    default_mode: u32,
    volume: &str,
    what: &str,
) -> Result<Vec<VolumeFile>, VolumeError> {
    let Some(items) = items.as_array() else {
        return Ok(all.into_iter().map(|(k, b)| (k, b, default_mode)).collect());
    };
    let mut out = Vec::new();
    for it in items {
        let key = it["key"].as_str().unwrap_or("");
        let path = it["path"].as_str().unwrap_or(key);
        match all.iter().find(|(k, _)| k == key) {
            Some((_, b)) => {
                let mode = it["mode"].as_u64().map_or(default_mode, |m| m as u32);
                out.push((path.to_string(), b.clone(), mode))
            }
            None => {
                return Err(VolumeError::SetUp {
                    volume: volume.into(),
                    reason: format!("{what}: key \"{key}\" not found"),
                });
            }
        }
    }
    Ok(out)
}

/// Materialises every volume of the pod; returns volume name -> host folder.
pub fn prepare(
    store: &Store,
    state_dir: &Path,
    pod_dir: &Path,
    pod: &Value,
) -> Result<Vec<(String, PathBuf)>, VolumeError> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut out = Vec::new();
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("").to_string();
        let dir = pod_dir.join("volumes").join(&name);
        let path = if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
            if store
                .get(
                    resources::find("", "v1", "persistentvolumeclaims").expect("served"),
                    ns,
                    claim,
                )
                .is_none()
            {
                return Err(VolumeError::SetUp {
                    volume: name,
                    reason: format!("persistentvolumeclaim \"{claim}\" not found"),
                });
            }
            let d = pvc_dir(state_dir, ns, claim);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
            d
        } else if v["configMap"].is_object() || v["secret"].is_object() {
            let secret = v["secret"].is_object();
            let src = if secret {
                &v["secret"]
            } else {
                &v["configMap"]
            };
            let (plural, obj_name) = if secret {
                ("secrets", src["secretName"].as_str().unwrap_or(""))
            } else {
                ("configmaps", src["name"].as_str().unwrap_or(""))
            };
            let what = if secret { "secret" } else { "configmap" };
            let files = match store.get(
                resources::find("", "v1", plural).expect("served"),
                ns,
                obj_name,
            ) {
                Some(obj) => select_items(
                    source_files(&obj, secret),
                    &src["items"],
                    src["defaultMode"].as_u64().map_or(0o644, |m| m as u32),
                    &name,
                    &format!("{what} \"{obj_name}\""),
                )?,
                None if src["optional"] == Value::Bool(true) => Vec::new(),
                None => {
                    return Err(VolumeError::SetUp {
                        volume: name,
                        reason: format!("{what} \"{obj_name}\" not found"),
                    })
                }
            };
            write_files(&dir, files)?;
            dir
        } else if let Some(host) = v["hostPath"]["path"].as_str() {
            PathBuf::from(host)
        } else {
            // emptyDir, and any volume type this double does not model, is an empty folder.
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            dir
        };
        out.push((name, path));
    }
    Ok(out)
}

/// The binds for one container's volumeMounts.
pub fn mounts_for(
    container: &Value,
    volumes: &[(String, PathBuf)],
) -> Result<Vec<Mount>, VolumeError> {
    let mut out = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("");
        let (_, base) = volumes
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| VolumeError::UnknownVolume(name.into()))?;
        let mut source = base.clone();
        if let Some(sub) = m["subPath"]
            .as_str()
            .filter(|s| !s.is_empty() && !s.split('/').any(|p| p == ".."))
        {
            source = source.join(sub);
            if !source.exists() {
                std::fs::create_dir_all(&source).map_err(io(&source))?;
            }
        }
        out.push(Mount {
            source,
            target: m["mountPath"].as_str().unwrap_or("/mnt").to_string(),
            read_only: m["readOnly"] == Value::Bool(true),
        });
    }
    Ok(out)
}
