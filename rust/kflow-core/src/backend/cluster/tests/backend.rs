//! The cluster backend against kflow-testcluster (API server + training operator + kubelet on
//! a loopback port): submit, watch, logs (also across cut streams), failure reasons, restart,
//! idempotent creation, the missing-operator message and the in-cluster connection.

use std::path::PathBuf;
use std::time::Duration;

use crate::backend::cluster::{self, Source};
use crate::error::{ClusterError, JobError};
use crate::paths::Dirs;
use crate::{BackendKind, Client, Context, Error, Launcher, Phase, RunOptions};
use kflow_testcluster::{Options, TestCluster};

struct Env {
    cluster: TestCluster,
    root: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let root = tempfile::tempdir().unwrap();
        let mut opts = Options::new(root.path().join("cluster"));
        opts.crd_dir = super::crd_dir();
        let cluster = TestCluster::start(Some(opts)).expect("test cluster starts");
        Env { cluster, root }
    }

    fn client(&self) -> Client {
        super::client_at(self.root.path(), &self.cluster.kubeconfig_path)
    }

    fn project(&self, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.root.path().join("project");
        for (rel, text) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    /// Sets the test cluster's fault injection (its admin endpoint, with the admin token).
    fn faults(&self, client: &Client, json: serde_json::Value) {
        let backend = client.cluster_connection();
        let req = http::Request::put("/admin/faults")
            .header("content-type", "application/json")
            .body(json.to_string().into_bytes())
            .unwrap();
        backend
            .block_on(backend.client().request_text(req))
            .expect("faults set");
    }
}

fn opts(name: &str, script: &str) -> RunOptions {
    RunOptions {
        script: Some(script.into()),
        name: Some(name.into()),
        workers: Some(2),
        backend: Some(BackendKind::Cluster),
        pip_cache: Some(true),
        ..Default::default()
    }
}

const TRAIN: &str = "import os, helper\nprint(helper.greet(), 'rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'])\nfor i in range(40):\n    print('line', i)\n";

#[test]
fn two_worker_pytorchjob_runs_streams_logs_and_restarts() {
    let env = Env::start();
    env.project(&[
        ("train.py", TRAIN),
        (
            "helper.py",
            "def greet():\n    return 'hello from helper'\n",
        ),
    ]);
    let client = env.client();
    // Cut every log stream after 7 lines: the follower must resume without loss or repeats.
    env.faults(&client, serde_json::json!({"logDropAfter": 7}));

    let t0 = std::time::Instant::now();
    let job = client.submit(opts("pt-ok", "train.py")).expect("submitted");
    eprintln!("submit took {:?}", t0.elapsed());
    let lines: Vec<_> = job.logs(true).collect();
    let status = job
        .wait(Some(Duration::from_secs(120)), &mut || false)
        .unwrap();
    eprintln!("run + logs took {:?}", t0.elapsed());
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    for replica in ["master-0", "worker-0"] {
        // kflow's own lines ("kflow: waiting for …") are not the job's output.
        let texts: Vec<&str> = lines
            .iter()
            .filter(|l| l.replica == replica && !l.text.starts_with("kflow: "))
            .map(|l| l.text.as_str())
            .collect();
        let expected_rank = if replica == "master-0" { "0" } else { "1" };
        assert_eq!(
            texts[0],
            format!("hello from helper rank {expected_rank} of 2"),
            "{texts:?}"
        );
        let numbered: Vec<String> = (0..40).map(|i| format!("line {i}")).collect();
        assert_eq!(
            &texts[1..],
            numbered
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
            "{replica}: every line exactly once"
        );
        // The local copy holds the same lines, so logs outlive the pods.
        let copy =
            std::fs::read_to_string(job.run_dir().join("logs").join(format!("{replica}.log")))
                .unwrap();
        assert_eq!(copy.lines().count(), 41);
    }
    assert_eq!(
        status
            .replicas
            .iter()
            .map(|r| (r.name.as_str(), r.exit_code))
            .collect::<Vec<_>>(),
        [("master-0", Some(0)), ("worker-0", Some(0))]
    );

    // What the cluster holds: the code ConfigMap owned by the job, the record on the job.
    let backend = client.cluster_connection();
    use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(backend.client().clone(), "default");
    let cm = backend.block_on(cms.get("pt-ok-code")).unwrap();
    let owner = &cm.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("PyTorchJob", "pt-ok")
    );
    let pvcs: kube::Api<PersistentVolumeClaim> =
        kube::Api::namespaced(backend.client().clone(), "default");
    assert!(backend
        .block_on(pvcs.get_opt("pip-cache-pvc"))
        .unwrap()
        .is_some());
    let Some(cluster::code::FoundJob::Kflow(record)) =
        cluster::code::find_job(&backend, "pt-ok").unwrap()
    else {
        panic!("no record annotation")
    };
    assert_eq!(record.spec.run_id, job.spec().run_id);
    assert_eq!(record.code_sha256, job.record().code_sha256);

    // Another machine (fresh state dir) adopts the job from the cluster and restarts it.
    env.faults(&client, serde_json::json!({}));
    let other = {
        let r = env.root.path().join("other");
        let ctx = Context {
            dirs: Dirs {
                config: r.join("config"),
                state: r.join("state"),
                cache: r.join("cache"),
            },
            cwd: r.clone(),
            env: [(
                "KUBECONFIG".to_string(),
                env.cluster.kubeconfig_path.display().to_string(),
            )]
            .into(),
        };
        Client::new(
            ctx,
            Launcher {
                command: Vec::new(),
            },
        )
    };
    let adopted = other.adopt("pt-ok").expect("adopted from the cluster");
    assert_eq!(adopted.status().unwrap().phase, Phase::Succeeded);
    let restarted = adopted.restart().expect("restarted");
    assert_eq!(restarted.record().attempt, 2);
    assert_ne!(restarted.spec().run_id, job.spec().run_id);
    let status = restarted
        .wait(Some(Duration::from_secs(120)), &mut || false)
        .unwrap();
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    // A PyTorchJob succeeds when its master does: the worker may still be printing its last
    // lines, so its log is read until it is complete (or a minute has passed).
    // (The test cluster keeps a pod's log by pod name, so the recreated pods show the first
    // attempt's lines too; a real kubelet starts a new pod's log empty.)
    let last_lines = |lines: &[crate::LogLine]| {
        ["master-0", "worker-0"].map(|replica| {
            lines
                .iter()
                .rfind(|l| l.replica == replica)
                .map(|l| l.text.clone())
        })
    };
    let complete = [Some("line 39".to_string()), Some("line 39".to_string())];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = last_lines(&restarted.logs(false).collect::<Vec<_>>());
    while last != complete && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        last = last_lines(&restarted.logs(false).collect::<Vec<_>>());
    }
    assert_eq!(last, complete);

    // Delete removes the job (and with it the pods and the code ConfigMap).
    restarted.delete().unwrap();
    assert!(cluster::code::find_job(&backend, "pt-ok")
        .unwrap()
        .is_none());
}

