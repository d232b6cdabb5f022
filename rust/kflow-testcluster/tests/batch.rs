//! The Job and CronJob controllers end to end: real pods, conditions as Kubernetes writes
//! them, schedules coming due, concurrency and history limits.

mod common;

use common::Api;
use reqwest::Method;
use serde_json::{json, Value};

const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";
const CRONJOBS: &str = "/apis/batch/v1/namespaces/default/cronjobs";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn condition_true(t: &'static str) -> impl Fn(&Value) -> bool {
    move |v| {
        v["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == t && c["status"] == "True"))
    }
}

fn template(code: &str) -> Value {
    json!({"spec": {"restartPolicy": "Never", "containers": [
        {"name": "main", "image": "python:3.11", "command": ["python", "-c", code]}]}})
}

fn items(api: &Api, path: &str) -> Vec<Value> {
    api.get(path).1["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_job_runs_its_pod_to_completion_and_a_failing_one_stops_at_its_backoff_limit() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let (code, made) = api.post(
        JOBS,
        &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "ok"},
                "spec": {"template": template("print('done')")}}),
    );
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["spec"]["backoffLimit"], 6);
    assert_eq!(made["spec"]["completions"], 1);
    let done = api.wait_for(&format!("{JOBS}/ok"), 30, condition_true("Complete"));
    assert_eq!(done["status"]["succeeded"], 1);
    assert!(done["status"]["completionTime"].is_string());
    let types: Vec<&str> = done["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    let pods = items(
        &api,
        &format!("{PODS}?labelSelector=batch.kubernetes.io/job-name%3Dok"),
    );
    assert_eq!(pods.len(), 1);
    let pod = pods[0]["metadata"]["name"].as_str().unwrap();
    let log = api
        .req(Method::GET, &format!("{PODS}/{pod}/log"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(log, "done\n");

    api.post(
        JOBS,
        &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
                "spec": {"backoffLimit": 1, "template": template("raise SystemExit(3)")}}),
    );
    let failed = api.wait_for(&format!("{JOBS}/bad"), 60, condition_true("Failed"));
    assert_eq!(failed["status"]["failed"], 2);
    let last = failed["status"]["conditions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "BackoffLimitExceeded");
    // Deleting a job takes its pods (background propagation).
    api.call(Method::DELETE, &format!("{JOBS}/bad"), None);
    assert!(items(&api, &format!("{PODS}?labelSelector=job-name%3Dbad")).is_empty());
}

#[test]
fn a_cronjob_makes_a_job_when_its_schedule_comes_due_and_keeps_its_history_limits() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let (code, refused) = api.post(
        CRONJOBS,
        &json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "bad"},
                "spec": {"schedule": "every minute", "jobTemplate": {"spec": {"template": template("1")}}}}),
    );
    assert_eq!(code, 422, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("spec.schedule"),
        "{refused}"
    );

    let (code, made) = api.post(
        CRONJOBS,
        &json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
                "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 1,
                         "jobTemplate": {"metadata": {"labels": {"app": "report"}},
                                         "spec": {"template": template("print('report')")}}}}),
    );
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(made["spec"]["suspend"], false);
    // A schedule last run three minutes ago is due now: the controller runs the latest missed
    // time once (as the real one does), not each of them.
    let three_minutes_ago = chrono::Utc::now() - chrono::Duration::minutes(3);
    let (code, _) = api.patch(
        &format!("{CRONJOBS}/nightly/status"),
        "application/merge-patch+json",
        &json!({"status": {"lastScheduleTime": three_minutes_ago.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}}),
    );
    assert_eq!(code, 200);
    let cron = api.wait_for(&format!("{CRONJOBS}/nightly"), 10, |c| {
        c["status"]["lastScheduleTime"].as_str().is_some_and(|t| {
            chrono::DateTime::parse_from_rfc3339(t).unwrap()
                > three_minutes_ago + chrono::Duration::minutes(2)
        })
    });
    let jobs = items(&api, JOBS);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("nightly-"), "{name}");
    assert_eq!(job["metadata"]["labels"]["app"], "report");
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        cron["status"]["lastScheduleTime"]
    );
    api.wait_for(&format!("{JOBS}/{name}"), 30, condition_true("Complete"));
    let cron = api.wait_for(&format!("{CRONJOBS}/nightly"), 10, |c| {
        c["status"]["lastSuccessfulTime"].is_string() && c["status"]["active"].is_null()
    });
    assert!(cron["status"]["lastScheduleTime"].is_string());

    // A manual run (what `kubectl create job --from=cronjob/nightly` makes: a Job owned by the
    // CronJob): once it completes, the history limit of 1 removes the older job, pods with it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, _) = api.post(
        JOBS,
        &json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "nightly-manual", "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                             "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
                                                  "uid": cron["metadata"]["uid"], "controller": true}]},
                "spec": {"template": template("print('by hand')")}}),
    );
    assert_eq!(code, 201);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let names: Vec<String> = items(&api, JOBS)
            .iter()
            .map(|j| j["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        if names == ["nightly-manual"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{names:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let pods = items(&api, &format!("{PODS}?labelSelector=job-name%3D{name}"));
    assert!(pods.is_empty(), "{pods:?}");

    // Suspended: due times pass without a run.
    api.patch(
        &format!("{CRONJOBS}/nightly"),
        "application/merge-patch+json",
        &json!({"spec": {"suspend": true}}),
    );
    api.patch(
        &format!("{CRONJOBS}/nightly/status"),
        "application/merge-patch+json",
        &json!({"status": {"lastScheduleTime": (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}}),
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(items(&api, JOBS).len(), 1);
}
