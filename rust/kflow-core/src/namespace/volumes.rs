//! PVCs: created with a checked name, size, class and access mode; deleted unless running
//! pods mount them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

use crate::backend::cluster::api_errors::{api_error, status_code};
use crate::backend::cluster::retry::retry;
use crate::error::{Error, ResourceError, Result};
use crate::spec::validate;

use super::listing::{self, LeanPod, LeanStorageClass, PodMounts};
use super::rows::{PvcRow, StorageClassRow};
use super::Namespace;

/// Size of a PVC when neither the caller nor `defaultPVCsize` says.
pub const DEFAULT_PVC_SIZE: &str = "10Gi";

/// A PVC to create.
#[derive(Debug, Clone, Default)]
pub struct PvcRequest {
    /// The claim's name (a DNS-1123 subdomain: lowercase letters, digits, '-' and '.').
    pub name: String,
    /// Its size as a Kubernetes quantity; `None`: `defaultPVCsize`, else 10Gi.
    pub size: Option<String>,
    /// The StorageClass; `None`: the cluster's default.
    pub storage_class: Option<String>,
    /// `ReadWriteOnce` (RWO, the default), `ReadOnlyMany` (ROX), `ReadWriteMany` (RWX) or
    /// `ReadWriteOncePod` (RWOP).
    pub access_mode: Option<String>,
}

/// The access modes Kubernetes knows, with their short names.
const ACCESS_MODES: [(&str, &str); 4] = [
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
];

/// The access mode's API name, from its API or short name in any case.
pub(super) fn access_mode(value: &str) -> Result<&'static str> {
    ACCESS_MODES
        .iter()
        .find(|(long, short)| value.eq_ignore_ascii_case(long) || value.eq_ignore_ascii_case(short))
        .map(|(long, _)| *long)
        .ok_or_else(|| {
            Error::invalid(
                "access mode",
                value,
                "not a Kubernetes access mode",
                "use ReadWriteOnce (RWO), ReadOnlyMany (ROX), ReadWriteMany (RWX) or ReadWriteOncePod (RWOP)",
            )
        })
}

/// A PVC or Notebook name: a DNS-1123 label, as both become pod and service names.
pub(super) fn object_name(field: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        field,
        name,
        "not a valid Kubernetes name (lowercase letters, digits and '-', starting with a letter, at most 63)",
        format!("use a name like {:?}", validate::suggest_name(name)),
    ))
}

/// A storage size: a quantity of at least 1Mi.
pub(super) fn storage_size(field: &'static str, size: &str) -> Result<()> {
    match validate::parse_quantity(size) {
        Some(bytes) if bytes >= 1024.0 * 1024.0 => Ok(()),
        Some(_) => Err(Error::invalid(
            field,
            size,
            "smaller than 1Mi, less than any volume",
            "give the size with a unit, e.g. \"10Gi\" or \"500Mi\"",
        )),
        None => Err(Error::invalid(
            field,
            size,
            "not a Kubernetes quantity",
            "give the size with a unit, e.g. \"10Gi\" or \"500Mi\"",
        )),
    }
}

/// Which running and pending pods mount which claims.
pub(super) async fn mounts(client: &kube::Client, namespace: &str) -> Result<PodMounts> {
    let pods: Vec<LeanPod> = listing::list_all(
        client,
        &format!("/api/v1/namespaces/{namespace}/pods"),
        "pods",
        namespace,
    )
    .await?;
    Ok(PodMounts::of_pods(pods))
}