#[test]
fn failures_say_why() {
    let env = Env::start();
    env.project(&[
        (
            "fail.py",
            "import sys\nprint('about to fail')\nsys.exit(3)\n",
        ),
        ("ok.py", "print('ok')\n"),
    ]);
    let client = env.client();

    let job = client
        .submit(RunOptions {
            workers: Some(1),
            ..opts("pt-fail", "fail.py")
        })
        .unwrap();
    let status = job
        .wait(Some(Duration::from_secs(60)), &mut || false)
        .unwrap();
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(status.reason.as_deref(), Some("Error"));
    assert!(
        status
            .message
            .as_deref()
            .unwrap()
            .starts_with("master-0 exited with code 3"),
        "{status:?}"
    );
    assert_eq!(status.replicas[0].exit_code, Some(3));
    let lines: Vec<_> = job.logs(false).map(|l| l.text).collect();
    assert_eq!(lines, ["about to fail"]);

    // A bad image stays Pending with the image named; cancel deletes it.
    let job = client
        .submit(RunOptions {
            image: Some("nosuch/image:1".into()),
            workers: Some(1),
            ..opts("pt-image", "ok.py")
        })
        .unwrap();
    let mut seen = None;
    for _ in 0..100 {
        seen = job
            .status()
            .ok()
            .filter(|s| s.reason.as_deref() == Some("ImagePullBackOff"));
        if seen.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = seen.expect("ImagePullBackOff reported");
    assert_eq!(seen.phase, Phase::Pending);
    assert!(seen.message.unwrap().contains("\"nosuch/image:1\""));
    let cancelled = job.cancel().unwrap();
    assert_eq!(
        (cancelled.phase, cancelled.reason.as_deref()),
        (Phase::Failed, Some("Cancelled"))
    );
    assert_eq!(job.status().unwrap().reason.as_deref(), Some("Cancelled"));

    // The same name again from this machine: refused with the fix.
    let err = client
        .submit(RunOptions {
            workers: Some(1),
            ..opts("pt-fail", "ok.py")
        })
        .unwrap_err();
    assert!(matches!(err, Error::Job(JobError::Exists { .. })), "{err}");
}

#[test]
fn creation_is_idempotent_by_run_id() {
    let env = Env::start();
    env.project(&[("ok.py", "print('ok')\n")]);
    let client = env.client();
    let spec = client
        .resolve(RunOptions {
            workers: Some(1),
            ..opts("pt-once", "ok.py")
        })
        .unwrap();
    let backend = client.cluster_connection();
    let mut spec_ns = spec.clone();
    spec_ns.namespace = Some("default".into());
    let code = crate::manifest::CodePayload::Archive {
        bytes: b"not really a tar".to_vec(),
        sha256: "0".repeat(64),
    };
    let manifests = crate::manifest::build(&spec_ns, &code, crate::manifest::MpiApi::V1);
    fn sub<'a>(
        manifests: &'a crate::manifest::Manifests,
        kind: crate::JobKind,
        run_id: &'a str,
    ) -> cluster::submit::Submission<'a> {
        cluster::submit::Submission {
            manifests,
            namespace: "default",
            kind,
            name: "pt-once",
            run_id,
            record_json: "{}".into(),
        }
    }
    let uid = backend
        .block_on(cluster::submit::submit(
            backend.client(),
            &sub(&manifests, spec.kind, &spec.run_id),
        ))
        .unwrap();
    // A retry of the same run (say after a timeout) adopts what exists: still one job.
    let again = backend
        .block_on(cluster::submit::submit(
            backend.client(),
            &sub(&manifests, spec.kind, &spec.run_id),
        ))
        .unwrap();
    assert_eq!(uid, again);
    // Another run under the same name is refused.
    let err = backend
        .block_on(cluster::submit::submit(
            backend.client(),
            &sub(&manifests, spec.kind, "otherrun"),
        ))
        .unwrap_err();
    assert!(matches!(err, Error::Job(JobError::Exists { .. })), "{err}");
}

