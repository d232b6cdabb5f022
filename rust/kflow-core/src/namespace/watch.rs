//! Listings kept live: a watch per resource (every served training-job kind for jobs) turns
//! the API server's events into the rows the listings give, so a panel applies changes
//! instead of listing again. The first events are the current objects (the watch's initial
//! list), then each change as it happens; a dropped watch resumes on its own.

use std::sync::mpsc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;

use super::lean::LeanObject;
use super::listing::{
    JobResource, LeanConfigMap, LeanJob, LeanNotebook, LeanPvc, LeanStorageClass,
};
use super::rows::{ConfigMapRow, NotebookRow, PvcRow, StorageClassRow, TrainingJobRow};
use super::{volumes, Namespace};

/// What a namespace lists (and can watch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Listed {
    /// Training jobs of every served kind.
    #[serde(rename = "jobs")]
    TrainingJobs,
    /// PersistentVolumeClaims.
    Pvcs,
    /// ConfigMaps.
    ConfigMaps,
    /// Notebook servers.
    Notebooks,
    /// StorageClasses (cluster-wide).
    StorageClasses,
}

impl Listed {
    /// The listing a word names, as every surface spells it: `jobs`, `pvcs`, `configmaps`,
    /// `notebooks`, `storageclasses`.
    pub fn named(word: &str) -> Option<Listed> {
        Some(match word {
            "jobs" => Listed::TrainingJobs,
            "pvcs" => Listed::Pvcs,
            "configmaps" => Listed::ConfigMaps,
            "notebooks" => Listed::Notebooks,
            "storageclasses" => Listed::StorageClasses,
            _ => return None,
        })
    }
}

/// A row of any listing.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Row {
    /// A training job.
    TrainingJob(TrainingJobRow),
    /// A PVC.
    Pvc(PvcRow),
    /// A ConfigMap.
    ConfigMap(ConfigMapRow),
    /// A Notebook server.
    Notebook(NotebookRow),
    /// A StorageClass.
    StorageClass(StorageClassRow),
}

impl Row {
    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            Row::TrainingJob(r) => &r.name,
            Row::Pvc(r) => &r.name,
            Row::ConfigMap(r) => &r.name,
            Row::Notebook(r) => &r.name,
            Row::StorageClass(r) => &r.name,
        }
    }
}

/// One change a watch saw.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum RowChange {
    /// The object is new or changed: its row now.
    Upsert {
        /// Its row.
        row: Row,
        /// Whether it comes from the listing a watch starts (or restarts) with rather than
        /// from a change: a paged view applies these only to the rows it already shows, so
        /// the objects of pages it has not loaded stay out.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        initial: bool,
    },
    /// The object is gone.
    Delete {
        /// Its name.
        name: String,
        /// Its kind, for training jobs (names are unique per kind).
        kind: Option<String>,
    },
}

/// A running watch of one listing; it stops when dropped.
#[derive(Debug)]
pub struct RowWatch {
    // Behind a lock so a watch can be shared between threads (Python objects, servers).
    changes: std::sync::Mutex<mpsc::Receiver<RowChange>>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl RowWatch {
    /// The changes that arrive within `wait` (all that are ready, at least one, or none when
    /// `wait` passes first).
    pub fn next_changes(&self, wait: Duration) -> Vec<RowChange> {
        let changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        if let Ok(first) = changes.recv_timeout(wait) {
            out.push(first);
            out.extend(changes.try_iter());
        }
        out
    }
}

impl Drop for RowWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How one resource's objects become rows.
#[derive(Clone)]
enum Mapping {
    Job(JobResource),
    Pvc,
    ConfigMap,
    Notebook(String),
    StorageClass,
}

fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn lean<T: LeanObject>(object: &DynamicObject) -> T {
    let value = serde_json::to_value(object).unwrap_or(Value::Null);
    T::deserialize(&value).unwrap_or_else(|_| T::from_odd(&value))
}

impl Namespace {
    /// Watches a listing: every current row first, then each change.
    pub fn watch(&self, listed: Listed) -> Result<RowWatch> {
        let ns = self.name.clone();
        let targets: Vec<(ApiResource, Mapping)> = match listed {
            Listed::TrainingJobs => self
                .served()?
                .jobs
                .into_iter()
                .map(|r| (resource(&r.api_version, r.kind, &r.plural), Mapping::Job(r)))
                .collect(),
            Listed::Pvcs => vec![(
                resource("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
                Mapping::Pvc,
            )],
            Listed::ConfigMaps => {
                vec![(
                    resource("v1", "ConfigMap", "configmaps"),
                    Mapping::ConfigMap,
                )]
            }
            Listed::Notebooks => vec![(
                resource(&self.notebook_version()?, "Notebook", "notebooks"),
                Mapping::Notebook(ns.clone()),
            )],
            Listed::StorageClasses => vec![(
                resource("storage.k8s.io/v1", "StorageClass", "storageclasses"),
                Mapping::StorageClass,
            )],
        };
        let (tx, changes) = mpsc::channel();
        let mut tasks = Vec::new();
        for (ar, mapping) in targets {
            let api: Api<DynamicObject> = match mapping {
                Mapping::StorageClass => Api::all_with(self.client().clone(), &ar),
                _ => Api::namespaced_with(self.client().clone(), &ns, &ar),
            };
            let (tx, client, ns) = (tx.clone(), self.client().clone(), ns.clone());
            let task = self.backend.runtime().spawn(async move {
                let mut events = watcher::watcher(api, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(event) = events.next().await {
                    let (o, initial) = match event {
                        Ok(Event::Apply(o)) => (o, false),
                        Ok(Event::InitApply(o)) => (o, true),
                        Ok(Event::Delete(o)) => {
                            let kind = match &mapping {
                                Mapping::Job(r) => Some(r.kind.to_string()),
                                _ => None,
                            };
                            let name = o.metadata.name.unwrap_or_default();
                            if tx.send(RowChange::Delete { name, kind }).is_err() {
                                return;
                            }
                            continue;
                        }
                        Ok(Event::Init | Event::InitDone) | Err(_) => continue,
                    };
                    let row = match &mapping {
                        Mapping::Job(r) => Row::TrainingJob(lean::<LeanJob>(&o).row(r)),
                        Mapping::Pvc => {
                            // Which pods mount it is not in the claim: asked afresh.
                            let mounts = volumes::mounts(&client, &ns).await.unwrap_or_default();
                            Row::Pvc(lean::<LeanPvc>(&o).row(&mounts))
                        }
                        Mapping::ConfigMap => Row::ConfigMap(lean::<LeanConfigMap>(&o).row()),
                        Mapping::Notebook(ns) => Row::Notebook(lean::<LeanNotebook>(&o).row(ns)),
                        Mapping::StorageClass => {
                            Row::StorageClass(lean::<LeanStorageClass>(&o).row())
                        }
                    };
                    let change = RowChange::Upsert { row, initial };
                    if tx.send(change).is_err() {
                        return;
                    }
                }
            });
            tasks.push(task.abort_handle());
        }
        Ok(RowWatch {
            changes: std::sync::Mutex::new(changes),
            tasks,
        })
    }
}