impl Namespace {
    /// Creates a PVC; everything is checked first (the class must exist), so nothing is
    /// created for a request that cannot work.
    pub fn create_pvc(&self, request: &PvcRequest) -> Result<PvcRow> {
        object_name("PVC name", &request.name)?;
        let size = request
            .size
            .as_deref()
            .or(self.default_pvc_size.as_deref())
            .unwrap_or(DEFAULT_PVC_SIZE);
        storage_size("size", size)?;
        let mode = access_mode(request.access_mode.as_deref().unwrap_or("ReadWriteOnce"))?;
        if let Some(class) = &request.storage_class {
            self.require_storage_class(class)?;
        }
        let pvc = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(request.name.clone()),
                labels: Some(BTreeMap::from([(
                    crate::manifest::MANAGED_BY.to_string(),
                    "kflow".to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec![mode.to_string()]),
                storage_class_name: request.storage_class.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity(size.to_string()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client().clone(), &self.name);
        let created = self.backend.block_on(async {
            api.create(&PostParams::default(), &pvc).await.map_err(|e| {
                if status_code(&e) == Some(409) {
                    Error::Resource(ResourceError::Exists {
                        kind: "PVC",
                        name: request.name.clone(),
                        namespace: self.name.clone(),
                    })
                } else {
                    api_error(e, "create", "persistentvolumeclaims", &self.name)
                }
            })
        })?;
        let spec = created.spec.unwrap_or_default();
        Ok(PvcRow {
            name: request.name.clone(),
            phase: created
                .status
                .and_then(|s| s.phase)
                .unwrap_or_else(|| "Pending".into()),
            size: Some(size.to_string()),
            storage_class: spec.storage_class_name,
            access_modes: spec.access_modes.unwrap_or_default(),
            mounted_by: Vec::new(),
            created_at: created.metadata.creation_timestamp.map(|t| t.0.to_string()),
        })
    }

    /// Deletes a PVC. Running pods that mount it make this refuse unless `force`.
    pub fn delete_pvc(&self, name: &str, force: bool) -> Result<()> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client().clone(), &self.name);
        self.backend.block_on(async {
            let exists = retry(|| api.get_opt(name))
                .await
                .map_err(|e| api_error(e, "get", "persistentvolumeclaims", &self.name))?;
            if exists.is_none() {
                return Err(self.no_pvc(name));
            }
            if !force {
                let running = mounts(self.client(), &self.name).await?.running(name);
                if !running.is_empty() {
                    return Err(Error::Resource(ResourceError::InUse {
                        name: name.to_string(),
                        pods: running,
                    }));
                }
            }
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(e) if status_code(&e) == Some(404) => Err(self.no_pvc(name)),
                Err(e) => Err(api_error(e, "delete", "persistentvolumeclaims", &self.name)),
            }
        })
    }

    pub(super) fn no_pvc(&self, name: &str) -> Error {
        Error::Resource(ResourceError::NotFound {
            kind: "PVC",
            name: name.to_string(),
            namespace: self.name.clone(),
            fix: "`kflow ls pvcs` lists the PVCs of the namespace".into(),
        })
    }

    /// Checks a StorageClass exists, naming the ones that do when it does not.
    fn require_storage_class(&self, class: &str) -> Result<()> {
        let classes: Vec<StorageClassRow> = self
            .backend
            .block_on(listing::list_all::<LeanStorageClass>(
                self.client(),
                "/apis/storage.k8s.io/v1/storageclasses",
                "storageclasses",
                "",
            ))?
            .into_iter()
            .map(LeanStorageClass::row)
            .collect();
        if classes.iter().any(|c| c.name == class) {
            return Ok(());
        }
        let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
        Err(Error::invalid(
            "storage class",
            class,
            "the cluster has no StorageClass of that name",
            if names.is_empty() {
                "leave the class out to use the cluster's default".to_string()
            } else {
                format!("use one of: {}", names.join(", "))
            },
        ))
    }

    /// Whether a PVC exists, for checks before a Notebook server is made.
    pub(super) fn pvc_exists(&self, name: &str) -> Result<bool> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client().clone(), &self.name);
        self.backend.block_on(async {
            retry(|| api.get_opt(name))
                .await
                .map(|p| p.is_some())
                .map_err(|e| api_error(e, "get", "persistentvolumeclaims", &self.name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes_by_any_name() {
        assert_eq!(access_mode("rwx").unwrap(), "ReadWriteMany");
        assert_eq!(access_mode("ReadWriteOnce").unwrap(), "ReadWriteOnce");
        let err = access_mode("shared").unwrap_err().to_string();
        assert!(err.contains("ReadWriteMany (RWX)"), "{err}");
    }

    #[test]
    fn names_and_sizes() {
        assert!(object_name("PVC name", "data-1").is_ok());
        assert!(object_name("PVC name", "Data").is_err());
        assert!(storage_size("size", "10Gi").is_ok());
        assert!(storage_size("size", "10").is_err());
        assert!(storage_size("size", "ten").is_err());
    }
}
