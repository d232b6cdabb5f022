//! The Job and CronJob controllers (`batch/v1`), as kube-controller-manager runs them.
//!
//! Job: pods from the template (`<job>-<5 chars>`, owned by the job, labelled with the job's
//! name and controller uid), `parallelism` at a time until `completions` succeed; a failed pod
//! is replaced until `backoffLimit` failures, then the job fails with `BackoffLimitExceeded`
//! and its running pods are deleted; `suspend` holds it. Conditions as Kubernetes 1.33 writes
//! them (`SuccessCriteriaMet` then `Complete`; `FailureTarget` then `Failed`).
//!
//! CronJob: every second, each unsuspended CronJob whose schedule (five fields or a
//! `@descriptor`, in UTC) has come due since its last run makes a Job `<cronjob>-<minutes since
//! the epoch>` from its jobTemplate, owned by it and annotated with the scheduled time; missed
//! times collapse into the latest, and one older than `startingDeadlineSeconds` is skipped;
//! `concurrencyPolicy` Allow, Forbid (wait while one is active) or Replace (delete it first);
//! finished Jobs beyond `successfulJobsHistoryLimit`/`failedJobsHistoryLimit` are deleted, pods
//! with them. `kubectl create job --from=cronjob/NAME` (a manual run) is a plain Job, run by
//! the Job controller.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::events;
use crate::owned;
use crate::resources;
use crate::store::{EventType, Store};

const JOB_COMPONENT: &str = "job-controller";
const CRON_COMPONENT: &str = "cronjob-controller";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const SCHEDULED_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// The apiserver's defaults for a new Job's spec (also a CronJob's jobTemplate).
pub fn default_job_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    for (field, value) in [
        ("parallelism", json!(1)),
        ("completions", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
        ("manualSelector", json!(false)),
    ] {
        if spec[field].is_null() {
            spec[field] = value;
        }
    }
}

/// The apiserver's defaults for a new CronJob.
pub fn default_cronjob(obj: &mut Value) {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        return;
    }
    for (field, value) in [
        ("concurrencyPolicy", json!("Allow")),
        ("suspend", json!(false)),
        ("successfulJobsHistoryLimit", json!(3)),
        ("failedJobsHistoryLimit", json!(1)),
    ] {
        if spec[field].is_null() {
            spec[field] = value;
        }
    }
    default_job_spec(&mut spec["jobTemplate"]["spec"]);
}

/// What the apiserver refuses in a CronJob: an unparsable schedule, an unknown policy.
pub fn cronjob_problems(obj: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let schedule = obj["spec"]["schedule"].as_str().unwrap_or("");
    if schedule.is_empty() {
        causes.push(("spec.schedule".into(), "Required value".into()));
    } else if let Err(e) = parse_schedule(schedule) {
        causes.push((
            "spec.schedule".into(),
            format!("Invalid value: \"{schedule}\": {e}"),
        ));
    }
    let policy = obj["spec"]["concurrencyPolicy"].as_str().unwrap_or("Allow");
    if !matches!(policy, "Allow" | "Forbid" | "Replace") {
        causes.push((
            "spec.concurrencyPolicy".into(),
            format!("Unsupported value: \"{policy}\": supported values: \"Allow\", \"Forbid\", \"Replace\""),
        ));
    }
    if let Some(tz) = obj["spec"]["timeZone"].as_str() {
        if !matches!(tz, "UTC" | "Etc/UTC") {
            causes.push((
                "spec.timeZone".into(),
                format!("Invalid value: \"{tz}\": this test cluster schedules in UTC only"),
            ));
        }
    }
    causes
}

/// A schedule the way the CronJob controller reads it (robfig/cron's standard parser): five
/// fields, or `@yearly`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`.
pub fn parse_schedule(schedule: &str) -> Result<croner::Cron, String> {
    let expanded = match schedule.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other if other.starts_with('@') => return Err(format!("unrecognized descriptor: {other}")),
        other => other,
    };
    if expanded.split_whitespace().count() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {expanded}",
            expanded.split_whitespace().count()
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expanded)
        .map_err(|e| e.to_string())
}

