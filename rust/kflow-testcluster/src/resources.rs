//! The resource types this cluster serves: one table drives discovery, routing and storage.

/// A served resource type (group/version/plural), described the way discovery documents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Subresources served besides the object itself (`status`, `log`).
    pub subresources: &'static [&'static str],
    pub categories: &'static [&'static str],
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// Key used in the store and in persisted state: `group/version/plural`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.group, self.version, self.plural)
    }
    /// Review kinds (authorization.k8s.io) are create-only and answered, not stored.
    pub fn is_review(&self) -> bool {
        self.group == "authorization.k8s.io"
    }
    pub fn is_training_job(&self) -> bool {
        self.group == "kubeflow.org" && matches!(self.plural, "pytorchjobs" | "tfjobs" | "mpijobs")
    }
    /// The version objects of this type are stored at. A kind served in several versions
    /// whose CRD converts by apiVersion alone (Notebook v1 and v1beta1, `conversion: None`)
    /// is one set of objects, read and written through either version, as on the apiserver.
    pub fn storage(&'static self) -> &'static ResourceType {
        match (self.group, self.plural) {
            ("kubeflow.org", "notebooks") => find(self.group, "v1", self.plural).unwrap_or(self),
            _ => self,
        }
    }
    /// `obj`, as stored, the way this version serves it.
    pub fn served_as(&self, mut obj: serde_json::Value) -> serde_json::Value {
        if obj.get("apiVersion").is_some() {
            obj["apiVersion"] = serde_json::json!(self.api_version());
        }
        obj
    }
}

const fn core(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    subresources: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group: "",
        version: "v1",
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        subresources,
        categories: &[],
    }
}

const fn kubeflow(
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
) -> ResourceType {
    ResourceType {
        group: "kubeflow.org",
        version,
        plural,
        singular,
        kind,
        namespaced: true,
        short_names: &[],
        subresources: &["status"],
        // The training operator's CRDs declare no categories.
        categories: &[],
    }
}

pub static RESOURCES: &[ResourceType] = &[
    core(
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        &["status"],
    ),
    core("pods", "pod", "Pod", true, &["po"], &["status", "log"]),
    core(
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        &["status"],
    ),
    core("events", "event", "Event", true, &["ev"], &[]),
    core(
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        &["status"],
    ),
    core(
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        &["pv"],
        &["status"],
    ),
    core("configmaps", "configmap", "ConfigMap", true, &["cm"], &[]),
    core("secrets", "secret", "Secret", true, &[], &[]),
    core(
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        &[],
    ),
    core("nodes", "node", "Node", false, &["no"], &["status"]),
    kubeflow("v1", "pytorchjobs", "pytorchjob", "PyTorchJob"),
    kubeflow("v1", "tfjobs", "tfjob", "TFJob"),
    kubeflow("v1", "mpijobs", "mpijob", "MPIJob"),
    // The notebook-controller's Notebook, in the two versions Kubeflow serves (stored at v1).
    kubeflow("v1", "notebooks", "notebook", "Notebook"),
    kubeflow("v1beta1", "notebooks", "notebook", "Notebook"),
    // mpi-operator's MPIJob; served instead of the v1 one with `Options::mpi_v2beta1`.
    kubeflow("v2beta1", "mpijobs", "mpijob", "MPIJob"),
    ResourceType {
        group: "storage.k8s.io",
        version: "v1",
        plural: "storageclasses",
        singular: "storageclass",
        kind: "StorageClass",
        namespaced: false,
        short_names: &["sc"],
        subresources: &[],
        categories: &[],
    },
    // What the notebook controller runs a Notebook's pod with.
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        subresources: &["status"],
        categories: &["all"],
    },
    // Run by the Job and CronJob controllers (`batch`): what schedules notebooks.
    ResourceType {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
        subresources: &["status"],
        categories: &["all"],
    },
    ResourceType {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        subresources: &["status"],
        categories: &["all"],
    },
    // `kubectl auth can-i`: evaluated, never stored.
    ResourceType {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        singular: "",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        short_names: &[],
        subresources: &[],
        categories: &[],
    },
    // Read by clients that detect which Kubeflow kinds a cluster serves.
    ResourceType {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        singular: "customresourcedefinition",
        kind: "CustomResourceDefinition",
        namespaced: false,
        short_names: &["crd", "crds"],
        subresources: &["status"],
        categories: &["api-extensions"],
    },
];

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn by_key(key: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.key() == key)
}

pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// Group/versions in discovery order (the first version listed is the preferred one), leaving
/// out types this cluster does not serve.
pub fn group_versions(hidden: &[&ResourceType]) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| !r.group.is_empty() && !hidden.contains(r))
    {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version)
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

pub fn pods() -> &'static ResourceType {
    find("", "v1", "pods").expect("pods is in the table")
}
pub fn events() -> &'static ResourceType {
    find("", "v1", "events").expect("events is in the table")
}
pub fn crds() -> &'static ResourceType {
    find("apiextensions.k8s.io", "v1", "customresourcedefinitions").expect("CRDs are in the table")
}
pub fn nodes() -> &'static ResourceType {
    find("", "v1", "nodes").expect("nodes is in the table")
}
pub fn namespaces() -> &'static ResourceType {
    find("", "v1", "namespaces").expect("namespaces is in the table")
}
pub fn pvcs() -> &'static ResourceType {
    find("", "v1", "persistentvolumeclaims").expect("PVCs are in the table")
}
pub fn persistent_volumes() -> &'static ResourceType {
    find("", "v1", "persistentvolumes").expect("PVs are in the table")
}
pub fn storage_classes() -> &'static ResourceType {
    find("storage.k8s.io", "v1", "storageclasses").expect("storage classes are in the table")
}
pub fn statefulsets() -> &'static ResourceType {
    find("apps", "v1", "statefulsets").expect("statefulsets is in the table")
}
pub fn batch_jobs() -> &'static ResourceType {
    find("batch", "v1", "jobs").expect("batch jobs are in the table")
}
pub fn cronjobs() -> &'static ResourceType {
    find("batch", "v1", "cronjobs").expect("cronjobs are in the table")
}
pub fn services() -> &'static ResourceType {
    find("", "v1", "services").expect("services is in the table")
}
/// The Notebook at its storage version (v1).
pub fn notebooks() -> &'static ResourceType {
    find("kubeflow.org", "v1", "notebooks").expect("notebooks is in the table")
}
