//! The object store: every object as JSON, one global resourceVersion counter, a bounded event
//! history so watches can resume, and a JSON snapshot in the state dir so a restart keeps state.
//! Objects are kept at their type's storage version and served as the version asked for.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::error::{ApiError, ApiResult};
use crate::resources::{self, ResourceType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as a watcher sees it.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub resource: &'static ResourceType,
    pub kind: EventType,
    pub object: Arc<Value>,
}

impl Change {
    pub fn namespace(&self) -> &str {
        self.object["metadata"]["namespace"].as_str().unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or("")
    }
}

type ObjectKey = (String, String); // (namespace, name); namespace is "" for cluster-scoped objects

struct Inner {
    rv: u64,
    objects: BTreeMap<String, BTreeMap<ObjectKey, Value>>,
    history: VecDeque<Change>,
    /// Watches from a resourceVersion below this cannot be served (410 Gone): their events were
    /// dropped from `history` or predate a restart.
    history_floor: u64,
    dirty: bool,
    uid_counter: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Change>,
    state_file: Option<PathBuf>,
    history_limit: usize,
}

/// Errors loading or saving the state snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading state {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing state {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing state {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct ListResult {
    pub items: Vec<Value>,
    pub resource_version: u64,
    /// The last key returned when the list was cut by `limit`, to build a continue token.
    pub continue_after: Option<(String, String)>,
    pub remaining: usize,
}

