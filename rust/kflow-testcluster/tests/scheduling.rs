//! The node, the scheduler, service-account tokens and access reviews over plain HTTP.

mod common;

use common::{options, Api};
use reqwest::Method;
use serde_json::{json, Value};

const PODS: &str = "/api/v1/namespaces/default/pods";

fn gpu_pod(name: &str, cmd: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", cmd],
                        "resources": {"limits": {"nvidia.com/gpu": 1}}}]}})
}

#[test]
fn gpu_pod_waits_until_the_node_has_a_free_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let (code, node) = api.get("/api/v1/nodes/kflow-node");
    assert_eq!(code, 200);
    assert_eq!(node["status"]["allocatable"]["nvidia.com/gpu"], "0");
    assert_eq!(api.post(PODS, &gpu_pod("g", "echo ok")).0, 201);
    let p = api.wait_for(&format!("{PODS}/g"), 10, |p| {
        p["status"]["conditions"][0]["reason"] == "Unschedulable"
    });
    assert!(p["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("0/1 nodes are available: 1 Insufficient nvidia.com/gpu."));
    assert!(p["spec"]["nodeName"].is_null());
    let (_, events) =
        api.get("/api/v1/namespaces/default/events?fieldSelector=reason=FailedScheduling");
    assert_eq!(
        events["items"][0]["source"]["component"],
        "default-scheduler"
    );
    // Giving the node a GPU (as a device plugin registering would) lets the pod through.
    let (code, _) = api.patch(
        "/api/v1/nodes/kflow-node/status",
        "application/merge-patch+json",
        &json!({"status": {"allocatable": {"nvidia.com/gpu": "1"}}}),
    );
    assert_eq!(code, 200);
    api.wait_for(&format!("{PODS}/g"), 20, |p| {
        p["status"]["phase"] == "Succeeded"
    });
}

#[test]
fn node_gpus_option_and_capacity_frees_on_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), false);
    opts.node.gpus = 1;
    let api = Api::start_with(opts);
    assert_eq!(api.post(PODS, &gpu_pod("a", "sleep 60")).0, 201);
    api.wait_for(&format!("{PODS}/a"), 20, |p| {
        p["status"]["phase"] == "Running"
    });
    assert_eq!(api.post(PODS, &gpu_pod("b", "echo b")).0, 201);
    api.wait_for(&format!("{PODS}/b"), 10, |p| {
        p["status"]["conditions"][0]["reason"] == "Unschedulable"
    });
    assert_eq!(api.call(Method::DELETE, &format!("{PODS}/a"), None).0, 200);
    api.wait_for(&format!("{PODS}/b"), 20, |p| {
        p["status"]["phase"] == "Succeeded"
    });
}

#[test]
fn service_account_token_and_access_review() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c",
            "cat /var/run/secrets/kubernetes.io/serviceaccount/token; echo; cat /var/run/secrets/kubernetes.io/serviceaccount/namespace"]}]}});
    assert_eq!(api.post(PODS, &pod).0, 201);
    api.wait_for(&format!("{PODS}/t"), 20, |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let log = api
        .req(Method::GET, &format!("{PODS}/t/log"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    if !api.cluster.sandboxed {
        return; // no mounts without bubblewrap
    }
    let mut lines = log.lines();
    let token = lines.next().unwrap().to_string();
    assert_eq!(lines.next(), Some("default"));
    let ssar = |ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"resourceAttributes": {"namespace": ns, "verb": "create", "group": "kubeflow.org", "resource": "mpijobs"}}})
    };
    let ask = |ns: &str| -> Value {
        api.http
            .post(api.url("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"))
            .bearer_auth(&token)
            .json(&ssar(ns))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(ask("default")["status"]["allowed"], true);
    let denied = ask("other");
    assert_eq!(denied["status"]["allowed"], false, "{denied}");
    let listed = api
        .http
        .get(api.url("/api/v1/namespaces/other/pods"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(listed.status().as_u16(), 403);
    let (code, admin) = api.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &ssar("other"),
    );
    assert_eq!(
        (code, admin["status"]["allowed"].clone()),
        (201, json!(true))
    );
}
