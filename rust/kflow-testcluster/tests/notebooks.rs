//! Notebooks, storage and port-forward end to end: StorageClasses and claim binding, the
//! notebook controller over a StatefulSet, pods/portforward in its SPDY and WebSocket channel
//! forms (as a client speaks them on the wire), the drop fault, and pods' own networks.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::Api;
use futures_util::{SinkExt, StreamExt};
use kflow_testcluster::spdy::{self, Frame, HeaderDecoder, HeaderEncoder};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};

const PVCS: &str = "/api/v1/namespaces/default/persistentvolumeclaims";
const PODS: &str = "/api/v1/namespaces/default/pods";
const V1: &str = "/apis/kubeflow.org/v1/namespaces/default/notebooks";
const V1BETA1: &str = "/apis/kubeflow.org/v1beta1/namespaces/default/notebooks";
const IMAGE: &str = "kubeflownotebookswg/jupyter-scipy:v1.9.0";

/// Pods' own networks keep concurrent tests' notebooks apart; without them (the fallback) they
/// would share the node's 8888, so those tests take turns.
fn port_8888() -> Option<MutexGuard<'static, ()>> {
    static TURN: Mutex<()> = Mutex::new(());
    (!own_networks()).then(|| TURN.lock().unwrap_or_else(|e| e.into_inner()))
}

fn own_networks() -> bool {
    kflow_testcluster::runtime::bwrap_available()
        && kflow_testcluster::kubelet::pod_networks_supported()
}

fn pvc(name: &str, class: Option<&str>) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    if let Some(c) = class {
        p["spec"]["storageClassName"] = json!(c);
    }
    p
}

fn notebook(api_version: &str, name: &str, image: &str) -> Value {
    json!({"apiVersion": api_version, "kind": "Notebook", "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}})
}

fn events_for(api: &Api, name: &str) -> Vec<Value> {
    let (_, evs) = api.get(&format!(
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name={name}"
    ));
    evs["items"].as_array().cloned().unwrap_or_default()
}

fn has_event(api: &Api, name: &str, reason: &str, message: &str) -> bool {
    events_for(api, name).iter().any(|e| {
        e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(message))
    })
}

fn condition<'a>(obj: &'a Value, t: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
}

