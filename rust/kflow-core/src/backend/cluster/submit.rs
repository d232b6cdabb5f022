//! Submission: ensure the pip-cache PVC, upload the code as its ConfigMap, create the job with
//! the run record as an annotation, then make the ConfigMap owned by the job so it vanishes
//! with it. Every step is idempotent by run id: a 409 for an object carrying our run id is a
//! retry of ours and is adopted; one carrying another run id means the name is taken.

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{PartialObjectMeta, Request};
use serde_json::json;

use crate::error::{Error, JobError, Result};
use crate::manifest::{Manifests, RUN_ID_LABEL};
use crate::spec::JobKind;

use super::api_errors::{api_error, status_code};
use super::retry::retry;
use super::RECORD_ANNOTATION;

pub struct Submission<'a> {
    pub manifests: &'a Manifests,
    pub namespace: &'a str,
    pub kind: JobKind,
    pub name: &'a str,
    pub run_id: &'a str,
    /// The run record as JSON, stored on the job.
    pub record_json: String,
}

fn run_id_of(meta: &kube::api::ObjectMeta) -> Option<&str> {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(RUN_ID_LABEL))
        .map(String::as_str)
}

/// Creates the PVC unless it exists. A 403 on create is fine when the PVC is already there
/// (users often may use but not create claims).
pub async fn ensure_pip_cache(
    client: &kube::Client,
    ns: &str,
    object: &PersistentVolumeClaim,
) -> Result<()> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    match retry(|| api.create(&pp, object)).await {
        Ok(_) => Ok(()),
        Err(e) if status_code(&e) == Some(409) => Ok(()),
        Err(e) if status_code(&e) == Some(403) => {
            let name = object.metadata.name.clone().unwrap_or_default();
            match retry(|| api.get_opt(&name)).await {
                Ok(Some(_)) => Ok(()),
                _ => Err(api_error(e, "create", "persistentvolumeclaims", ns)),
            }
        }
        Err(e) => Err(api_error(e, "create", "persistentvolumeclaims", ns)),
    }
}

/// Creates everything for one run. Returns the job's uid.
pub async fn submit(client: &kube::Client, sub: &Submission<'_>) -> Result<String> {
    let ns = sub.namespace;
    // The claim and every code part at once: a 10 MiB project is fifteen ConfigMaps, and one
    // round trip for all of them instead of one each is most of a submission's time.
    let pip_cache = async {
        match &sub.manifests.pip_cache {
            Some(pvc) => ensure_pip_cache(client, ns, pvc).await,
            None => Ok(()),
        }
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let parts = std::iter::once(&sub.manifests.code).chain(&sub.manifests.code_parts);
    let (pip_cache, codes) = futures::join!(
        pip_cache,
        futures::future::join_all(parts.map(|cm| create_code(client, &cms, cm, sub)))
    );
    let mut names = Vec::new();
    let mut created = Vec::new();
    let mut first_error = None;
    for code in codes {
        match code {
            Ok((name, fresh)) => {
                if fresh {
                    created.push(name.clone());
                }
                names.push(name);
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    let uid = match (pip_cache, first_error) {
        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => create_job(client, sub).await,
    };
    let uid = match uid {
        Ok(uid) => uid,
        Err(e) => {
            // Nothing half-made stays behind: the parts this call made go again.
            let delete = DeleteParams::default();
            futures::future::join_all(created.iter().map(|name| cms.delete(name, &delete))).await;
            return Err(e);
        }
    };

    // The parts are owned by the job (gone with it); the owner needs the job's uid, so this
    // comes last, again all at once.
    let api_version = &sub.manifests.job.api_version;
    let owner = json!({ "metadata": { "ownerReferences": [{
        "apiVersion": api_version, "kind": sub.kind.as_str(), "name": sub.name, "uid": uid,
        "controller": false, "blockOwnerDeletion": false,
    }]}});
    let (patch_params, patch) = (PatchParams::default(), Patch::Merge(&owner));
    // Only the metadata comes back (the parts' bytes would come back with a plain patch).
    futures::future::join_all(
        names
            .iter()
            .map(|name| retry(|| cms.patch_metadata(name, &patch_params, &patch))),
    )
    .await;
    Ok(uid)
}

/// What a create asks to get back: the object's metadata only, as the API server sends it to
/// client-go's metadata client; a code part's bytes need not come back.
const METADATA_ONLY: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

async fn create_code(
    client: &kube::Client,
    cms: &Api<ConfigMap>,
    cm: &ConfigMap,
    sub: &Submission<'_>,
) -> Result<(String, bool)> {
    let name = cm.metadata.name.clone().unwrap_or_default();
    let pp = PostParams::default();
    let body = serde_json::to_vec(cm).expect("a ConfigMap serializes");
    let create = || async {
        let mut request = Request::new(cms.resource_url())
            .create(&pp, body.clone())
            .map_err(kube::Error::BuildRequest)?;
        request.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static(METADATA_ONLY),
        );
        client
            .request::<PartialObjectMeta<ConfigMap>>(request)
            .await
    };
    match retry(create).await {
        Ok(_) => Ok((name, true)),
        Err(e) if status_code(&e) == Some(409) => {
            let existing = retry(|| cms.get(&name))
                .await
                .map_err(|e| api_error(e, "get", "configmaps", sub.namespace))?;
            if run_id_of(&existing.metadata) != Some(sub.run_id) {
                return Err(Error::Job(JobError::Exists {
                    name: sub.name.to_string(),
                }));
            }
            Ok((name, false))
        }
        Err(e) => Err(api_error(e, "create", "configmaps", sub.namespace)),
    }
}

async fn create_job(client: &kube::Client, sub: &Submission<'_>) -> Result<String> {
    let ns = sub.namespace;
    let training_job = &sub.manifests.job;
    let ar = sub.kind.api_resource(&training_job.api_version);
    let jobs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let mut job = DynamicObject::new(sub.name, &ar).data(json!({ "spec": training_job.spec }));
    job.metadata = training_job.metadata.clone();
    job.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(RECORD_ANNOTATION.into(), sub.record_json.clone());
    let pp = PostParams::default();
    match retry(|| jobs.create(&pp, &job)).await {
        Ok(created) => Ok(created.metadata.uid.unwrap_or_default()),
        Err(e) if status_code(&e) == Some(409) => {
            let existing = retry(|| jobs.get(sub.name))
                .await
                .map_err(|e| api_error(e, "get", &ar.plural, ns))?;
            if run_id_of(&existing.metadata) == Some(sub.run_id) {
                Ok(existing.metadata.uid.unwrap_or_default())
            } else {
                Err(Error::Job(JobError::Exists {
                    name: sub.name.to_string(),
                }))
            }
        }
        Err(e) => Err(api_error(e, "create", &ar.plural, ns)),
    }
}