/// Runs both controllers until the store's change channel closes.
pub async fn run(store: Arc<Store>) {
    let mut rx = store.subscribe();
    resync_jobs(&store);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            change = rx.recv() => match change {
                Ok(c) if c.resource.plural == "jobs" && c.resource.group == "batch" => {
                    if c.kind != EventType::Deleted {
                        reconcile_job(&store, c.namespace(), c.name());
                    }
                    if let Some(cron) = owner_of_kind(&c.object, "CronJob") {
                        write_cronjob_status(&store, c.namespace(), &cron);
                    }
                }
                Ok(c) if c.resource.plural == "pods" => {
                    if let Some(job) = owner_of_kind(&c.object, "Job") {
                        reconcile_job(&store, c.namespace(), &job);
                    }
                }
                Ok(c) if c.resource.plural == "cronjobs" && c.kind != EventType::Deleted => {
                    schedule_cronjob(&store, c.namespace(), c.name(), Utc::now());
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => resync_jobs(&store),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                for cron in store.list(resources::cronjobs(), None, None, None, &|_| true).items {
                    let ns = cron["metadata"]["namespace"].as_str().unwrap_or("");
                    schedule_cronjob(&store, ns, cron["metadata"]["name"].as_str().unwrap_or(""), Utc::now());
                }
            }
        }
    }
}

fn resync_jobs(store: &Store) {
    for job in store
        .list(resources::batch_jobs(), None, None, None, &|_| true)
        .items
    {
        let ns = job["metadata"]["namespace"].as_str().unwrap_or("");
        reconcile_job(store, ns, job["metadata"]["name"].as_str().unwrap_or(""));
    }
}

/// The name of `obj`'s controller ownerReference of `kind`.
fn owner_of_kind(obj: &Value, kind: &str) -> Option<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["kind"] == json!(kind) && o["controller"] == json!(true))
        .and_then(|o| o["name"].as_str())
        .map(str::to_string)
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn has_condition(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == json!(kind) && c["status"] == json!("True"))
}

fn is_finished_job(job: &Value) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

fn condition(kind: &str, reason: &str, message: &str) -> Value {
    let now = now_text();
    json!({"type": kind, "status": "True", "reason": reason, "message": message,
           "lastProbeTime": now, "lastTransitionTime": now})
}

