//! The operator and kubelet end to end: real processes, logs, volumes, restarts, job states.

mod common;

use common::Api;
use reqwest::Method;
use serde_json::{json, Value};

const PODS: &str = "/api/v1/namespaces/default/pods";
const JOBS: &str = "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs";

fn phase_is(p: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["status"]["phase"] == p
}

fn condition_true(t: &'static str) -> impl Fn(&Value) -> bool {
    move |v| {
        v["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == t && c["status"] == "True"))
    }
}

fn logs(api: &Api, pod: &str, query: &str) -> String {
    api.req(Method::GET, &format!("{PODS}/{pod}/log?{query}"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

fn replica(name: &str, replicas: i64, cmd: &str, policy: &str) -> Value {
    json!({"replicas": replicas, "restartPolicy": policy, "template": {"spec": {"containers": [
        {"name": "pytorch", "image": "docker.io/pytorch/pytorch:2.3", "command": ["python", "-c", cmd], "env": [{"name": "WHO", "value": name}]}]}}})
}

#[test]
fn pytorchjob_runs_both_replicas_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let cmd = "import os;print(os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['MASTER_ADDR'], os.environ['MASTER_PORT'], os.environ['PET_NNODES'], os.environ['PYTHONUNBUFFERED'])";
    let job = json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "pj"},
        "spec": {"pytorchReplicaSpecs": {"Master": replica("m", 1, cmd, "OnFailure"), "Worker": replica("w", 1, cmd, "OnFailure")}}});
    let (code, created) = api.post(JOBS, &job);
    assert_eq!(code, 201, "{created}");
    let done = api.wait_for(&format!("{JOBS}/pj"), 30, condition_true("Succeeded"));
    assert_eq!(done["status"]["conditions"][0]["type"], "Created");
    assert_eq!(
        done["status"]["conditions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["reason"],
        "PyTorchJobSucceeded"
    );
    api.wait_for(&format!("{PODS}/pj-worker-0"), 30, phase_is("Succeeded"));
    assert_eq!(logs(&api, "pj-master-0", ""), "0 2 pj-master-0 23456 2 1\n");
    assert_eq!(logs(&api, "pj-worker-0", ""), "1 2 pj-master-0 23456 2 1\n");
    let (_, pod) = api.get(&format!("{PODS}/pj-master-0"));
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["training.kubeflow.org/job-name"], "pj");
    assert_eq!(labels["training.kubeflow.org/replica-type"], "master");
    assert_eq!(labels["training.kubeflow.org/replica-index"], "0");
    assert_eq!(
        labels["training.kubeflow.org/operator-name"],
        "pytorchjob-controller"
    );
    assert_eq!(labels["training.kubeflow.org/job-role"], "master");
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["uid"],
        created["metadata"]["uid"]
    );
    // Deleting the job cascades to its pods and services.
    assert_eq!(api.call(Method::DELETE, &format!("{JOBS}/pj"), None).0, 200);
    assert_eq!(api.get(&format!("{PODS}/pj-master-0")).0, 404);
    assert_eq!(
        api.get("/api/v1/namespaces/default/services/pj-worker-0").0,
        404
    );
}

#[test]
fn failing_replica_fails_the_job_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let job = json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "bad"},
        "spec": {"pytorchReplicaSpecs": {"Master": replica("m", 1, "import sys; print('oops'); sys.exit(3)", "Never")}}});
    assert_eq!(api.post(JOBS, &job).0, 201);
    let failed = api.wait_for(&format!("{JOBS}/bad"), 30, condition_true("Failed"));
    let cond = failed["status"]["conditions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(cond["reason"], "PyTorchJobFailed");
    let msg = cond["message"].as_str().unwrap();
    assert!(
        msg.starts_with("PyTorchJob bad is failed because 1 Master replica(s) failed."),
        "{msg}"
    );
    assert!(msg.contains("exit code 3"), "{msg}");
    let (_, pod) = api.get(&format!("{PODS}/bad-master-0"));
    let term = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].as_i64(), term["reason"].as_str()),
        (Some(3), Some("Error"))
    );
}

fn pod(name: &str, policy: &str, image: &str, cmd: &[&str]) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"restartPolicy": policy, "containers": [{"name": "main", "image": image, "command": cmd}]}})
}

