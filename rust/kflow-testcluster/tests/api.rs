//! API conformance against a started server: CRUD, Status errors, list paging, watch resume,
//! 410 Gone, validation, restart persistence, auth and TLS.

mod common;

use common::{read_events, Api};
use reqwest::Method;
use serde_json::{json, Value};

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[test]
fn crud_and_status_errors() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let (code, created) = api.post(CMS, &cm("one", json!({"app": "a"})));
    assert_eq!(code, 201, "{created}");
    assert!(created["metadata"]["uid"].is_string());
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let (code, dup) = api.post(CMS, &cm("one", json!({})));
    assert_eq!(
        (code, dup["reason"].as_str(), dup["kind"].as_str()),
        (409, Some("AlreadyExists"), Some("Status"))
    );
    assert_eq!(dup["message"], "configmaps \"one\" already exists");

    // update with the current resourceVersion succeeds, with a stale one conflicts
    let mut upd = created.clone();
    upd["data"]["k"] = json!("v2");
    let (code, updated) = api.call(Method::PUT, &format!("{CMS}/one"), Some(&upd));
    assert_eq!(code, 200, "{updated}");
    assert_ne!(updated["metadata"]["resourceVersion"].as_str().unwrap(), rv);
    let (code, stale) = api.call(Method::PUT, &format!("{CMS}/one"), Some(&upd));
    assert_eq!((code, stale["reason"].as_str()), (409, Some("Conflict")));

    let (code, merged) = api.patch(
        &format!("{CMS}/one"),
        "application/merge-patch+json",
        &json!({"data": {"x": "y"}}),
    );
    assert_eq!(
        (
            code,
            merged["data"]["x"].as_str(),
            merged["data"]["k"].as_str()
        ),
        (200, Some("y"), Some("v2"))
    );
    let ops = json!([{"op": "remove", "path": "/data/x"}]);
    let (code, patched) = api.patch(&format!("{CMS}/one"), "application/json-patch+json", &ops);
    assert_eq!((code, patched["data"].get("x")), (200, None));
    let (code, _) = api.patch(&format!("{CMS}/one"), "text/plain", &json!({}));
    assert_eq!(code, 415);

    let (code, _) = api.call(Method::DELETE, &format!("{CMS}/one"), None);
    assert_eq!(code, 200);
    let (code, gone) = api.get(&format!("{CMS}/one"));
    assert_eq!((code, gone["reason"].as_str()), (404, Some("NotFound")));
    let (code, _) = api.get("/api/v1/namespaces/default/nosuchthings");
    assert_eq!(code, 404);
}

#[test]
fn create_rules_generate_name_dry_run_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let (code, g) = api.post(
        CMS,
        &json!({"metadata": {"generateName": "gen-"}, "data": {}}),
    );
    assert_eq!(code, 201);
    let name = g["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let (code, _) = api.post(&format!("{CMS}?dryRun=All"), &cm("dry", json!({})));
    assert_eq!(code, 201);
    assert_eq!(api.get(&format!("{CMS}/dry")).0, 404);

    let (code, bad) = api.post(CMS, &cm("Bad_Name", json!({})));
    assert_eq!((code, bad["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(bad["details"]["causes"][0]["field"], "metadata.name");

    let (code, _) = api.post(
        "/api/v1/namespaces/nosuchns/configmaps",
        &cm("x", json!({})),
    );
    assert_eq!(code, 404);

    let (code, ns) = api.post(
        "/api/v1/namespaces/default/pods",
        &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
    );
    assert_eq!(code, 422);
    assert_eq!(
        ns["details"]["causes"][0]["field"],
        "spec.containers[0].image"
    );

    let job = json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "j"},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 2, "template": {"spec": {"containers": [{"name": "main", "image": "python"}]}}}}}});
    let (code, err) = api.post("/apis/kubeflow.org/v1/namespaces/default/pytorchjobs", &job);
    assert_eq!(code, 422, "{err}");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("must be 1") && msg.contains("container with name pytorch"),
        "{msg}"
    );
}

#[test]
fn crd_schema_validation_when_configured() {
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crds");
    if !crds.is_dir() {
        eprintln!("skipping: {} not present", crds.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(dir.path(), false);
    opts.crd_dir = Some(crds);
    let api = Api::start_with(opts);
    let job = json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "j"},
        "spec": {"runPolicy": {"backoffLimit": "three"},
                 "pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [{"name": "pytorch", "image": "python", "command": ["true"]}]}}}}}});
    let (code, err) = api.post("/apis/kubeflow.org/v1/namespaces/default/pytorchjobs", &job);
    assert_eq!(code, 422, "{err}");
    assert_eq!(
        err["details"]["causes"][0]["field"],
        "spec.runPolicy.backoffLimit"
    );
}

#[test]
fn list_paging_and_selectors() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    for i in 0..7 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        assert_eq!(
            api.post(CMS, &cm(&format!("cm-{i}"), json!({"tier": tier})))
                .0,
            201
        );
    }
    let mut names = Vec::new();
    let mut path = format!("{CMS}?limit=3");
    loop {
        let (code, page) = api.get(&path);
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["kind"], "ConfigMapList");
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(c) => path = format!("{CMS}?limit=3&continue={c}"),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    let (_, odd) = api.get(&format!("{CMS}?labelSelector=tier%3Dodd"));
    assert_eq!(odd["items"].as_array().unwrap().len(), 3);
    let (_, notin) = api.get(&format!("{CMS}?labelSelector=tier%20notin%20(odd)"));
    assert_eq!(notin["items"].as_array().unwrap().len(), 4);
    let (_, one) = api.get(&format!("{CMS}?fieldSelector=metadata.name%3Dcm-5"));
    assert_eq!(one["items"][0]["metadata"]["name"], "cm-5");
    let (code, _) = api.get(&format!("{CMS}?continue=garbage"));
    assert_eq!(code, 400);
    // all namespaces
    let (_, all) = api.get("/api/v1/configmaps");
    assert_eq!(all["items"].as_array().unwrap().len(), 7);
    // deletecollection with a selector
    let (code, gone) = api.call(
        Method::DELETE,
        &format!("{CMS}?labelSelector=tier%3Dodd"),
        None,
    );
    assert_eq!((code, gone["items"].as_array().unwrap().len()), (200, 3));
    assert_eq!(api.get(CMS).1["items"].as_array().unwrap().len(), 4);
}

