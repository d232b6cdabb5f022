//! `kflow jobs` on a cluster: one paged listing of the training jobs of every served kind
//! gives the phases of this machine's runs and adds the kflow jobs made elsewhere.

use kube::api::{Api, DynamicObject, ListParams};

use crate::backend::{BackendListing, JobSummary, Run};
use crate::error::Result;
use crate::kubeflow::{Conditions, JobKind};
use crate::manifest::{self, MANAGED_BY};

use super::api_errors::api_error;
use super::retry::retry;
use super::{status, tracking, ClusterBackend, ClusterHandle};

/// The rows of this machine's cluster runs and of the kflow jobs found in the connection's
/// namespace. A cluster that cannot be listed leaves the last known phases (marked `stale`)
/// and says why.
pub(super) fn list(handle: &ClusterHandle, known: Vec<Run>, configured: bool) -> BackendListing {
    if known.is_empty() && !configured {
        return BackendListing::default();
    }
    let mut problem = None;
    let listed = match handle.get() {
        Ok(b) => list_jobs(&b)
            .map(|l| (b.namespace.clone(), l))
            .map_err(|e| format!("the cluster at {} could not be listed: {e}", b.server)),
        Err(e) => Err(e.to_string()),
    }
    .map_err(|p| problem = Some(p))
    .ok();
    // Runs in other namespaces are not in the listing: their saved phase stands.
    let listed_here = |run: &Run| {
        listed
            .as_ref()
            .filter(|(ns, _)| run.record.spec.namespace.as_deref() == Some(ns.as_str()))
            .map(|(_, l)| l)
    };
    let mut jobs: Vec<JobSummary> = known
        .iter()
        .map(|run| {
            let spec = &run.record.spec;
            let here = listed_here(run);
            let seen = here.and_then(|l| {
                l.iter()
                    .find(|j| j.name == spec.name && j.run_id.as_deref() == Some(&spec.run_id))
            });
            let (phase, reason) = match (seen, tracking::last_status(&run.dir)) {
                (Some(j), _) => (j.phase.clone(), j.reason.clone()),
                (None, Some(s)) if here.is_some() => {
                    let s = status::deleted(Some(s));
                    (s.phase.as_str().to_string(), s.reason)
                }
                (None, Some(s)) => (s.phase.as_str().to_string(), s.reason),
                (None, None) => ("Unknown".to_string(), None),
            };
            let mut row = JobSummary::of_record(&run.record, phase, reason);
            row.stale = here.is_none();
            row
        })
        .collect();
    for j in listed.map(|(_, l)| l).into_iter().flatten() {
        if j.managed && !jobs.iter().any(|o| o.name == j.name) {
            jobs.push(JobSummary {
                name: j.name,
                kind: j.kind,
                backend: "cluster".into(),
                phase: j.phase,
                reason: j.reason,
                script: j.script,
                created_at: j.created_at,
                stale: false,
            });
        }
    }
    BackendListing { jobs, problem }
}

/// A training job as a listing shows it: only the fields a list needs, read leniently.
#[derive(Debug, Clone)]
pub(super) struct ListedJob {
    pub name: String,
    pub kind: String,
    pub run_id: Option<String>,
    pub managed: bool,
    pub phase: String,
    pub reason: Option<String>,
    pub script: String,
    pub created_at: String,
}

/// Reads one listed object; odd or partial objects still give a row.
pub(super) fn listed_job(kind: &str, o: &DynamicObject) -> ListedJob {
    let labels = o.metadata.labels.clone().unwrap_or_default();
    let annotations = o.metadata.annotations.clone().unwrap_or_default();
    let conditions = Conditions::of_job(&o.data);
    ListedJob {
        name: o.metadata.name.clone().unwrap_or_default(),
        kind: kind.to_string(),
        run_id: labels.get(manifest::RUN_ID_LABEL).cloned(),
        managed: labels.get(MANAGED_BY).is_some_and(|v| v == "kflow"),
        phase: conditions.phase.as_str().to_string(),
        reason: conditions.reason,
        script: annotations
            .get(manifest::SCRIPT_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        created_at: o
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
    }
}

/// Every training job of the served kinds in the connection's namespace, paged 500 at a time.
pub(super) fn list_jobs(backend: &ClusterBackend) -> Result<Vec<ListedJob>> {
    let caps = backend.capabilities()?;
    let ns = backend.namespace.clone();
    let kinds: Vec<(JobKind, &str)> = JobKind::ALL
        .into_iter()
        .filter_map(|kind| Some((kind, caps.version_of(kind)?)))
        .collect();
    backend.block_on(async {
        let mut out = Vec::new();
        for (kind, version) in kinds {
            let ar = kind.api_resource(version);
            let api: Api<DynamicObject> = Api::namespaced_with(backend.client().clone(), &ns, &ar);
            let mut token: Option<String> = None;
            loop {
                let mut lp = ListParams::default().limit(500);
                if let Some(t) = &token {
                    lp = lp.continue_token(t);
                }
                let page = retry(|| api.list(&lp))
                    .await
                    .map_err(|e| api_error(e, "list", &ar.plural, &ns))?;
                out.extend(page.items.iter().map(|o| listed_job(kind.as_str(), o)));
                token = page.metadata.continue_.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    })
}