#[test]
fn bad_image_crashloop_and_oom() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    api.post(
        PODS,
        &pod("img", "Always", "registry.invalid/none:1", &["true"]),
    );
    api.post(
        PODS,
        &pod(
            "crash",
            "OnFailure",
            "busybox",
            &["sh", "-c", "echo attempt; exit 1"],
        ),
    );
    let mut oom = pod(
        "oom",
        "Never",
        "python:3.12",
        &[
            "python",
            "-c",
            "import time\nx = 'a' * (400 * 1024 * 1024)\ntime.sleep(10)",
        ],
    );
    oom["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "64Mi"}});
    api.post(PODS, &oom);

    let img = api.wait_for(&format!("{PODS}/img"), 20, |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });
    assert_eq!(img["status"]["phase"], "Pending");
    assert!(
        img["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("registry.invalid/none:1")
    );
    let (code, err) = api.get(&format!("{PODS}/img/log"));
    assert_eq!(code, 400, "{err}");

    let crash = api.wait_for(&format!("{PODS}/crash"), 20, |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(2)
    });
    assert_eq!(crash["status"]["phase"], "Running");
    assert_eq!(
        crash["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    assert_eq!(logs(&api, "crash", "previous=true"), "attempt\n");

    let oom = api.wait_for(&format!("{PODS}/oom"), 20, phase_is("Failed"));
    let term = &oom["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["reason"].as_str(), term["exitCode"].as_i64()),
        (Some("OOMKilled"), Some(137))
    );

    let (_, events) =
        api.get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dimg");
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"Scheduled") && reasons.contains(&"BackOff"),
        "{reasons:?}"
    );
}

#[test]
fn logs_options_and_follow() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let script = "import time\nfor i in range(5):\n  print('line', i)\n  time.sleep(0.2)";
    let mut p = pod("talk", "Never", "python", &["python", "-u", "-c", script]);
    p["spec"]["containers"][0]["env"] = json!([{"name": "PYTHONUNBUFFERED", "value": "1"}]);
    api.post(PODS, &p);
    api.wait_for(&format!("{PODS}/talk"), 20, |p| {
        p["status"]["phase"] != "Pending"
    });
    // follow streams until the container exits
    let followed = logs(&api, "talk", "follow=true");
    assert_eq!(followed, "line 0\nline 1\nline 2\nline 3\nline 4\n");
    assert_eq!(logs(&api, "talk", "tailLines=2"), "line 3\nline 4\n");
    let stamped = logs(&api, "talk", "timestamps=true&tailLines=1");
    let (ts, text) = stamped.trim_end().split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.contains('.'),
        "{ts}"
    );
    assert_eq!(text, "line 4");
    assert_eq!(logs(&api, "talk", "sinceTime=2999-01-01T00:00:00Z"), "");
    assert_eq!(logs(&api, "talk", "limitBytes=3"), "lin");
    let (code, _) = api.get(&format!("{PODS}/talk/log?container=nope"));
    assert_eq!(code, 400);
    // Fault injection: log streams cut after N lines.
    api.call(
        Method::PUT,
        "/admin/faults",
        Some(&json!({"logDropAfter": 2})),
    );
    assert_eq!(logs(&api, "talk", ""), "line 0\nline 1\n");
}