pub fn reconcile_job(store: &Store, ns: &str, name: &str) {
    let Some(job) = store.get(resources::batch_jobs(), ns, name) else {
        return;
    };
    if job["metadata"]["deletionTimestamp"].is_string() || is_finished_job(&job) {
        return;
    }
    let uid = job["metadata"]["uid"].as_str().unwrap_or("").to_string();
    if job["spec"]["selector"].is_null() {
        // The apiserver gives a new Job its selector and template labels (by its uid) when it
        // is created; here that is the controller's first look, before any pod exists.
        let _ = store.update_instance(resources::batch_jobs(), ns, name, &uid, |old| {
            let mut new = old.clone();
            new["spec"]["selector"] = json!({"matchLabels": {CONTROLLER_UID_LABEL: uid}});
            let labels = &mut new["spec"]["template"]["metadata"]["labels"];
            if !labels.is_object() {
                *labels = json!({});
            }
            for (k, v) in [
                (JOB_NAME_LABEL, name),
                ("job-name", name),
                (CONTROLLER_UID_LABEL, uid.as_str()),
                ("controller-uid", uid.as_str()),
            ] {
                labels[k] = json!(v);
            }
            new
        });
        return reconcile_job(store, ns, name);
    }
    let spec = &job["spec"];
    let pods = owned::list(store, resources::pods(), ns, &uid);
    let phase = |p: &Value| p["status"]["phase"].as_str().unwrap_or("").to_string();
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64;
    let active: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            !matches!(phase(p).as_str(), "Succeeded" | "Failed")
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect();
    let ready = active
        .iter()
        .filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == json!("Ready") && c["status"] == json!("True"))
        })
        .count();
    let completions = spec["completions"].as_i64().unwrap_or(1);
    let parallelism = spec["parallelism"].as_i64().unwrap_or(1);
    let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
    let suspended = spec["suspend"] == json!(true);
    let mut conditions: Vec<Value> = Vec::new();
    let mut finished = false;
    if succeeded >= completions {
        conditions.push(condition(
            "SuccessCriteriaMet",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        ));
        conditions.push(condition(
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        ));
        finished = true;
        events::record(
            store,
            &job,
            "Normal",
            "Completed",
            "Job completed",
            JOB_COMPONENT,
        );
    } else if failed > backoff_limit {
        let message = "Job has reached the specified backoff limit";
        conditions.push(condition("FailureTarget", "BackoffLimitExceeded", message));
        conditions.push(condition("Failed", "BackoffLimitExceeded", message));
        finished = true;
        for p in &active {
            let _ = store.delete(
                resources::pods(),
                ns,
                p["metadata"]["name"].as_str().unwrap_or(""),
                false,
                true,
            );
        }
        events::record(
            store,
            &job,
            "Warning",
            "BackoffLimitExceeded",
            message,
            JOB_COMPONENT,
        );
    } else if !suspended {
        let wanted = parallelism.min(completions - succeeded) - active.len() as i64;
        for _ in 0..wanted.max(0) {
            create_job_pod(store, &job);
        }
    }
    let active_now = if finished {
        0
    } else {
        owned::list(store, resources::pods(), ns, &uid)
            .iter()
            .filter(|p| !matches!(phase(p).as_str(), "Succeeded" | "Failed"))
            .count()
    };
    let _ = store.update_instance(resources::batch_jobs(), ns, name, &uid, |old| {
        let mut new = old.clone();
        let status = &mut new["status"];
        if !status.is_object() {
            *status = json!({});
        }
        if status["startTime"].is_null() && !suspended {
            status["startTime"] = json!(now_text());
        }
        // Counts are omitted when zero, as the API's omitempty fields are.
        for (field, n) in [
            ("active", active_now as i64),
            ("succeeded", succeeded),
            ("failed", failed),
        ] {
            match status.as_object_mut() {
                Some(m) if n == 0 => {
                    m.remove(field);
                }
                _ => status[field] = json!(n),
            }
        }
        status["ready"] = json!(if finished { 0 } else { ready });
        status["terminating"] = json!(0);
        status["uncountedTerminatedPods"] = json!({});
        if finished {
            let mut all = status["conditions"].as_array().cloned().unwrap_or_default();
            all.extend(conditions.iter().cloned());
            status["conditions"] = json!(all);
            if succeeded >= completions {
                status["completionTime"] = json!(now_text());
            }
        }
        new
    });
}