impl Store {
    pub fn new(state_dir: Option<PathBuf>, history_limit: usize) -> Result<Arc<Store>, StoreError> {
        let state_file = state_dir.map(|d| d.join("state.json"));
        let mut inner = Inner {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_floor: 1,
            dirty: false,
            uid_counter: 0,
        };
        if let Some(path) = &state_file {
            if path.exists() {
                let text = std::fs::read_to_string(path).map_err(|source| StoreError::Read {
                    path: path.clone(),
                    source,
                })?;
                let snap: Value =
                    serde_json::from_str(&text).map_err(|source| StoreError::Parse {
                        path: path.clone(),
                        source,
                    })?;
                inner.rv = snap["resourceVersion"].as_u64().unwrap_or(1);
                inner.history_floor = inner.rv;
                inner.uid_counter = snap["uidCounter"].as_u64().unwrap_or(0);
                if let Some(map) = snap["objects"].as_object() {
                    for (key, items) in map {
                        // Objects of types no longer served are dropped rather than failing start.
                        let Some(res) = resources::by_key(key).map(ResourceType::storage) else {
                            continue;
                        };
                        let bucket = inner.objects.entry(res.key()).or_default();
                        for item in items.as_array().into_iter().flatten() {
                            let item = res.served_as(item.clone());
                            let ns = item["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or("")
                                .to_string();
                            let name = item["metadata"]["name"].as_str().unwrap_or("").to_string();
                            bucket.insert((ns, name), item);
                        }
                    }
                }
            }
        }
        let (changes, _) = broadcast::channel(4096);
        Ok(Arc::new(Store {
            inner: Mutex::new(inner),
            changes,
            state_file,
            history_limit,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock must not take the whole server down with poisoning.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, res: &'static ResourceType, ns: &str, name: &str) -> Option<Value> {
        let inner = self.lock();
        inner
            .objects
            .get(&res.storage().key())?
            .get(&(ns.to_string(), name.to_string()))
            .map(|o| res.served_as(o.clone()))
    }

    /// Calls `f` with every object of a type, as stored, without copying any: for sums over
    /// many objects (the scheduler's view of what the node's pods use).
    pub fn visit(&self, res: &'static ResourceType, f: &mut dyn FnMut(&Value)) {
        let inner = self.lock();
        for obj in inner
            .objects
            .get(&res.storage().key())
            .into_iter()
            .flat_map(|b| b.values())
        {
            f(obj);
        }
    }

    /// Objects of a type, optionally in one namespace, in (namespace, name) order, starting after
    /// `after`, keeping those `keep` accepts, at most `limit` of them.
    pub fn list(
        &self,
        res: &'static ResourceType,
        ns: Option<&str>,
        after: Option<&(String, String)>,
        limit: Option<usize>,
        keep: &dyn Fn(&Value) -> bool,
    ) -> ListResult {
        let inner = self.lock();
        let mut items = Vec::new();
        let mut continue_after = None;
        let mut remaining = 0;
        if let Some(bucket) = inner.objects.get(&res.storage().key()) {
            let range: Box<dyn Iterator<Item = (&ObjectKey, &Value)>> = match after {
                Some(a) => Box::new(bucket.range::<ObjectKey, _>((
                    std::ops::Bound::Excluded(a.clone()),
                    std::ops::Bound::Unbounded,
                ))),
                None => Box::new(bucket.iter()),
            };
            for (key, obj) in range {
                if let Some(ns) = ns {
                    if key.0 != ns {
                        continue;
                    }
                }
                if !keep(obj) {
                    continue;
                }
                if let Some(l) = limit {
                    if items.len() >= l {
                        remaining += 1;
                        continue;
                    }
                }
                items.push(res.served_as(obj.clone()));
                continue_after = Some(key.clone());
            }
        }
        if remaining == 0 {
            continue_after = None;
        }
        ListResult {
            items,
            resource_version: inner.rv,
            continue_after,
            remaining,
        }
    }

    /// Stores a new object, filling in the metadata the apiserver owns (uid, resourceVersion,
    /// creationTimestamp, generation). With `dry_run` nothing is stored.
    pub fn create(
        &self,
        res: &'static ResourceType,
        obj: Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let served = res;
        let res = res.storage();
        let mut obj = res.served_as(obj);
        let mut inner = self.lock();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let key = (ns.clone(), name.clone());
        if inner
            .objects
            .get(&res.key())
            .is_some_and(|b| b.contains_key(&key))
        {
            return Err(ApiError::already_exists(res.plural, res.group, &name));
        }
        if res.namespaced && res.plural != "events" && !inner_has_namespace(&inner, &ns) {
            return Err(ApiError::not_found("namespaces", "", &ns));
        }
        inner.uid_counter += 1;
        let uid = make_uid(inner.uid_counter);
        let meta = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if matches!(res.group, "kubeflow.org" | "apps") || res.plural == "pods" {
            meta.insert("generation".into(), json!(1));
        }
        meta.remove("deletionTimestamp");
        if dry_run {
            meta.insert("resourceVersion".into(), json!(inner.rv.to_string()));
            return Ok(served.served_as(obj));
        }
        inner.rv += 1;
        let rv = inner.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        inner
            .objects
            .entry(res.key())
            .or_default()
            .insert(key, obj.clone());
        self.record(&mut inner, res, EventType::Added, &obj);
        Ok(served.served_as(obj))
    }

    /// `update_with` for one instance of an object: a conflict when the name now belongs to
    /// another (deleted and created again meanwhile), so a late writer never touches its successor.
    pub fn update_instance(
        &self,
        res: &'static ResourceType,
        ns: &str,
        name: &str,
        uid: &str,
        f: impl FnOnce(&Value) -> Value,
    ) -> ApiResult<Value> {
        self.update_with(res, ns, name, false, |old| {
            if old["metadata"]["uid"].as_str() != Some(uid) {
                return Err(ApiError::conflict(
                    res.plural,
                    res.group,
                    name,
                    "the object was replaced",
                ));
            }
            Ok(f(old))
        })
    }

    /// Read-modify-write of one object under the store lock, so concurrent writers (clients, the
    /// operator, the kubelet) never lose each other's updates. `f` returns the new object.
    pub fn update_with(
        &self,
        res: &'static ResourceType,
        ns: &str,
        name: &str,
        dry_run: bool,
        f: impl FnOnce(&Value) -> ApiResult<Value>,
    ) -> ApiResult<Value> {
        let served = res;
        let res = res.storage();
        let mut inner = self.lock();
        let key = (ns.to_string(), name.to_string());
        let old = inner
            .objects
            .get(&res.key())
            .and_then(|b| b.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(res.plural, res.group, name))?;
        let mut new = res.served_as(f(&served.served_as(old.clone()))?);
        if new["metadata"]["name"] != old["metadata"]["name"] {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        // Metadata the server owns cannot be changed by a client.
        for field in ["uid", "creationTimestamp", "namespace"] {
            if !old["metadata"][field].is_null() {
                new["metadata"][field] = old["metadata"][field].clone();
            }
        }
        if let Some(given) = new["metadata"]["resourceVersion"].as_str() {
            if Some(given) != old["metadata"]["resourceVersion"].as_str() {
                return Err(ApiError::conflict(
                    res.plural,
                    res.group,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
        }
        // generation counts spec changes, as the apiserver does for CRs and pods.
        if let Some(g) = old["metadata"]["generation"].as_i64() {
            let changed = strip_meta_status(&old) != strip_meta_status(&new);
            new["metadata"]["generation"] = json!(if changed { g + 1 } else { g });
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if new == old || dry_run {
            // A no-op write does not bump resourceVersion or wake watchers, like the apiserver.
            return Ok(served.served_as(new));
        }
        inner.rv += 1;
        let rv = inner.rv;
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        inner
            .objects
            .entry(res.key())
            .or_default()
            .insert(key, new.clone());
        self.record(&mut inner, res, EventType::Modified, &new);
        Ok(served.served_as(new))
    }

    /// Deletes one object and, like the garbage collector with background propagation, every
    /// object whose ownerReferences point at a deleted uid.
    pub fn delete(
        &self,
        res: &'static ResourceType,
        ns: &str,
        name: &str,
        dry_run: bool,
        cascade: bool,
    ) -> ApiResult<Value> {
        let served = res;
        let res = res.storage();
        let mut inner = self.lock();
        let key = (ns.to_string(), name.to_string());
        let exists = inner
            .objects
            .get(&res.key())
            .and_then(|b| b.get(&key))
            .cloned();
        let Some(obj) = exists else {
            return Err(ApiError::not_found(res.plural, res.group, name));
        };
        if dry_run {
            return Ok(served.served_as(obj));
        }
        // Each set of objects once, by its storage version.
        let stored_types = || resources::RESOURCES.iter().filter(|r| r.storage() == *r);
        let mut queue = vec![(res, key)];
        let mut first = None;
        while let Some((r, k)) = queue.pop() {
            let Some(removed) = inner.objects.get_mut(&r.key()).and_then(|b| b.remove(&k)) else {
                continue;
            };
            // Deleting a namespace deletes everything in it.
            if r.plural == "namespaces" {
                for other in stored_types().filter(|o| o.namespaced) {
                    if let Some(b) = inner.objects.get(&other.key()) {
                        for k2 in b.keys().filter(|k2| k2.0 == k.1) {
                            queue.push((other, k2.clone()));
                        }
                    }
                }
            }
            let uid = removed["metadata"]["uid"]
                .as_str()
                .unwrap_or("")
                .to_string();
            for other in stored_types().filter(|_| cascade) {
                if let Some(b) = inner.objects.get(&other.key()) {
                    for (k2, o2) in b.iter() {
                        let owned =
                            o2["metadata"]["ownerReferences"]
                                .as_array()
                                .is_some_and(|refs| {
                                    refs.iter().any(|r| r["uid"].as_str() == Some(uid.as_str()))
                                });
                        if owned {
                            queue.push((other, k2.clone()));
                        }
                    }
                }
            }
            inner.rv += 1;
            let mut gone = removed;
            gone["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
            self.record(&mut inner, r, EventType::Deleted, &gone);
            if first.is_none() {
                first = Some(gone);
            }
        }
        first
            .map(|o| served.served_as(o))
            .ok_or_else(|| ApiError::not_found(res.plural, res.group, name))
    }

    fn record(&self, inner: &mut Inner, res: &'static ResourceType, kind: EventType, obj: &Value) {
        let change = Change {
            rv: inner.rv,
            resource: res,
            kind,
            object: Arc::new(obj.clone()),
        };
        inner.history.push_back(change.clone());
        while inner.history.len() > self.history_limit {
            if let Some(dropped) = inner.history.pop_front() {
                inner.history_floor = dropped.rv;
            }
        }
        inner.dirty = true;
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Everything a watch from `rv` must replay, plus a live receiver subscribed under the same
    /// lock so no change falls between the two. Err(floor) when `rv` is older than the history.
    pub fn watch_from(
        &self,
        res: &'static ResourceType,
        rv: u64,
    ) -> Result<(Vec<Change>, broadcast::Receiver<Change>), u64> {
        let inner = self.lock();
        if rv < inner.history_floor {
            return Err(inner.history_floor);
        }
        let rx = self.changes.subscribe();
        let past = inner
            .history
            .iter()
            .filter(|c| c.rv > rv && c.resource == res.storage())
            .cloned()
            .collect();
        Ok((past, rx))
    }

    /// The current objects as synthetic ADDED events plus a live receiver (a watch without rv).
    pub fn watch_now(
        &self,
        res: &'static ResourceType,
    ) -> (Vec<Change>, broadcast::Receiver<Change>, u64) {
        let res = res.storage();
        let inner = self.lock();
        let rx = self.changes.subscribe();
        let now: Vec<Change> = inner
            .objects
            .get(&res.key())
            .map(|b| {
                b.values()
                    .map(|o| Change {
                        rv: inner.rv,
                        resource: res,
                        kind: EventType::Added,
                        object: Arc::new(o.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        (now, rx, inner.rv)
    }

    pub fn history_floor(&self) -> u64 {
        self.lock().history_floor
    }

    /// Drops the event history, as etcd compaction does; older watches then get 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.history_floor = inner.rv;
    }

    /// Writes the snapshot if anything changed since the last write (atomic rename).
    pub fn flush(&self) -> Result<(), StoreError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let snapshot = {
            let mut inner = self.lock();
            if !inner.dirty {
                return Ok(());
            }
            inner.dirty = false;
            let objects: serde_json::Map<String, Value> = inner
                .objects
                .iter()
                .map(|(k, b)| (k.clone(), Value::Array(b.values().cloned().collect())))
                .collect();
            json!({"resourceVersion": inner.rv, "uidCounter": inner.uid_counter, "objects": objects})
        };
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            std::fs::write(&tmp, serde_json::to_vec(&snapshot).unwrap_or_default())?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|source| StoreError::Write {
            path: path.clone(),
            source,
        })
    }
}

fn inner_has_namespace(inner: &Inner, ns: &str) -> bool {
    inner
        .objects
        .get(&resources::namespaces().key())
        .is_some_and(|b| b.contains_key(&(String::new(), ns.to_string())))
}

fn strip_meta_status(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

fn make_uid(counter: u64) -> String {
    // Unique per process start and counter; shaped like a UUID because clients sometimes parse it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let a = nanos ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (counter >> 12) & 0xfff,
        counter & 0xfff,
        (a ^ (counter << 20)) & 0xffff_ffff_ffff
    )
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn now_rfc3339_nanos() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