#[test]
fn volumes_env_and_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let ns = "/api/v1/namespaces/default";
    api.post(&format!("{ns}/configmaps"), &json!({"metadata": {"name": "cfg"}, "data": {"a.txt": "hello"}, "binaryData": {"b.bin": "AAEC"}}));
    api.post(
        &format!("{ns}/secrets"),
        &json!({"metadata": {"name": "sec"}, "stringData": {"token": "s3cret"}}),
    );
    api.post(
        &format!("{ns}/persistentvolumeclaims"),
        &json!({"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    let script = if api.cluster.sandboxed {
        "import os\n\
print(open('/etc/kflow-cfg/a.txt').read(), list(open('/etc/kflow-cfg/b.bin','rb').read()), open('/sec/key').read(), os.environ['TOKEN'], os.environ['POD'])\n\
open('/pvc/out.txt','w').write('persisted')\n\
print(os.getcwd(), os.path.exists('/etc/passwd'))"
    } else {
        // Without the sandbox there are no mounts; env still works.
        "import os\nprint(os.environ['TOKEN'], os.environ['POD'])"
    };
    let p = json!({"metadata": {"name": "vols"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "python", "command": ["python", "-c", script], "workingDir": "/work",
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            // /etc/kflow-cfg: a new folder inside a read-only host dir, as MPI's /etc/mpi
            "volumeMounts": [{"name": "c", "mountPath": "/etc/kflow-cfg"}, {"name": "s", "mountPath": "/sec", "readOnly": true},
                             {"name": "v", "mountPath": "/pvc"}, {"name": "w", "mountPath": "/work"}]}],
        "volumes": [{"name": "c", "configMap": {"name": "cfg"}},
                    {"name": "s", "secret": {"secretName": "sec", "items": [{"key": "token", "path": "key"}]}},
                    {"name": "v", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "w", "emptyDir": {}}]}});
    assert_eq!(api.post(PODS, &p).0, 201);
    let done = api.wait_for(&format!("{PODS}/vols"), 30, |p| {
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    let out = logs(&api, "vols", "");
    assert_eq!(done["status"]["phase"], "Succeeded", "{out}");
    if api.cluster.sandboxed {
        assert_eq!(out, "hello [0, 1, 2] s3cret s3cret vols\n/work True\n");
        let pvc = dir.path().join("pvcs/default/data/out.txt");
        assert_eq!(std::fs::read_to_string(pvc).unwrap(), "persisted");
    } else {
        assert_eq!(out, "s3cret vols\n");
    }
}

#[test]
fn tfjob_gets_tf_config_and_succeeds_when_workers_do() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let cmd = "import os,json;c=json.loads(os.environ['TF_CONFIG']);print(c['task']['type'], c['task']['index'], ','.join(c['cluster']['worker']))";
    let job = json!({"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": "tf"},
        "spec": {"tfReplicaSpecs": {"Worker": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "tensorflow", "image": "tensorflow/tensorflow:2.15", "command": ["python", "-c", cmd]}]}}}}}});
    let (code, created) = api.post("/apis/kubeflow.org/v1/namespaces/default/tfjobs", &job);
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["spec"]["tfReplicaSpecs"]["Worker"]["restartPolicy"], "Never",
        "defaulted"
    );
    let done = api.wait_for(
        "/apis/kubeflow.org/v1/namespaces/default/tfjobs/tf",
        30,
        condition_true("Succeeded"),
    );
    assert_eq!(done["status"]["replicaStatuses"]["Worker"]["succeeded"], 2);
    let hosts = "tf-worker-0.default.svc:2222,tf-worker-1.default.svc:2222";
    assert_eq!(logs(&api, "tf-worker-1", ""), format!("worker 1 {hosts}\n"));
    let (_, pod) = api.get(&format!("{PODS}/tf-worker-0"));
    assert_eq!(
        pod["metadata"]["labels"]["training.kubeflow.org/job-role"], "master",
        "Worker-0 leads without a Chief"
    );
}

#[test]
fn exit_code_policy_recreates_pod_on_retryable_code() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    if !api.cluster.sandboxed {
        eprintln!("skipping: needs bubblewrap for the PVC mount that carries state between pods");
        return;
    }
    api.post(
        "/api/v1/namespaces/default/persistentvolumeclaims",
        &json!({"metadata": {"name": "marks"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    // First run: leave a mark and die like SIGTERM (143, retryable); second run: succeed.
    let cmd = "import os,sys\nif os.path.exists('/m/x'):\n  print('second')\nelse:\n  open('/m/x','w').write('1'); sys.exit(143)";
    let mut spec = replica("m", 1, cmd, "ExitCode");
    spec["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "m", "mountPath": "/m"}]);
    spec["template"]["spec"]["volumes"] =
        json!([{"name": "m", "persistentVolumeClaim": {"claimName": "marks"}}]);
    let job = json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "ec"},
        "spec": {"pytorchReplicaSpecs": {"Master": spec}}});
    assert_eq!(api.post(JOBS, &job).0, 201);
    let done = api.wait_for(&format!("{JOBS}/ec"), 30, |j| {
        condition_true("Succeeded")(j) || condition_true("Failed")(j)
    });
    assert!(condition_true("Succeeded")(&done), "{done}");
    assert_eq!(logs(&api, "ec-master-0", ""), "second\n");
    let (_, pod) = api.get(&format!("{PODS}/ec-master-0"));
    assert_eq!(
        pod["spec"]["restartPolicy"], "Never",
        "ExitCode pods never restart in place"
    );
}

#[test]
fn mpijob_launcher_gets_hostfile_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let launcher_cmd = if api.cluster.sandboxed {
        "import os;print(open('/etc/mpi/hostfile').read().strip().replace(chr(10), ','), os.environ['OMPI_MCA_plm_rsh_agent'])"
    } else {
        "import os;print(os.environ['OMPI_MCA_plm_rsh_agent'])"
    };
    let job = json!({"apiVersion": "kubeflow.org/v1", "kind": "MPIJob", "metadata": {"name": "mpi"},
        "spec": {"slotsPerWorker": 2, "mpiReplicaSpecs": {
            "Launcher": {"replicas": 1, "template": {"spec": {"containers": [{"name": "mpi", "image": "python", "command": ["python", "-c", launcher_cmd]}]}}},
            "Worker": {"replicas": 2, "template": {"spec": {"containers": [{"name": "mpi", "image": "busybox", "command": ["true"]}]}}}}}});
    assert_eq!(
        api.post("/apis/kubeflow.org/v1/namespaces/default/mpijobs", &job)
            .0,
        201
    );
    api.wait_for(
        "/apis/kubeflow.org/v1/namespaces/default/mpijobs/mpi",
        30,
        condition_true("Succeeded"),
    );
    let out = logs(&api, "mpi-launcher-0", "");
    if api.cluster.sandboxed {
        assert_eq!(
            out,
            "mpi-worker-0 slots=2,mpi-worker-1 slots=2 /etc/mpi/kubexec.sh\n"
        );
    } else {
        assert_eq!(out, "/etc/mpi/kubexec.sh\n");
    }
    let (_, launcher) = api.get(&format!("{PODS}/mpi-launcher-0"));
    assert_eq!(
        launcher["metadata"]["labels"]["training.kubeflow.org/job-role"],
        "master"
    );
    assert_eq!(
        launcher["metadata"]["labels"]["training.kubeflow.org/operator-name"],
        "mpijob-controller"
    );
}

