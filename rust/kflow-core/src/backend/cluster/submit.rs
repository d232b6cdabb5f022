//! Submission: ensure the pip-cache PVC and create the job, suspended, with the run record as
//! an annotation; upload the code as ConfigMaps owned by the job so they vanish with it; then
//! resume the job. Every step is idempotent by run id: a 409 for an object carrying our run id is a
//! retry of ours and is adopted; one carrying another run id means the name is taken.

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
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
///
/// The job comes first, suspended, so the code parts can be created already owned by it (gone
/// with it) and no part is written twice: a 10 MiB project is fifteen 700 KiB ConfigMaps, and
/// an ownerReference patch each afterwards made the API server decode, merge and store every
/// one of them again. The job is then resumed. An operator whose CRD does not know
/// `runPolicy.suspend` (the API server prunes it, so the created job comes back without it)
/// starts the job at once; its pods then wait in ContainerCreating for their code volumes,
/// which the kubelet mounts as soon as the parts exist, and no resume is needed.
pub async fn submit(client: &kube::Client, sub: &Submission<'_>) -> Result<String> {
    let ns = sub.namespace;
    let pip_cache = async {
        match &sub.manifests.pip_cache {
            Some(pvc) => ensure_pip_cache(client, ns, pvc).await,
            None => Ok(()),
        }
    };
    let (pip_cache, job) = futures::join!(pip_cache, create_job(client, sub));
    let created_job = job?;
    if let Err(e) = pip_cache {
        if created_job.fresh {
            delete_job(client, sub).await;
        }
        return Err(e);
    }

    let api_version = &sub.manifests.job.api_version;
    let owner = OwnerReference {
        api_version: api_version.clone(),
        kind: sub.kind.as_str().to_string(),
        name: sub.name.to_string(),
        uid: created_job.uid.clone(),
        controller: Some(false),
        block_owner_deletion: Some(false),
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let parts: Vec<&ConfigMap> = std::iter::once(&sub.manifests.code)
        .chain(&sub.manifests.code_parts)
        .collect();
    let bodies = configmap_bodies(&parts, &owner);
    // Every part at once: one round trip for all of them instead of one each.
    let codes = futures::future::join_all(
        parts
            .iter()
            .zip(bodies)
            .map(|(cm, body)| create_code(client, &cms, cm, body, sub)),
    )
    .await;
    let mut created = Vec::new();
    let mut first_error = None;
    for code in codes {
        match code {
            Ok((name, fresh)) => {
                if fresh {
                    created.push(name);
                }
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    let resumed = match first_error {
        Some(e) => Err(e),
        None if created_job.suspended => resume_job(client, sub).await,
        None => Ok(()),
    };
    if let Err(e) = resumed {
        // Nothing half-made stays behind: what this call made goes again (the parts also go
        // with the job, but a job that was already there is not this call's to delete).
        let delete = DeleteParams::default();
        futures::future::join_all(created.iter().map(|name| cms.delete(name, &delete))).await;
        if created_job.fresh {
            delete_job(client, sub).await;
        }
        return Err(e);
    }
    Ok(created_job.uid)
}

/// `object` with `owner` as its only owner.
pub(crate) fn owned_by<K: kube::Resource + Clone>(object: &K, owner: &OwnerReference) -> K {
    let mut object = object.clone();
    object.meta_mut().owner_references = Some(vec![owner.clone()]);
    object
}

/// What a create asks to get back: the object's metadata only, as the API server sends it to
/// client-go's metadata client; a code part's bytes need not come back.
const METADATA_ONLY: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/// The parts' create bodies, owned by `owner`, written on all cores: a 10 MiB project is 13 MiB
/// of base64, the largest piece of CPU work in a submission after packing.
fn configmap_bodies(parts: &[&ConfigMap], owner: &OwnerReference) -> Vec<Vec<u8>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = parts.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let writers: Vec<_> = parts
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|cm| configmap_body(cm, owner))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// `cm` as JSON with `owner` as its only owner. The binary data is base64-encoded straight
/// into the body: serde would encode it into a string first and then scan that string for
/// characters to escape, of which base64 has none.
fn configmap_body(cm: &ConfigMap, owner: &OwnerReference) -> Vec<u8> {
    let head = ConfigMap {
        metadata: cm.metadata.clone(),
        data: cm.data.clone(),
        immutable: cm.immutable,
        binary_data: None,
    };
    let mut body = serde_json::to_vec(&owned_by(&head, owner)).expect("a ConfigMap serializes");
    let binary = cm.binary_data.iter().flatten().collect::<Vec<_>>();
    if binary.is_empty() {
        return body;
    }
    body.pop(); // the object's closing brace
    body.extend_from_slice(b",\"binaryData\":{");
    for (i, (key, value)) in binary.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, key).expect("a key serializes");
        body.extend_from_slice(b":\"");
        let start = body.len();
        let encoded = base64::encoded_len(value.0.len(), true).expect("a part fits in memory");
        body.resize(start + encoded, 0);
        base64::engine::general_purpose::STANDARD
            .encode_slice(&value.0, &mut body[start..])
            .expect("sized for the encoding");
        body.push(b'"');
    }
    body.extend_from_slice(b"}}");
    body
}

async fn create_code(
    client: &kube::Client,
    cms: &Api<ConfigMap>,
    cm: &ConfigMap,
    body: Vec<u8>,
    sub: &Submission<'_>,
) -> Result<(String, bool)> {
    let name = cm.metadata.name.clone().unwrap_or_default();
    let pp = PostParams::default();
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

/// The job as created (or found, when this is a retry of ours).
struct CreatedJob {
    uid: String,
    /// Whether the job is suspended and waits for [`resume_job`].
    suspended: bool,
    /// Whether this call made it (a failure later deletes it again).
    fresh: bool,
}

fn jobs_api(
    client: &kube::Client,
    sub: &Submission<'_>,
) -> (Api<DynamicObject>, kube::discovery::ApiResource) {
    let ar = sub.kind.api_resource(&sub.manifests.job.api_version);
    (Api::namespaced_with(client.clone(), sub.namespace, &ar), ar)
}

fn is_suspended(job: &DynamicObject) -> bool {
    job.data["spec"]["runPolicy"]["suspend"] == json!(true)
}

async fn create_job(client: &kube::Client, sub: &Submission<'_>) -> Result<CreatedJob> {
    let ns = sub.namespace;
    let training_job = &sub.manifests.job;
    let (jobs, ar) = jobs_api(client, sub);
    let mut spec = training_job.spec.clone();
    spec.run_policy.suspend = Some(true);
    let mut job = DynamicObject::new(sub.name, &ar).data(json!({ "spec": spec }));
    job.metadata = training_job.metadata.clone();
    job.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(RECORD_ANNOTATION.into(), sub.record_json.clone());
    let pp = PostParams::default();
    match retry(|| jobs.create(&pp, &job)).await {
        Ok(created) => Ok(CreatedJob {
            suspended: is_suspended(&created),
            uid: created.metadata.uid.unwrap_or_default(),
            fresh: true,
        }),
        Err(e) if status_code(&e) == Some(409) => {
            let existing = retry(|| jobs.get(sub.name))
                .await
                .map_err(|e| api_error(e, "get", &ar.plural, ns))?;
            if run_id_of(&existing.metadata) == Some(sub.run_id) {
                Ok(CreatedJob {
                    suspended: is_suspended(&existing),
                    uid: existing.metadata.uid.unwrap_or_default(),
                    fresh: false,
                })
            } else {
                Err(Error::Job(JobError::Exists {
                    name: sub.name.to_string(),
                }))
            }
        }
        Err(e) => Err(api_error(e, "create", &ar.plural, ns)),
    }
}

/// Lets the operator start the job's pods: its code is in place.
async fn resume_job(client: &kube::Client, sub: &Submission<'_>) -> Result<()> {
    let (jobs, ar) = jobs_api(client, sub);
    let resume = json!({ "spec": { "runPolicy": { "suspend": false } } });
    let (pp, patch) = (PatchParams::default(), Patch::Merge(&resume));
    // The patch applies to the whole job; only its metadata comes back (not the run record).
    retry(|| jobs.patch_metadata(sub.name, &pp, &patch))
        .await
        .map(|_| ())
        .map_err(|e| api_error(e, "patch", &ar.plural, sub.namespace))
}

/// Removes a job this submission made and could not finish, with what it owns.
async fn delete_job(client: &kube::Client, sub: &Submission<'_>) {
    let (jobs, _) = jobs_api(client, sub);
    let _ = jobs.delete(sub.name, &DeleteParams::background()).await;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn a_part_body_is_the_configmap_serde_would_write() {
        let owner = OwnerReference {
            api_version: "kubeflow.org/v1".into(),
            kind: "PyTorchJob".into(),
            name: "train".into(),
            uid: "u-1".into(),
            ..Default::default()
        };
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("train-code-1".into());
        cm.metadata.labels = Some(BTreeMap::from([("a".into(), "b\"c".into())]));
        let payload: Vec<u8> = (0..=255u8).cycle().take(70_001).collect();
        cm.binary_data = Some(BTreeMap::from([
            ("code.tar.gz.1".into(), ByteString(payload)),
            ("empty".into(), ByteString(Vec::new())),
        ]));
        let plain = ConfigMap {
            binary_data: None,
            ..cm.clone()
        };
        for cm in [cm, plain] {
            let ours: serde_json::Value =
                serde_json::from_slice(&configmap_body(&cm, &owner)).unwrap();
            assert_eq!(ours, serde_json::to_value(owned_by(&cm, &owner)).unwrap());
        }
        let empty = ConfigMap::default();
        assert_eq!(configmap_bodies(&[&empty; 5], &owner).len(), 5);
    }
}