#[test]
fn storage_classes_default_claims_and_binding() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let (_, classes) = api.get("/apis/storage.k8s.io/v1/storageclasses");
    let names: Vec<&str> = classes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["local-path", "standard"]);
    let (_, standard) = api.get("/apis/storage.k8s.io/v1/storageclasses/standard");
    assert_eq!(
        standard["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(standard["provisioner"], "rancher.io/local-path");

    // No class named: the default one, then bound to a new volume.
    let (code, created) = api.post(PVCS, &pvc("data", None));
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["storageClassName"], "standard");
    let bound = api.wait_for(&format!("{PVCS}/data"), 10, |p| {
        p["status"]["phase"] == "Bound"
    });
    let volume = bound["spec"]["volumeName"].as_str().unwrap().to_string();
    assert_eq!(
        volume,
        format!("pvc-{}", created["metadata"]["uid"].as_str().unwrap())
    );
    assert_eq!(bound["status"]["capacity"]["storage"], "1Gi");
    assert_eq!(bound["status"]["accessModes"], json!(["ReadWriteOnce"]));
    let (code, pv) = api.get(&format!("/api/v1/persistentvolumes/{volume}"));
    assert_eq!(code, 200);
    assert_eq!(pv["spec"]["claimRef"]["name"], "data");
    assert_eq!(pv["status"]["phase"], "Bound");
    assert!(has_event(&api, "data", "ProvisioningSucceeded", &volume));

    // A class that does not exist: Pending, with the PV controller's warning.
    api.post(PVCS, &pvc("lost", Some("fast-ssd")));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !has_event(
        &api,
        "lost",
        "ProvisioningFailed",
        "storageclass.storage.k8s.io \"fast-ssd\" not found",
    ) {
        assert!(
            std::time::Instant::now() < deadline,
            "no ProvisioningFailed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        api.get(&format!("{PVCS}/lost")).1["status"]["phase"],
        "Pending"
    );

    // WaitForFirstConsumer: bound once a pod uses it.
    api.post(PVCS, &pvc("later", Some("local-path")));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        api.get(&format!("{PVCS}/later")).1["status"]["phase"],
        "Pending"
    );
    assert!(has_event(
        &api,
        "later",
        "WaitForFirstConsumer",
        "waiting for first consumer"
    ));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "echo consumer"], "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "later"}}]}});
    api.post(PODS, &pod);
    api.wait_for(&format!("{PODS}/user"), 20, |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let later = api.get(&format!("{PVCS}/later")).1;
    assert_eq!(later["status"]["phase"], "Bound");
    assert_eq!(
        later["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        "kflow-node"
    );

    // kubectl's columns.
    let table = api
        .req(Method::GET, PVCS)
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
            "VolumeMode"
        ]
    );
    let data_row = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == "data")
        .unwrap();
    assert_eq!(data_row["cells"][1], "Bound");
    assert_eq!(data_row["cells"][4], "RWO");
    let sc_table = api
        .req(Method::GET, "/apis/storage.k8s.io/v1/storageclasses")
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(sc_table["rows"][1]["cells"][0], "standard (default)");

    // Deleting the claim deletes its volume (reclaimPolicy Delete).
    assert_eq!(
        api.call(Method::DELETE, &format!("{PVCS}/data"), None).0,
        200
    );
    let gone = format!("/api/v1/persistentvolumes/{volume}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while api.get(&gone).0 != 404 {
        assert!(std::time::Instant::now() < deadline, "volume not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn notebook_in_both_versions_runs_stops_and_cascades() {
    let _turn = port_8888();
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let (code, created) = api.post(V1BETA1, &notebook("kubeflow.org/v1beta1", "nb", IMAGE));
    assert_eq!(code, 201, "{created}");
    // One object, either version.
    let (code, as_v1) = api.get(&format!("{V1}/nb"));
    assert_eq!(code, 200);
    assert_eq!(as_v1["apiVersion"], "kubeflow.org/v1");
    assert_eq!(as_v1["metadata"]["uid"], created["metadata"]["uid"]);
    let (_, list) = api.get(V1BETA1);
    assert_eq!(list["items"][0]["apiVersion"], "kubeflow.org/v1beta1");

    let running = api.wait_for(&format!("{V1}/nb"), 30, |n| {
        n["status"]["readyReplicas"] == 1 && n["status"]["containerState"]["running"].is_object()
    });
    assert_eq!(condition(&running, "Ready").unwrap()["status"], "True");
    let (_, sts) = api.get("/apis/apps/v1/namespaces/default/statefulsets/nb");
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(sts["metadata"]["ownerReferences"][0]["kind"], "Notebook");
    let (_, pod) = api.get(&format!("{PODS}/nb-0"));
    assert_eq!(pod["metadata"]["labels"]["statefulset"], "nb");
    assert_eq!(pod["metadata"]["labels"]["notebook-name"], "nb");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(
        c["env"],
        json!([{"name": "NB_PREFIX", "value": "/notebook/default/nb"}])
    );
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 8888, "name": "notebook-port", "protocol": "TCP"}])
    );
    let (_, svc) = api.get("/api/v1/namespaces/default/services/nb");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8888);
    assert_eq!(svc["spec"]["selector"], json!({"statefulset": "nb"}));

    // The server answers through both port-forward forms (once it listens).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = api.cluster.base_url.clone();
    let token = api.cluster.token.clone();
    let body = rt.block_on(retry(|| {
        spdy_get(&base, &token, "nb-0", 8888, "/notebook/default/nb/api")
    }));
    assert!(body.contains("\"version\""), "{body}");
    let body = rt.block_on(retry(|| {
        channel_get(
            &base,
            &token,
            "nb-0",
            8888,
            "/notebook/default/nb/api/status",
        )
    }));
    assert!(body.contains("\"started\""), "{body}");
    // Nothing listens on 9999: the error stream says so.
    let err = rt.block_on(spdy_error(&base, &token, "nb-0", 9999));
    assert!(
        err.contains("error forwarding port 9999") && err.contains("connection refused"),
        "{err}"
    );

    // Stopped: no pod, readyReplicas 0; started again without the annotation.
    let stop =
        json!({"metadata": {"annotations": {"kubeflow-resource-stopped": "2026-01-01T00:00:00Z"}}});
    let (code, _) = api.patch(&format!("{V1}/nb"), "application/merge-patch+json", &stop);
    assert_eq!(code, 200);
    api.wait_for(&format!("{V1}/nb"), 20, |n| {
        n["status"]["readyReplicas"] == 0 && n["status"]["containerState"] == json!({})
    });
    assert_eq!(api.get(&format!("{PODS}/nb-0")).0, 404);
    let start = json!({"metadata": {"annotations": {"kubeflow-resource-stopped": null}}});
    api.patch(&format!("{V1}/nb"), "application/merge-patch+json", &start);
    api.wait_for(&format!("{V1}/nb"), 30, |n| {
        n["status"]["readyReplicas"] == 1
    });
    // The controller issues the pod's events again on the Notebook.
    assert!(has_event(
        &api,
        "nb",
        "Started",
        "Reissued from pod/nb-0: Started container nb"
    ));

    // Deleting the Notebook takes its StatefulSet, pod and Service with it.
    assert_eq!(api.call(Method::DELETE, &format!("{V1}/nb"), None).0, 200);
    assert_eq!(
        api.get("/apis/apps/v1/namespaces/default/statefulsets/nb")
            .0,
        404
    );
    assert_eq!(api.get(&format!("{PODS}/nb-0")).0, 404);
    assert_eq!(api.get("/api/v1/namespaces/default/services/nb").0, 404);
}