#[test]
fn watch_resumes_from_resource_version_and_410_when_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let (_, a) = api.post(CMS, &cm("a", json!({})));
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(CMS, &cm("b", json!({})));
    api.patch(
        &format!("{CMS}/b"),
        "application/merge-patch+json",
        &json!({"data": {"z": "1"}}),
    );
    api.call(Method::DELETE, &format!("{CMS}/a"), None);

    let resp = api
        .req(
            Method::GET,
            &format!("{CMS}?watch=true&resourceVersion={rv}"),
        )
        .send()
        .unwrap();
    let events = read_events(resp, 3);
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "a")]
    );

    // Without a resourceVersion: the current objects as ADDED, then live changes.
    let resp = api
        .req(
            Method::GET,
            &format!("{CMS}?watch=1&labelSelector=live%3Dyes"),
        )
        .send()
        .unwrap();
    let poster = {
        let http = api.http.clone();
        let url = api.url(CMS);
        let token = api.cluster.token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            http.post(&url)
                .bearer_auth(token)
                .json(&cm("c", json!({"live": "yes"})))
                .send()
                .unwrap();
        })
    };
    let live = read_events(resp, 1);
    poster.join().unwrap();
    assert_eq!(
        (
            live[0]["type"].as_str(),
            live[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("c"))
    );

    let (code, _) = api.call(Method::POST, "/admin/compact", None);
    assert_eq!(code, 200);
    let resp = api
        .req(
            Method::GET,
            &format!("{CMS}?watch=true&resourceVersion={rv}"),
        )
        .send()
        .unwrap();
    let err = read_events(resp, 1);
    assert_eq!(err[0]["type"], "ERROR");
    assert_eq!(
        (
            err[0]["object"]["code"].as_i64(),
            err[0]["object"]["reason"].as_str()
        ),
        (Some(410), Some("Expired"))
    );
}

#[test]
fn state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let (_, created) = api.post(CMS, &cm("kept", json!({})));
    let token = api.cluster.token.clone();
    drop(api);
    let api = Api::start(dir.path());
    assert_eq!(
        api.cluster.token, token,
        "token is kept so old kubeconfigs still work"
    );
    let (code, got) = api.get(&format!("{CMS}/kept"));
    assert_eq!(code, 200);
    assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);
    // resourceVersions keep increasing across the restart
    let (_, next) = api.post(CMS, &cm("after", json!({})));
    let rv = |v: &Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&next) > rv(&created));
}

#[test]
fn auth_discovery_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start_with(common::options(dir.path(), true));
    assert!(api.cluster.base_url.starts_with("https://"));
    let resp = api.http.get(api.url("/api/v1/namespaces")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (code, v) = api.get("/version");
    assert_eq!((code, v["major"].as_str()), (200, Some("1")));
    let (_, groups) = api.get("/apis");
    assert_eq!(groups["groups"][0]["name"], "kubeflow.org");
    let (_, rl) = api.get("/apis/kubeflow.org/v1");
    let names: Vec<&str> = rl["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"pytorchjobs") && names.contains(&"pytorchjobs/status"),
        "{names:?}"
    );
    let (_, core) = api.get("/api/v1");
    assert!(core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "pods/log"));
    assert!(api
        .cluster
        .kubeconfig
        .contains("certificate-authority-data"));
    // CRDs of the served Kubeflow kinds are visible for capability detection.
    let (code, crds) = api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
    assert_eq!(code, 200);
    let names: Vec<&str> = crds["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"pytorchjobs.kubeflow.org") && names.contains(&"tfjobs.kubeflow.org"),
        "{names:?}"
    );
}

#[test]
fn fault_injection_errors_and_dropped_watches() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let faults = json!({"rules": [{"pathContains": "/configmaps", "method": "GET", "errorRate": 1.0, "errorCode": 503}], "watchDropAfter": 2});
    let (code, _) = api.call(Method::PUT, "/admin/faults", Some(&faults));
    assert_eq!(code, 200);
    let (code, v) = api.get(CMS);
    assert_eq!(
        (code, v["reason"].as_str()),
        (503, Some("ServiceUnavailable"))
    );
    assert_eq!(
        api.post(CMS, &cm("ok", json!({}))).0,
        201,
        "POST is not matched by the GET rule"
    );
    api.post(CMS, &cm("ok2", json!({})));
    api.post(CMS, &cm("ok3", json!({})));
    // The watch stream ends after 2 events even though 3 objects exist.
    api.call(
        Method::PUT,
        "/admin/faults",
        Some(&json!({"watchDropAfter": 2})),
    );
    let resp = api
        .req(Method::GET, &format!("{CMS}?watch=1"))
        .send()
        .unwrap();
    let events = read_events(resp, 10);
    assert_eq!(events.len(), 2);
    // A revoked token gets 401.
    let revoke = json!({"revokedTokens": [api.cluster.token.clone()]});
    let (code, _) = api.call(Method::PUT, "/admin/faults", Some(&revoke));
    assert_eq!(code, 200);
    assert_eq!(api.get(CMS).0, 401);
}