fn create_job_pod(store: &Store, job: &Value) {
    let ns = job["metadata"]["namespace"].as_str().unwrap_or("");
    let name = job["metadata"]["name"].as_str().unwrap_or("");
    let uid = job["metadata"]["uid"].as_str().unwrap_or("");
    let template = &job["spec"]["template"];
    let pod_name = format!("{name}-{}", crate::admission::random_suffix());
    let mut spec = template["spec"].clone();
    if spec["restartPolicy"].is_null() {
        spec["restartPolicy"] = json!("Never");
    }
    let pod = owned::pod_from_template(
        template,
        ns,
        &pod_name,
        &[
            (JOB_NAME_LABEL, name),
            ("job-name", name),
            (CONTROLLER_UID_LABEL, uid),
            ("controller-uid", uid),
        ],
        spec,
        ("batch/v1", "Job", name, &job["metadata"]["uid"]),
    );
    let (t, reason, msg) = match store.create(resources::pods(), pod, false) {
        Ok(_) => (
            "Normal",
            "SuccessfulCreate",
            format!("Created pod: {pod_name}"),
        ),
        Err(e) => (
            "Warning",
            "FailedCreate",
            format!("Error creating: {}", e.message),
        ),
    };
    events::record(store, job, t, reason, &msg, JOB_COMPONENT);
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The latest scheduled time in (`since`, `now`], if any.
pub fn due_time(
    schedule: &croner::Cron,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let first = schedule.find_next_occurrence(&since, false).ok()?;
    if first > now {
        return None;
    }
    schedule
        .find_previous_occurrence(&now, true)
        .ok()
        .filter(|t| *t >= first)
        .or(Some(first))
}

pub fn schedule_cronjob(store: &Store, ns: &str, name: &str, now: DateTime<Utc>) {
    let Some(cron) = store.get(resources::cronjobs(), ns, name) else {
        return;
    };
    if cron["metadata"]["deletionTimestamp"].is_string() {
        return;
    }
    let spec = &cron["spec"];
    let Ok(schedule) = parse_schedule(spec["schedule"].as_str().unwrap_or("")) else {
        return;
    };
    if spec["suspend"] == json!(true) {
        return;
    }
    let since = parse_time(&cron["status"]["lastScheduleTime"])
        .or_else(|| parse_time(&cron["metadata"]["creationTimestamp"]))
        .unwrap_or(now);
    let Some(due) = due_time(&schedule, since, now) else {
        return;
    };
    let uid = cron["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let record = |t: &str, reason: &str, msg: String| {
        events::record(store, &cron, t, reason, &msg, CRON_COMPONENT);
    };
    if let Some(deadline) = spec["startingDeadlineSeconds"].as_i64() {
        if (now - due).num_seconds() > deadline {
            record(
                "Warning",
                "MissSchedule",
                format!("Missed scheduled time to start a job: {}", due.to_rfc3339()),
            );
            mark_scheduled(store, ns, name, &uid, due);
            return;
        }
    }
    let active: Vec<Value> = owned::list(store, resources::batch_jobs(), ns, &uid)
        .into_iter()
        .filter(|j| !is_finished_job(j))
        .collect();
    match spec["concurrencyPolicy"].as_str().unwrap_or("Allow") {
        "Forbid" if !active.is_empty() => {
            record(
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            );
            return;
        }
        "Replace" => {
            for j in &active {
                let jname = j["metadata"]["name"].as_str().unwrap_or("");
                if store
                    .delete(resources::batch_jobs(), ns, jname, false, true)
                    .is_ok()
                {
                    record("Normal", "SuccessfulDelete", format!("Deleted job {jname}"));
                }
            }
        }
        _ => {}
    }
    let job_name = format!("{name}-{}", due.timestamp() / 60);
    let template = &spec["jobTemplate"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations[SCHEDULED_ANNOTATION] = json!(due.to_rfc3339_opts(SecondsFormat::Secs, true));
    let owner = json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true}]);
    let mut job_spec = template["spec"].clone();
    default_job_spec(&mut job_spec);
    let job = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name, "namespace": ns, "labels": labels, "annotations": annotations,
                     "ownerReferences": owner},
        "spec": job_spec});
    match store.create(resources::batch_jobs(), job, false) {
        Ok(_) => record(
            "Normal",
            "SuccessfulCreate",
            format!("Created job {job_name}"),
        ),
        Err(e) if e.code == 409 => {}
        Err(e) => {
            record(
                "Warning",
                "FailedCreate",
                format!("Error creating job: {}", e.message),
            );
            return;
        }
    }
    mark_scheduled(store, ns, name, &uid, due);
    write_cronjob_status(store, ns, name);
}

fn mark_scheduled(store: &Store, ns: &str, name: &str, uid: &str, due: DateTime<Utc>) {
    let _ = store.update_instance(resources::cronjobs(), ns, name, uid, |old| {
        let mut new = old.clone();
        if !new["status"].is_object() {
            new["status"] = json!({});
        }
        new["status"]["lastScheduleTime"] = json!(due.to_rfc3339_opts(SecondsFormat::Secs, true));
        new
    });
}

