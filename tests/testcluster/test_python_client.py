"""The official kubernetes Python client against kflow-testcluster: list, watch, log follow."""

import threading
import time

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config, watch  # noqa: E402


@pytest.fixture(scope="module")
def api(kubeconfig):
    return config.new_client_from_config(config_file=kubeconfig)


def test_list_and_create(api, unique):
    v1 = client.CoreV1Api(api)
    names = [ns.metadata.name for ns in v1.list_namespace().items]
    assert "default" in names
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=unique), data={"k": "v"}))
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=unique + "-2")))
    got = v1.read_namespaced_config_map(unique, "default")
    assert got.data == {"k": "v"}
    page = v1.list_namespaced_config_map("default", limit=1)
    assert len(page.items) == 1 and page.metadata._continue
    with pytest.raises(client.ApiException) as err:
        v1.read_namespaced_config_map(unique + "-missing", "default")
    assert err.value.status == 404


def test_metadata_only_responses(api, unique):
    """`Accept: ...;as=PartialObjectMetadata` (client-go's metadata client, kube's *_metadata
    calls, kflow's code uploads) gets the object's metadata only, on create, get and patch."""
    import json

    accept = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
    path = "/api/v1/namespaces/default/configmaps"

    def call(method, url, body=None, content_type="application/json"):
        resp = api.call_api(url, method, header_params={"Accept": accept, "Content-Type": content_type},
                            body=body, auth_settings=["BearerToken"], _preload_content=False)
        return json.loads(resp[0].data)

    created = call("POST", path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": unique}, "data": {"k": "v" * 1000}})
    assert created["kind"] == "PartialObjectMetadata" and created["apiVersion"] == "meta.k8s.io/v1"
    assert created["metadata"]["name"] == unique and "data" not in created
    got = call("GET", f"{path}/{unique}")
    assert got["kind"] == "PartialObjectMetadata" and got["metadata"]["uid"] == created["metadata"]["uid"]
    patched = call("PATCH", f"{path}/{unique}", {"metadata": {"labels": {"a": "b"}}}, "application/merge-patch+json")
    assert patched["metadata"]["labels"] == {"a": "b"} and "data" not in patched
    full = client.CoreV1Api(api).read_namespaced_config_map(unique, "default")
    assert full.data == {"k": "v" * 1000} and full.metadata.labels == {"a": "b"}


def test_watch_sees_added(api, unique):
    v1 = client.CoreV1Api(api)

    def create_later():
        time.sleep(0.5)
        v1.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=unique, labels={"w": unique})))

    t = threading.Thread(target=create_later)
    t.start()
    w = watch.Watch()
    seen = None
    for event in w.stream(v1.list_namespaced_config_map, "default", label_selector=f"w={unique}", timeout_seconds=15):
        seen = (event["type"], event["object"].metadata.name)
        w.stop()
    t.join()
    assert seen == ("ADDED", unique)


def test_watch_too_old_resource_version_is_410(api, testcluster, unique):
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=unique)))
    testcluster.admin("POST", "/admin/compact")
    w = watch.Watch()
    with pytest.raises(client.ApiException) as err:
        for _ in w.stream(v1.list_namespaced_config_map, "default", resource_version=str(int(rv) - 1), timeout_seconds=5):
            pass
    assert err.value.status == 410


def test_follow_pod_log(api, unique):
    v1 = client.CoreV1Api(api)
    script = "import time\nfor i in range(3):\n    print('n', i, flush=True)\n    time.sleep(0.3)"
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=unique),
        spec=client.V1PodSpec(restart_policy="Never", containers=[
            client.V1Container(name="main", image="python:3.12", command=["python", "-c", script])]))
    v1.create_namespaced_pod("default", pod)
    deadline = time.monotonic() + 30
    while v1.read_namespaced_pod(unique, "default").status.phase == "Pending":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    lines = list(watch.Watch().stream(v1.read_namespaced_pod_log, unique, "default", follow=True))
    assert lines == ["n 0", "n 1", "n 2"]
    done = v1.read_namespaced_pod(unique, "default")
    assert done.status.container_statuses[0].state.terminated.reason == "Completed"


def test_custom_objects_pytorchjob(api, unique):
    co = client.CustomObjectsApi(api)
    spec = {"replicas": 1, "restartPolicy": "Never", "template": {"spec": {"containers": [
        {"name": "pytorch", "image": "pytorch/pytorch", "command": ["python", "-c", "print('hi')"]}]}}}
    body = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": unique},
            "spec": {"pytorchReplicaSpecs": {"Master": spec}}}
    co.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", body)
    deadline = time.monotonic() + 30
    while True:
        job = co.get_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", unique)
        types = [c["type"] for c in job.get("status", {}).get("conditions", []) if c["status"] == "True"]
        if "Succeeded" in types:
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"]["replicaStatuses"]["Master"]["succeeded"] == 1


def test_exec_stream(api, unique):
    from kubernetes.stream import stream

    v1 = client.CoreV1Api(api)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=unique),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="main", image="busybox", command=["sh", "-c", "sleep 120"])]))
    v1.create_namespaced_pod("default", pod)
    deadline = time.monotonic() + 30
    while v1.read_namespaced_pod(unique, "default").status.phase != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    out = stream(v1.connect_get_namespaced_pod_exec, unique, "default", command=["sh", "-c", "echo out; echo $HOSTNAME"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == f"out\n{unique}\n"
    resp = stream(v1.connect_get_namespaced_pod_exec, unique, "default", command=["sh", "-c", "exit 5"],
                  stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=10)
    assert resp.returncode == 5
    v1.delete_namespaced_pod(unique, "default")