#[test]
fn mpijob_v2beta1_by_option() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(dir.path(), false);
    opts.mpi_v2beta1 = true;
    let api = Api::start_with(opts);
    // Only one MPIJob version is served, as on a cluster with mpi-operator v2 installed.
    assert_eq!(
        api.get("/apis/kubeflow.org/v1/namespaces/default/mpijobs")
            .0,
        404
    );
    let (_, v1) = api.get("/apis/kubeflow.org/v1");
    assert!(!v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "mpijobs"));
    let (code, crd) =
        api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/mpijobs.kubeflow.org");
    assert_eq!(
        (code, crd["spec"]["versions"][0]["name"].as_str()),
        (200, Some("v2beta1"))
    );

    let cmd = if api.cluster.sandboxed {
        "import os;print(open('/etc/mpi/hostfile').read().strip(), os.environ['K_MPI_JOB_ROLE'], os.environ['OMPI_MCA_orte_keep_fqdn_hostnames'])"
    } else {
        "import os;print(os.environ['K_MPI_JOB_ROLE'], os.environ['OMPI_MCA_orte_keep_fqdn_hostnames'])"
    };
    let job = json!({"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "metadata": {"name": "m2"},
        "spec": {"slotsPerWorker": 1, "mpiReplicaSpecs": {
            "Launcher": {"replicas": 1, "template": {"spec": {"containers": [{"name": "mpi", "image": "python", "command": ["python", "-c", cmd]}]}}},
            "Worker": {"replicas": 1, "template": {"spec": {"containers": [{"name": "mpi", "image": "busybox", "command": ["true"]}]}}}}}});
    let base = "/apis/kubeflow.org/v2beta1/namespaces/default/mpijobs";
    let (code, created) = api.post(base, &job);
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["mpiImplementation"], "OpenMPI", "defaulted");
    api.wait_for(&format!("{base}/m2"), 30, condition_true("Succeeded"));
    let out = logs(&api, "m2-launcher", "");
    if api.cluster.sandboxed {
        assert_eq!(out, "m2-worker-0.m2.default.svc slots=1 launcher true\n");
    } else {
        assert_eq!(out, "launcher true\n");
    }
    let (_, w) = api.get(&format!("{PODS}/m2-worker-0"));
    assert_eq!(
        w["metadata"]["labels"]["training.kubeflow.org/job-role"],
        "worker"
    );
    assert_eq!(
        w["metadata"]["labels"]["training.kubeflow.org/operator-name"],
        "mpi-operator"
    );
    assert_eq!(api.get("/api/v1/namespaces/default/services/m2").0, 200);
    assert_eq!(api.get("/api/v1/namespaces/default/secrets/m2-ssh").0, 200);
}