/// `active` and `lastSuccessfulTime` from the CronJob's Jobs, and the history limits applied.
pub fn write_cronjob_status(store: &Store, ns: &str, name: &str) {
    let Some(cron) = store.get(resources::cronjobs(), ns, name) else {
        return;
    };
    let uid = cron["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let mut jobs = owned::list(store, resources::batch_jobs(), ns, &uid);
    // Oldest first by start time, as the controller removes history.
    jobs.sort_by_key(|j| {
        j["status"]["startTime"]
            .as_str()
            .or(j["metadata"]["creationTimestamp"].as_str())
            .unwrap_or("")
            .to_string()
    });
    for (kind, limit_field) in [
        ("Complete", "successfulJobsHistoryLimit"),
        ("Failed", "failedJobsHistoryLimit"),
    ] {
        let limit = cron["spec"][limit_field]
            .as_i64()
            .unwrap_or(if kind == "Complete" { 3 } else { 1 });
        let done: Vec<&Value> = jobs.iter().filter(|j| has_condition(j, kind)).collect();
        let extra = done.len().saturating_sub(limit.max(0) as usize);
        for j in done.into_iter().take(extra) {
            let jname = j["metadata"]["name"].as_str().unwrap_or("");
            if store
                .delete(resources::batch_jobs(), ns, jname, false, true)
                .is_ok()
            {
                events::record(
                    store,
                    &cron,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted job {jname}"),
                    CRON_COMPONENT,
                );
            }
        }
    }
    let active: Vec<Value> = jobs
        .iter()
        // History removal above deletes finished Jobs only: every unfinished one is still there.
        .filter(|j| !is_finished_job(j))
        .map(|j| {
            json!({"kind": "Job", "namespace": ns, "name": j["metadata"]["name"], "uid": j["metadata"]["uid"],
                   "apiVersion": "batch/v1", "resourceVersion": j["metadata"]["resourceVersion"]})
        })
        .collect();
    let last_success = jobs
        .iter()
        .filter(|j| has_condition(j, "Complete"))
        .filter_map(|j| j["status"]["completionTime"].as_str().map(str::to_string))
        .max();
    let _ = store.update_instance(resources::cronjobs(), ns, name, &uid, |old| {
        let mut new = old.clone();
        if !new["status"].is_object() {
            new["status"] = json!({});
        }
        let status = new["status"].as_object_mut().expect("an object");
        if active.is_empty() {
            status.remove("active");
        } else {
            status.insert("active".into(), json!(active));
        }
        if let Some(t) = &last_success {
            status.insert("lastSuccessfulTime".into(), json!(t));
        }
        new
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn schedules_read_as_the_cronjob_controller_reads_them() {
        for ok in [
            "* * * * *",
            "*/5 0-6 1,15 JAN-MAR mon-fri",
            "@hourly",
            "@daily",
        ] {
            assert!(parse_schedule(ok).is_ok(), "{ok}");
        }
        for bad in ["* * * *", "0 * * * * *", "61 * * * *", "@every 5m", "soon"] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missed_times_collapse_into_the_latest() {
        let every_minute = parse_schedule("* * * * *").unwrap();
        let since = at("2026-12-03T10:00:00Z");
        assert_eq!(
            due_time(&every_minute, since, at("2026-12-03T10:00:59Z")),
            None
        );
        assert_eq!(
            due_time(&every_minute, since, at("2026-12-03T10:01:00Z")),
            Some(at("2026-12-03T10:01:00Z"))
        );
        assert_eq!(
            due_time(&every_minute, since, at("2026-12-03T10:07:30Z")),
            Some(at("2026-12-03T10:07:00Z"))
        );
        let hourly = parse_schedule("@hourly").unwrap();
        assert_eq!(due_time(&hourly, since, at("2026-12-03T10:59:00Z")), None);
    }
}