#[test]
fn missing_operator_and_in_cluster_connection() {
    let env = Env::start();
    env.project(&[("ok.py", "print('ok')\n")]);
    let client = env.client();
    env.faults(&client, serde_json::json!({"rules": [{"pathContains": "/apis/kubeflow.org", "errorRate": 1.0, "errorCode": 404}]}));
    // A fresh client: capabilities are detected once per connection.
    let err = env
        .client()
        .submit(opts("pt-none", "ok.py"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("the Kubeflow Training Operator is not installed here (kubeflow.org/v1 PyTorchJob is not served)"), "{err}");
    assert!(
        !env.root.path().join("state/runs/pt-none").exists(),
        "nothing left behind"
    );
    env.faults(&client, serde_json::json!({}));

    // A pod's service account: token, CA and namespace files.
    let sa = env.root.path().join("sa");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), &env.cluster.token).unwrap();
    std::fs::write(sa.join("ca.crt"), env.cluster.ca_pem.as_deref().unwrap()).unwrap();
    std::fs::write(sa.join("namespace"), "default").unwrap();
    let in_pod = env.client().with_cluster_source(Source::InCluster {
        dir: sa,
        server: Some(env.cluster.base_url.clone()),
    });
    let backend = in_pod.cluster_connection();
    assert_eq!(backend.namespace, "default");
    assert!(backend.capabilities().unwrap().pytorchjob);

    // The sign-in seam: a client the caller makes.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&env.cluster.kubeconfig).unwrap();
    let config = rt
        .block_on(kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &Default::default(),
        ))
        .unwrap();
    let make: cluster::connection::MakeClient = std::sync::Arc::new(move || {
        kube::Client::try_from(config.clone()).map_err(|e| {
            Error::Cluster(ClusterError::Unreachable {
                server: "test".into(),
                problem: e.to_string(),
            })
        })
    });
    let made = env.client().with_cluster_source(Source::Client {
        make,
        namespace: "default".into(),
        label: "made".into(),
        server: String::new(),
        user: None,
    });
    assert_eq!(made.cluster_connection().description, "made");
    assert!(made.cluster_connection().capabilities().unwrap().mpijob_v1);
}

#[test]
fn flaky_api_and_cut_log_streams_still_give_one_job_and_every_line_once() {
    let env = Env::start();
    env.project(&[(
        "many.py",
        "for i in range(3000):\n    print('n', i, flush=True)\n",
    )]);
    let client = env.client();
    // Discovery first, while the API is healthy (capabilities are cached per connection).
    client.cluster_connection().capabilities().unwrap();
    // The numbers: 30% of API calls fail and every log stream is cut after 1,000 lines
    // (tests/cluster cuts every 25 lines too, without the errors).
    env.faults(&client, serde_json::json!({"rules": [{"pathContains": "/", "errorRate": 0.3, "errorCode": 500}], "logDropAfter": 1000}));
    let t0 = std::time::Instant::now();
    let job = client
        .submit(opts("pt-flaky", "many.py"))
        .expect("submitted despite 30% errors");
    let lines: Vec<_> = job.logs(true).collect();
    let status = job
        .wait(Some(Duration::from_secs(120)), &mut || false)
        .unwrap();
    eprintln!("flaky run took {:?}", t0.elapsed());
    env.faults(&client, serde_json::json!({}));
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    for replica in ["master-0", "worker-0"] {
        let texts: Vec<String> = lines
            .iter()
            .filter(|l| l.replica == replica && !l.text.starts_with("kflow: "))
            .map(|l| l.text.clone())
            .collect();
        assert_eq!(
            texts,
            (0..3000).map(|i| format!("n {i}")).collect::<Vec<_>>(),
            "{replica}"
        );
    }
    let backend = client.cluster_connection();
    let ar = crate::JobKind::PyTorchJob.api_resource(crate::kubeflow::V1);
    let jobs: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(backend.client().clone(), "default", &ar);
    let all = backend.block_on(jobs.list(&Default::default())).unwrap();
    assert_eq!(all.items.len(), 1, "created exactly once");
}

