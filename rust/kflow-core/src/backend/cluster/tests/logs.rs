//! Logs of a container that restarted in place (restartPolicy OnFailure) against
//! kflow-testcluster: the previous instance's lines come first, none lost, none repeated, also
//! when following starts only after the restart.

use std::time::{Duration, Instant};

use crate::artifacts::{self, PackOptions};
use crate::backend::cluster::{self, ClusterLogStream};
use crate::manifest::{self, CodePayload, MpiApi};
use crate::records::RunDir;
use crate::{BackendKind, RunOptions};
use k8s_openapi::api::core::v1::Pod;
use kflow_testcluster::{Options, TestCluster};

/// Fails on its first run (after printing), succeeds on the second: the marker lives on the
/// pip-cache PVC, which outlives the container.
const FLAKY: &str = "import os, sys\nm = os.path.join(os.environ['PIP_CACHE_DIR'], 'ran-once')\nfirst = not os.path.exists(m)\nfor i in range(30):\n    print('first' if first else 'second', i, flush=True)\nif first:\n    open(m, 'w').close()\n    sys.exit(3)\n";

#[test]
fn a_restarted_container_is_read_from_its_previous_instance_first() {
    let root = tempfile::tempdir().unwrap();
    let mut o = Options::new(root.path().join("cluster"));
    o.crd_dir = super::crd_dir();
    let tc = TestCluster::start(Some(o)).expect("test cluster starts");
    let r = root.path();
    let project = r.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("flaky.py"), FLAKY).unwrap();
    let client = super::client_at(r, &tc.kubeconfig_path);
    let opts = RunOptions {
        script: Some("flaky.py".into()),
        name: Some("pt-again".into()),
        backend: Some(BackendKind::Cluster),
        pip_cache: Some(true),
        ..Default::default()
    };
    let mut spec = client.resolve(opts).unwrap();
    spec.namespace = Some("default".into());
    // kflow's own jobs use restartPolicy Never; this one restarts in place, as a template or an
    // admin policy may make it.
    let archive = artifacts::package(
        &spec.project_root,
        &r.join("code.tar.gz"),
        &PackOptions::default(),
    )
    .unwrap();
    let bytes = std::fs::read(&archive.path).unwrap();
    let mut m = manifest::build(
        &spec,
        &CodePayload::Archive {
            bytes,
            sha256: archive.sha256.clone(),
        },
        MpiApi::V1,
    );
    let specs = m
        .job
        .spec
        .pytorch_replica_specs
        .as_mut()
        .expect("replica specs");
    specs.get_mut("Master").expect("a master").restart_policy = "OnFailure".into();
    let backend = client.cluster_connection();
    let sub = cluster::submit::Submission {
        manifests: &m,
        namespace: "default",
        kind: spec.kind,
        name: &spec.name,
        run_id: &spec.run_id,
        record_json: "{}".into(),
    };
    backend
        .block_on(cluster::submit::submit(backend.client(), &sub))
        .unwrap();

    // Follow only once the restart has happened and the second run is over: without reading
    // the previous instance, "first …" would be gone.
    let pods: kube::Api<Pod> = kube::Api::namespaced(backend.client().clone(), "default");
    let lp =
        kube::api::ListParams::default().labels(&cluster::pod_selector(&spec.name, &spec.run_id));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list = backend.block_on(pods.list(&lp)).unwrap();
        let done = list.items.iter().any(|p| {
            cluster::logs::restart_count(p, "pytorch") >= 1
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pod did not restart and succeed: {:?}",
            list.items.iter().map(|p| &p.status).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let expected: Vec<String> = (0..30)
        .map(|i| format!("first {i}"))
        .chain((0..30).map(|i| format!("second {i}")))
        .collect();
    let ar = spec.kind.api_resource(crate::kubeflow::V1);
    for follow in [true, false] {
        let jobs: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(backend.client().clone(), "default", &ar);
        let dir = RunDir::new(&r.join(format!("runs-{follow}")), &spec.name);
        let stream = ClusterLogStream::start(
            backend.clone(),
            jobs,
            "default",
            &spec.name,
            &spec.run_id,
            dir.clone(),
            vec!["master-0".into()],
            follow,
        );
        let texts: Vec<String> = stream
            .filter(|l| !l.text.starts_with(cluster::logs::KFLOW_LINE_PREFIX))
            .map(|l| l.text)
            .collect();
        assert_eq!(texts, expected, "follow={follow}");
        // The local copy holds both instances too.
        assert_eq!(
            std::fs::read_to_string(dir.log_file("master-0"))
                .unwrap()
                .lines()
                .collect::<Vec<_>>(),
            expected
        );
    }
}
