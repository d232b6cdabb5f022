//! The access check before a submission: one SelfSubjectAccessReview per verb and resource the
//! submission needs, so a user without rights learns it before kflow packages and uploads
//! anything, and nothing is half-created. The API server stays the judge: a cluster that does
//! not serve the review (or refuses it) is simply not asked, and the creations themselves then
//! report any 403 with the same message.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use crate::error::{ClusterError, Error, Result};
use crate::spec::JobKind;

/// One permission a submission needs: `verb` on `resource` of API `group` ("" is core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
}

/// What creating a job of `kind` with its code ConfigMaps takes (the pip-cache PVC is not
/// asked for: using an existing claim needs no create right).
pub fn submission_needs(kind: JobKind) -> [Need; 3] {
    let job_plural = match kind {
        JobKind::PyTorchJob => "pytorchjobs",
        JobKind::TFJob => "tfjobs",
        JobKind::MPIJob => "mpijobs",
    };
    [
        Need {
            verb: "create",
            group: "kubeflow.org",
            resource: job_plural,
        },
        Need {
            verb: "create",
            group: "",
            resource: "configmaps",
        },
        // Resuming the job once its code is in place.
        Need {
            verb: "patch",
            group: "kubeflow.org",
            resource: job_plural,
        },
    ]
}

/// The first need the API server denies, as `Error::Cluster(ClusterError::Forbidden)`. The
/// reviews are asked all at once: each is a round trip that decides nothing about the others.
pub async fn check(client: &kube::Client, namespace: &str, needs: &[Need]) -> Result<()> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answers =
        futures::future::join_all(needs.iter().map(|need| review(&reviews, namespace, need))).await;
    for (need, denied) in needs.iter().zip(answers) {
        if let Some(why) = denied {
            return Err(Error::Cluster(ClusterError::Forbidden {
                verb: need.verb.into(),
                resource: need.resource.into(),
                namespace: namespace.into(),
                message: why,
            }));
        }
    }
    Ok(())
}

/// Why the API server denies `need`; `None` when it allows it, or when it cannot be asked
/// (not served, or the user may not even ask: the real calls will tell).
async fn review(
    reviews: &Api<SelfSubjectAccessReview>,
    namespace: &str,
    need: &Need,
) -> Option<String> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some(need.verb.to_string()),
                group: Some(need.group.to_string()),
                resource: Some(need.resource.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let pp = PostParams::default();
    let status = super::retry::retry(|| reviews.create(&pp, &review))
        .await
        .ok()?
        .status?;
    (!status.allowed).then(|| {
        status
            .reason
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "the cluster's access review denied it".into())
    })
}
