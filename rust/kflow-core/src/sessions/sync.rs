//! The project as it travels to a running session: digests of the files packaging would
//! take, compared with the last sync here first (nothing changed: no round trip) and with the
//! agent's copy next, so only changed files go over the stream.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::artifacts::{self, EntryKind};
use crate::error::{Error, ResourceError, Result};

use super::link::SessionLink;

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    /// Files sent (new or changed).
    pub sent: Vec<String>,
    /// Files removed in the session because they are gone here.
    pub deleted: Vec<String>,
}

#[derive(Debug, Default)]
pub(super) struct SyncState {
    /// path -> (size, mtime, sha256), so unchanged files are not read again.
    cache: BTreeMap<String, (u64, Option<SystemTime>, String)>,
    /// The digests the session has, as of the last sync; `None` before the first.
    sent: Option<BTreeMap<String, String>>,
}

fn digests(root: &Path, state: &Mutex<SyncState>) -> Result<BTreeMap<String, String>> {
    let walked = artifacts::walk(root, None)?;
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let mut now = BTreeMap::new();
    for entry in walked.entries {
        let EntryKind::File { size, .. } = entry.kind else {
            continue;
        };
        let rel = entry.relative.to_string_lossy().replace('\\', "/");
        let mtime = std::fs::metadata(&entry.absolute)
            .ok()
            .and_then(|m| m.modified().ok());
        let digest = match state.cache.get(&rel) {
            Some((s, m, d)) if *s == size && *m == mtime && mtime.is_some() => d.clone(),
            _ => {
                let d = artifacts::sha256_file(&entry.absolute)?;
                state.cache.insert(rel.clone(), (size, mtime, d.clone()));
                d
            }
        };
        now.insert(rel, digest);
    }
    Ok(now)
}

pub(super) async fn sync(
    name: &str,
    root: &Path,
    state: &Mutex<SyncState>,
    link: &SessionLink,
) -> Result<Synced> {
    let now = digests(root, state)?;
    if state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .sent
        .as_ref()
        == Some(&now)
    {
        return Ok(Synced::default());
    }
    let lost = || {
        Error::Resource(ResourceError::SessionEnded {
            name: name.to_string(),
            reason: "its connection ended while the project was synced".into(),
        })
    };
    let answer = link
        .call(json!({"op": "sync", "files": now}), vec![])
        .await
        .ok_or_else(lost)?;
    let need: Vec<String> = strings(&answer["need"]);
    let deleted: Vec<String> = strings(&answer["deleted"]);
    if !need.is_empty() {
        let mut data = Vec::with_capacity(need.len());
        for rel in &need {
            let path = root.join(rel);
            data.push(std::fs::read(&path).map_err(Error::io("reading", &path))?);
        }
        let sent_digests: Vec<&String> = need.iter().filter_map(|p| now.get(p)).collect();
        link.call(
            json!({"op": "put", "paths": need, "digests": sent_digests}),
            data,
        )
        .await
        .ok_or_else(lost)?;
    }
    state.lock().unwrap_or_else(|p| p.into_inner()).sent = Some(now);
    Ok(Synced {
        sent: need,
        deleted,
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