#[test]
fn notebook_waits_for_claims_images_and_gpus() {
    let _turn = port_8888();
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let mut with_claim = notebook("kubeflow.org/v1", "ws", IMAGE);
    with_claim["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "home", "persistentVolumeClaim": {"claimName": "ws-home"}}]);
    with_claim["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "home", "mountPath": "/home/jovyan"}]);
    api.post(V1, &with_claim);
    let pending = api.wait_for(&format!("{V1}/ws"), 20, |n| {
        condition(n, "PodScheduled").is_some_and(|c| c["status"] == "False")
    });
    let scheduled = condition(&pending, "PodScheduled").unwrap();
    assert_eq!(scheduled["reason"], "Unschedulable");
    assert_eq!(scheduled["message"], "0/1 nodes are available: persistentvolumeclaim \"ws-home\" not found. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.");
    // The claim arrives: the pod runs with it.
    api.post(PVCS, &pvc("ws-home", None));
    api.wait_for(&format!("{V1}/ws"), 30, |n| {
        n["status"]["readyReplicas"] == 1
    });

    api.post(
        V1,
        &notebook(
            "kubeflow.org/v1",
            "img",
            "registry.example.com/does-not-exist/jupyter:1",
        ),
    );
    let waiting = api.wait_for(&format!("{V1}/img"), 20, |n| {
        n["status"]["containerState"]["waiting"]["reason"] == "ImagePullBackOff"
    });
    assert!(waiting["status"]["containerState"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .contains("registry.example.com/does-not-exist/jupyter:1"));
    api.wait_for(&format!("{V1}/img"), 20, |n| {
        n["status"]["containerState"]["waiting"]["reason"] == "ErrImagePull"
    });
    assert_eq!(
        api.get(&format!("{V1}/img")).1["status"]["readyReplicas"],
        0
    );

    let mut gpu = notebook("kubeflow.org/v1", "gpu", IMAGE);
    gpu["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"nvidia.com/gpu": 1}});
    api.post(V1, &gpu);
    let unschedulable = api.wait_for(&format!("{V1}/gpu"), 20, |n| {
        condition(n, "PodScheduled").is_some_and(|c| c["reason"] == "Unschedulable")
    });
    assert!(
        condition(&unschedulable, "PodScheduled").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("Insufficient nvidia.com/gpu")
    );
    assert_eq!(unschedulable["status"]["containerState"], json!({}));
}

#[test]
fn without_notebooks_the_api_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(dir.path(), false);
    opts.without = vec![kflow_testcluster::components::Component::Notebooks];
    let api = Api::start_with(opts);
    let (_, v1) = api.get("/apis/kubeflow.org/v1");
    assert!(!v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "notebooks"));
    assert_eq!(api.get("/apis/kubeflow.org/v1beta1").0, 404);
    assert_eq!(api.get(V1).0, 404);
    assert_eq!(
        api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/notebooks.kubeflow.org")
            .0,
        404
    );
    // Training jobs are still served.
    assert_eq!(
        api.get("/apis/kubeflow.org/v1/namespaces/default/pytorchjobs")
            .0,
        200
    );
}

#[test]
fn portforward_drop_fault_cuts_the_connection() {
    let _turn = port_8888();
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    api.post(V1, &notebook("kubeflow.org/v1", "cut", IMAGE));
    api.wait_for(&format!("{V1}/cut"), 30, |n| {
        n["status"]["readyReplicas"] == 1
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (base, token) = (api.cluster.base_url.clone(), api.cluster.token.clone());
    rt.block_on(retry(|| {
        channel_get(&base, &token, "cut-0", 8888, "/notebook/default/cut/api")
    }));
    let faults = json!({"portforwardDropAfterBytes": 12});
    assert_eq!(api.call(Method::PUT, "/admin/faults", Some(&faults)).0, 200);
    let (data, closed_cleanly) = rt.block_on(channel_exchange(
        &base,
        &token,
        "cut-0",
        8888,
        "/notebook/default/cut/api",
    ));
    assert_eq!(data, b"HTTP/1.1 200".to_vec(), "12 bytes, then the cut");
    assert!(!closed_cleanly, "a cut connection has no close frame");
    let (code, _) = api.call(Method::PUT, "/admin/faults", Some(&json!({})));
    assert_eq!(code, 200);
    // A new connection works again.
    let body = rt
        .block_on(channel_get(
            &base,
            &token,
            "cut-0",
            8888,
            "/notebook/default/cut/api",
        ))
        .unwrap();
    assert!(body.contains("\"version\""));
}

#[test]
fn notebooks_have_networks_of_their_own() {
    if !own_networks() {
        eprintln!("skipped: pods cannot have network namespaces of their own here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    for name in ["one", "two"] {
        api.post(V1, &notebook("kubeflow.org/v1", name, IMAGE));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (base, token) = (api.cluster.base_url.clone(), api.cluster.token.clone());
    for name in ["one", "two"] {
        api.wait_for(&format!("{V1}/{name}"), 30, |n| {
            n["status"]["readyReplicas"] == 1
        });
        // Both on 8888, each answering under its own prefix.
        let path = format!("/notebook/default/{name}/api");
        let pod = format!("{name}-0");
        let body = rt.block_on(retry(|| channel_get(&base, &token, &pod, 8888, &path)));
        assert!(body.contains("\"version\""), "{name}: {body}");
    }
    // Neither listens on the node's loopback.
    assert!(std::net::TcpStream::connect(("127.0.0.1", 8888)).is_err());
}

/// Retries `f` for a while: a notebook server listens a moment after its container starts.
async fn retry<F, Fut>(f: F) -> String
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let mut last = String::new();
    for _ in 0..100 {
        match f().await {
            Ok(body) => return body,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("port-forward never answered: {last}")
}

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

fn http_get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes()
}

/// The plain SPDY upgrade, as kubectl's fallback dialer makes it.
async fn spdy_connect(base: &str, token: &str, pod: &str) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(host_port(base))
        .await
        .unwrap();
    let req = format!("POST {PODS}/{pod}/portforward HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: portforward.k8s.io"),
        "{head}"
    );
    tcp
}

/// Opens the error and data streams of request 0; returns what came on each until both ended.
async fn spdy_exchange(
    base: &str,
    token: &str,
    pod: &str,
    port: u16,
    send: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let tcp = spdy_connect(base, token, pod).await;
    let (mut r, mut w) = tcp.into_split();
    let mut enc = HeaderEncoder::default();
    for (id, kind) in [(1, "error"), (3, "data")] {
        let headers = vec![
            ("streamtype".to_string(), kind.to_string()),
            ("port".into(), port.to_string()),
            ("requestid".into(), "0".into()),
        ];
        w.write_all(&enc.frame(&Frame::SynStream {
            stream_id: id,
            headers,
            fin: false,
        }))
        .await
        .unwrap();
    }
    w.write_all(&enc.frame(&Frame::Data {
        stream_id: 1,
        fin: true,
        data: vec![],
    }))
    .await
    .unwrap();
    w.write_all(&enc.frame(&Frame::Data {
        stream_id: 3,
        fin: true,
        data: send.to_vec(),
    }))
    .await
    .unwrap();
    let mut dec = HeaderDecoder::default();
    let (mut error, mut data) = (Vec::new(), Vec::new());
    let (mut replies, mut ended) = (0, 0);
    while ended < 2 {
        let frame =
            tokio::time::timeout(Duration::from_secs(10), spdy::read_frame(&mut r, &mut dec))
                .await
                .expect("a frame in time")
                .unwrap()
                .expect("the connection stays up");
        match frame {
            Frame::SynReply { .. } => replies += 1,
            Frame::Data {
                stream_id,
                fin,
                data: bytes,
            } => {
                if stream_id == 1 {
                    &mut error
                } else {
                    &mut data
                }
                .extend(bytes);
                ended += usize::from(fin);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(replies, 2, "each stream answered");
    (error, data)
}

async fn spdy_get(
    base: &str,
    token: &str,
    pod: &str,
    port: u16,
    path: &str,
) -> Result<String, String> {
    let (error, data) = spdy_exchange(base, token, pod, port, &http_get(path)).await;
    if !error.is_empty() {
        return Err(String::from_utf8_lossy(&error).into_owned());
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}

async fn spdy_error(base: &str, token: &str, pod: &str, port: u16) -> String {
    let (error, data) = spdy_exchange(base, token, pod, port, b"").await;
    assert!(data.is_empty());
    String::from_utf8_lossy(&error).into_owned()
}

/// The channel protocol, as kube-rs and the Python client speak it: what came on the data
/// channel, and whether the server closed with a close frame.
async fn channel_exchange(
    base: &str,
    token: &str,
    pod: &str,
    port: u16,
    path: &str,
) -> (Vec<u8>, bool) {
    let url = format!(
        "ws://{}{PODS}/{pod}/portforward?ports={port}",
        host_port(base)
    );
    let mut req = url.into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert("authorization", format!("Bearer {token}").parse().unwrap());
    h.insert(
        "sec-websocket-protocol",
        "v5.channel.k8s.io, v4.channel.k8s.io".parse().unwrap(),
    );
    let tcp = tokio::net::TcpStream::connect(host_port(base))
        .await
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "v4.channel.k8s.io"
    );
    let port_frame =
        |ch: u8| Message::Binary([vec![ch], port.to_le_bytes().to_vec()].concat().into());
    assert_eq!(ws.next().await.unwrap().unwrap(), port_frame(0));
    assert_eq!(ws.next().await.unwrap().unwrap(), port_frame(1));
    ws.send(Message::Binary([vec![0], http_get(path)].concat().into()))
        .await
        .unwrap();
    let mut data = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Binary(b))) if b[0] == 0 => data.extend_from_slice(&b[1..]),
            Some(Ok(Message::Binary(b))) => data.extend_from_slice(
                format!("ERROR: {}", String::from_utf8_lossy(&b[1..])).as_bytes(),
            ),
            Some(Ok(Message::Close(_))) => return (data, true),
            Some(Ok(_)) => {}
            None | Some(Err(tungstenite::Error::ConnectionClosed)) => return (data, true),
            Some(Err(_)) => return (data, false),
        }
    }
}

async fn channel_get(
    base: &str,
    token: &str,
    pod: &str,
    port: u16,
    path: &str,
) -> Result<String, String> {
    let (data, _) = channel_exchange(base, token, pod, port, path).await;
    let text = String::from_utf8_lossy(&data).into_owned();
    if text.starts_with("ERROR: ") || text.is_empty() {
        return Err(text);
    }
    Ok(text)
}