#[test]
fn tfjob_runs_with_tf_config() {
    let env = Env::start();
    env.project(&[("tf.py", "import json, os\nc = json.loads(os.environ['TF_CONFIG'])\nprint('task', c['task']['type'], c['task']['index'], 'of', len(c['cluster']['worker']))\n")]);
    let client = env.client();
    let job = client
        .submit(RunOptions {
            kind: Some(crate::JobKind::TFJob),
            pip_cache: Some(false),
            ..opts("tf-ok", "tf.py")
        })
        .unwrap();
    let status = job
        .wait(Some(Duration::from_secs(60)), &mut || false)
        .unwrap();
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    let mut lines: Vec<String> = job.logs(false).map(|l| l.render(true)).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "[worker-0] task worker 0 of 2",
            "[worker-1] task worker 1 of 2"
        ]
    );
}

#[test]
fn forbidden_and_oversized_code_say_what_to_do() {
    let env = Env::start();
    env.project(&[("ok.py", "print('ok')\n")]);
    // Over the cluster upload cap (sparse: the size check reads metadata, not bytes).
    std::fs::File::create(env.root.path().join("project/noise.bin"))
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    let client = env.client();
    let err = client
        .submit(opts("pt-big", "ok.py"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("for a cluster run (the code travels through the API server in ConfigMaps)")
            && err.contains("Fix:"),
        "{err}"
    );
    assert!(
        !env.root.path().join("state/runs/pt-big").exists(),
        "nothing left behind"
    );

    std::fs::remove_file(env.root.path().join("project/noise.bin")).unwrap();
    env.faults(&client, serde_json::json!({"rules": [{"pathContains": "/configmaps", "method": "POST", "errorRate": 1.0, "errorCode": 403}]}));
    let err = client.submit(opts("pt-denied", "ok.py")).unwrap_err();
    assert!(
        matches!(err, Error::Cluster(ClusterError::Forbidden { .. })),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("you are not allowed to create configmaps in namespace \"default\""),
        "{text}"
    );
    assert!(
        text.contains(
            "Fix: ask your cluster admin to grant you create on configmaps in \"default\""
        ),
        "{text}"
    );
}

#[test]
fn a_project_larger_than_a_configmap_travels_in_slices() {
    let env = Env::start();
    use rand::RngCore;
    let mut noise = vec![0u8; 2_000_000];
    rand::rng().fill_bytes(&mut noise);
    let script =
        "import hashlib\nprint(hashlib.sha256(open('data/noise.bin', 'rb').read()).hexdigest())\n";
    env.project(&[("big.py", script)]);
    std::fs::create_dir_all(env.root.path().join("project/data")).unwrap();
    std::fs::write(env.root.path().join("project/data/noise.bin"), &noise).unwrap();
    let client = env.client();
    let t0 = std::time::Instant::now();
    let job = client.submit(opts("pt-slices", "big.py")).unwrap();
    eprintln!("2 MB submit took {:?}", t0.elapsed());
    let status = job
        .wait(Some(Duration::from_secs(60)), &mut || false)
        .unwrap();
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(&noise));
    // A PyTorchJob succeeds with its master; the worker may still be printing.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let lines: Vec<String> = job.logs(false).map(|l| l.text).collect();
        if lines.len() >= 2 || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        lines,
        [digest.clone(), digest],
        "both replicas unpacked the joined archive"
    );
    let backend = client.cluster_connection();
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(backend.client().clone(), "default");
    let names: Vec<String> = backend
        .block_on(cms.list(&Default::default()))
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("pt-slices-code-"))
            .count(),
        3,
        "{names:?}"
    );
    // A restart from another machine rebuilds the archive from the slices.
    std::fs::remove_file(job.run_dir().join("code.tar.gz")).unwrap();
    let again = job.restart().unwrap();
    assert_eq!(
        again
            .wait(Some(Duration::from_secs(60)), &mut || false)
            .unwrap()
            .phase,
        Phase::Succeeded
    );
    again.delete().unwrap();
    let left: Vec<String> = backend
        .block_on(cms.list(&Default::default()))
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n.starts_with("pt-slices"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
