//! Golden manifests, one per kind and code mode. Regenerate with `KFLOW_UPDATE_GOLDEN=1 cargo
//! test -p kflow-core golden` and review the diff like code.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::spec::{BackendKind, CodeMode, JobKind, RunSpec};
use serde_json::json;

pub(crate) fn spec(kind: JobKind) -> RunSpec {
    RunSpec {
        name: "train-abc12".into(),
        run_id: "r0123456789abcde".into(),
        kind,
        image: "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime".into(),
        gpu: 1,
        cpu: Some("2".into()),
        memory: Some("8Gi".into()),
        workers: 2,
        pip: vec!["numpy".into(), "torch>=2.1; python_version > '3.8'".into()],
        apt: vec!["libgdal-dev".into()],
        env: BTreeMap::from([("LR".to_string(), "0.1".to_string())]),
        args: vec!["--epochs".into(), "3".into(), "$(id)".into()],
        namespace: Some("team-a".into()),
        script: "train.py".into(),
        project_root: PathBuf::from("/project"),
        code_mode: CodeMode::Targz,
        pip_cache: true,
        pip_cache_size: "10Gi".into(),
        backend: BackendKind::Local,
        template: None,
    }
}

fn payload() -> CodePayload {
    CodePayload::Archive {
        bytes: b"not really gzip".to_vec(),
        sha256: "0".repeat(64),
    }
}

fn check(name: &str, yaml: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.yaml"));
    if std::env::var_os("KFLOW_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, yaml).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; set KFLOW_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(yaml, expected, "{name} differs from {}", path.display());
}

#[test]
fn golden_pytorchjob() {
    check(
        "pytorchjob",
        &build(&spec(JobKind::PyTorchJob), &payload(), MpiApi::V1).to_yaml(),
    );
}

#[test]
fn golden_tfjob() {
    check(
        "tfjob",
        &build(&spec(JobKind::TFJob), &payload(), MpiApi::V1).to_yaml(),
    );
}

#[test]
fn golden_mpijob_v1() {
    check(
        "mpijob-v1",
        &build(&spec(JobKind::MPIJob), &payload(), MpiApi::V1).to_yaml(),
    );
}

#[test]
fn golden_mpijob_v2beta1() {
    check(
        "mpijob-v2beta1",
        &build(&spec(JobKind::MPIJob), &payload(), MpiApi::V2beta1).to_yaml(),
    );
}

#[test]
fn golden_configmap_mode() {
    let mut s = spec(JobKind::PyTorchJob);
    s.code_mode = CodeMode::Configmap;
    s.pip_cache = false;
    s.workers = 1;
    let files = vec![
        ("train.py".to_string(), b"print(1)\n".to_vec()),
        ("data/blob.bin".to_string(), vec![0xff, 0x00]),
    ];
    check(
        "pytorchjob-configmap",
        &build(
            &s,
            &CodePayload::Files {
                files,
                sha256: "1".repeat(64),
            },
            MpiApi::V1,
        )
        .to_yaml(),
    );
}

#[test]
fn pytorch_always_has_one_master_and_workers_minus_one() {
    let mut s = spec(JobKind::PyTorchJob);
    s.workers = 1;
    let job = serde_json::to_value(job(&s, &payload(), MpiApi::V1)).unwrap();
    assert_eq!(job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"], 1);
    assert!(job["spec"]["pytorchReplicaSpecs"].get("Worker").is_none());
    s.workers = 4;
    let job = serde_json::to_value(super::job(&s, &payload(), MpiApi::V1)).unwrap();
    assert_eq!(job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"], 3);
    let container =
        &job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "pytorch");
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], "1");
}

#[test]
fn no_pip_cache_means_no_pvc_and_no_mount() {
    let mut s = spec(JobKind::PyTorchJob);
    s.pip_cache = false;
    let m = build(&s, &payload(), MpiApi::V1);
    assert!(m.pip_cache.is_none());
    assert!(!m.to_yaml().contains("pip-cache"));
}

#[test]
fn user_strings_are_quoted_in_the_startup_chain() {
    let script = startup::script(&spec(JobKind::PyTorchJob), &startup::Finale::Python, 1);
    assert!(
        script.contains("\"torch>=2.1; python_version > '3.8'\""),
        "{script}"
    );
    assert!(
        script.contains("exec python -u train.py --epochs 3 '$(id)'"),
        "{script}"
    );
}

#[test]
fn a_schedule_runs_the_master_pod_from_a_cronjob_and_owns_its_outputs_claim() {
    use super::cron_job::{build_schedule, Timing, OUTPUTS_MOUNT, OUTPUT_DIR_ENV, SCHEDULE_LABEL};
    let mut s = spec(JobKind::PyTorchJob);
    s.workers = 1;
    let timing = Timing {
        cron: "0 3 * * *".into(),
        timezone: Some("Europe/Berlin".into()),
        suspend: true,
        outputs_size: "2Gi".into(),
        timeout_seconds: Some(600),
    };
    let m = build_schedule(&s, &payload(), &timing);
    let cron = serde_json::to_value(&m.cron_job).unwrap();
    assert_eq!(cron["kind"], "CronJob");
    assert_eq!(cron["apiVersion"], "batch/v1");
    let spec = &cron["spec"];
    assert_eq!(
        (
            &spec["schedule"],
            &spec["timeZone"],
            &spec["suspend"],
            &spec["concurrencyPolicy"]
        ),
        (
            &json!("0 3 * * *"),
            &json!("Europe/Berlin"),
            &json!(true),
            &json!("Forbid")
        )
    );
    let job = &spec["jobTemplate"]["spec"];
    assert_eq!(
        (&job["backoffLimit"], &job["activeDeadlineSeconds"]),
        (&json!(0), &json!(600))
    );
    let pod = &job["template"];
    assert_eq!(pod["metadata"]["labels"][SCHEDULE_LABEL], "train-abc12");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    let container = &pod["spec"]["containers"][0];
    // The same startup chain as a job's master: user strings quoted, never spliced.
    assert!(container["command"][2]
        .as_str()
        .unwrap()
        .contains("exec python -u train.py --epochs 3 '$(id)'"));
    let env: Vec<(&str, &serde_json::Value)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    assert_eq!(
        env[0].1["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['job-name']"
    );
    assert_eq!(
        (env[1].0, &env[1].1["value"]),
        (
            OUTPUT_DIR_ENV,
            &json!(format!("{OUTPUTS_MOUNT}/$(KFLOW_SCHEDULED_RUN)"))
        )
    );
    assert!(container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["mountPath"] == OUTPUTS_MOUNT));
    let claim = serde_json::to_value(&m.outputs).unwrap();
    assert_eq!(claim["metadata"]["name"], "train-abc12-outputs");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "2Gi");
    // The outputs claim and the code go with the CronJob; the shared pip cache does not.
    let owned: Vec<String> = std::iter::once(&m.outputs.metadata)
        .chain(std::iter::once(&m.code.metadata))
        .chain(m.code_parts.iter().map(|c| &c.metadata))
        .map(|meta| meta.name.clone().unwrap())
        .collect();
    assert_eq!(owned, ["train-abc12-outputs", "train-abc12-code"]);
    assert!(m.pip_cache.is_some());
}
