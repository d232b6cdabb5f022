//! RunSpec -> a schedule's objects: a CronJob whose batch Job runs the run's pod (the same
//! startup chain as a training job's master), the code ConfigMaps it mounts, and a claim the
//! runs write their outputs to, so they outlive the pods and wait there until collected.
//! A CronJob can only make batch Jobs, so a scheduled run is one pod, not a training job.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, EnvVar, EnvVarSource, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::startup::Finale;
use super::{
    build, metadata, pod_template, read_write_once_claim, strings, CodePayload, MpiApi,
    DIGEST_ANNOTATION, SCRIPT_ANNOTATION,
};
use crate::spec::RunSpec;

/// On a schedule's runs (Jobs and pods) and its reader pods: which schedule they belong to.
pub const SCHEDULE_LABEL: &str = "kflow.dev/schedule";
/// Where a scheduled run's pod mounts the outputs claim.
pub const OUTPUTS_MOUNT: &str = "/kflow/outputs";
/// The folder a scheduled run writes its outputs to: `OUTPUTS_MOUNT/<run>`.
pub const OUTPUT_DIR_ENV: &str = "KFLOW_OUTPUT_DIR";
/// The run's name (its batch Job's), from the pod's `job-name` label.
pub const SCHEDULED_RUN_ENV: &str = "KFLOW_SCHEDULED_RUN";
/// How many finished runs of each outcome the CronJob keeps for kflow to collect: their pods
/// say why a run failed (OOMKilled), which the outputs folder cannot.
pub const RUN_HISTORY: i32 = 20;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// The cron expression (five fields, or `@hourly` and the like).
    pub cron: String,
    /// The IANA time zone the expression is read in; `None`: the controller's (UTC).
    pub timezone: Option<String>,
    /// Whether the schedule is paused.
    pub suspend: bool,
    /// The size of the outputs claim.
    pub outputs_size: String,
    /// How long a run may take before Kubernetes ends it (DeadlineExceeded).
    pub timeout_seconds: Option<i64>,
}

/// The objects of one schedule, in the types the API server takes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleManifests {
    /// The CronJob.
    pub cron_job: CronJob,
    /// The code ConfigMap, or the first slice of a large archive.
    pub code: ConfigMap,
    /// The further slices.
    pub code_parts: Vec<ConfigMap>,
    /// The claim the runs write their outputs to.
    pub outputs: PersistentVolumeClaim,
    /// The pip-cache claim, when the runs mount one (shared, never owned by the schedule).
    pub pip_cache: Option<PersistentVolumeClaim>,
}

/// kflow's metadata for an object of the schedule, labelled with it.
fn schedule_metadata(spec: &RunSpec, name: &str) -> ObjectMeta {
    let mut meta = metadata(spec, name);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(SCHEDULE_LABEL.into(), spec.name.clone());
    meta
}

/// The claim a schedule's runs write their outputs to.
pub fn outputs_claim_name(schedule: &str) -> String {
    format!("{schedule}-outputs")
}

/// The objects of a schedule of `spec` (its name is the schedule's).
pub fn build_schedule(spec: &RunSpec, code: &CodePayload, timing: &Timing) -> ScheduleManifests {
    let run = build(spec, code, MpiApi::V1);
    let mut template = pod_template(spec, code, "main", &Finale::Python);
    let labels = template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    labels.insert(SCHEDULE_LABEL.into(), spec.name.clone());
    let pod = template.spec.get_or_insert_with(Default::default);
    pod.restart_policy = Some("Never".into());
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: "kflow-outputs".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: outputs_claim_name(&spec.name),
            ..Default::default()
        }),
        ..Default::default()
    });
    let container = &mut pod.containers[0];
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            name: "kflow-outputs".into(),
            mount_path: OUTPUTS_MOUNT.into(),
            ..Default::default()
        });
    // The run's name is known only once the CronJob has made its Job: the kubelet fills it in
    // from the pod's label, and `$(…)` expands it into the folder.
    let env = container.env.get_or_insert_with(Vec::new);
    env.insert(
        0,
        EnvVar {
            name: SCHEDULED_RUN_ENV.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.labels['job-name']".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    env.insert(
        1,
        EnvVar {
            name: OUTPUT_DIR_ENV.into(),
            value: Some(format!("{OUTPUTS_MOUNT}/$({SCHEDULED_RUN_ENV})")),
            ..Default::default()
        },
    );

    let mut cron_meta = metadata(spec, &spec.name);
    cron_meta.annotations = Some(strings([
        (SCRIPT_ANNOTATION, &spec.script),
        (DIGEST_ANNOTATION, code.sha256()),
    ]));
    let mut job_meta = schedule_metadata(spec, &spec.name);
    job_meta.name = None;
    let cron_job = CronJob {
        metadata: cron_meta,
        spec: Some(CronJobSpec {
            schedule: timing.cron.clone(),
            time_zone: timing.timezone.clone(),
            suspend: Some(timing.suspend),
            // A run that is still going when the next is due: the next waits (two runs of one
            // notebook would write the same outputs).
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(RUN_HISTORY),
            failed_jobs_history_limit: Some(RUN_HISTORY),
            job_template: JobTemplateSpec {
                metadata: Some(job_meta),
                spec: Some(JobSpec {
                    backoff_limit: Some(0),
                    active_deadline_seconds: timing.timeout_seconds,
                    template,
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let outputs = read_write_once_claim(
        schedule_metadata(spec, &outputs_claim_name(&spec.name)),
        &timing.outputs_size,
    );
    ScheduleManifests {
        cron_job,
        code: run.code,
        code_parts: run.code_parts,
        outputs,
        pip_cache: run.pip_cache,
    }
}
