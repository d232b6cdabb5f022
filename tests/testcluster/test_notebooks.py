"""Notebooks, storage and port-forward as real clients see them: `kubectl get storageclass/pvc/pv`
columns and claim binding; a Notebook (v1 and v1beta1) run by the notebook controller over a
StatefulSet, stopped and started with its annotation, its failures in its status; the real
`kubectl port-forward` (WebSocket tunnel and SPDY fallback, to the pod and to the Service) and
the Python client's portforward; the drop fault that cuts them; a cluster without the Notebook
CRD; a real Jupyter Server when the test's Python has jupyter_server."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import requests

from conftest import Cluster

NOTEBOOK = """
apiVersion: kubeflow.org/{version}
kind: Notebook
metadata: {{name: {name}}}
spec:
  template:
    spec:
      containers:
      - name: {name}
        image: {image}
"""
IMAGE = "kubeflownotebookswg/jupyter-scipy:v1.9.0"

CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 2Gi}}}}
"""


def until(fn, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {value!r}")


def get(tc, *what):
    return json.loads(tc.kubectl("get", *what, "-o", "json").stdout)


def make_notebook(tc, name, version="v1", image=IMAGE):
    tc.kubectl("apply", "-f", "-", input=NOTEBOOK.format(version=version, name=name, image=image))


def wait_serving(tc, name):
    """Running, and its server listening (kubectl port-forward gives up on a refused port)."""
    until(lambda: get(tc, "notebook", name).get("status", {}).get("readyReplicas") == 1, what=f"{name} ready")
    until(lambda: "is running at" in tc.kubectl("logs", f"{name}-0", check=False).stdout, what=f"{name} listening")


@contextlib.contextmanager
def port_forward(tc, target, remote, websockets=True):
    """`kubectl port-forward TARGET :REMOTE`; yields (local port, process)."""
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    env = dict(os.environ, KUBECONFIG=tc.kubeconfig, KUBECTL_PORT_FORWARD_WEBSOCKETS=str(websockets).lower())
    proc = subprocess.Popen([kubectl, "port-forward", target, f":{remote}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Forwarding from 127.0.0.1:"), line + proc.stderr.read()
        yield int(line.split(":")[1].split()[0]), proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def made(testcluster):
    """Names of Notebooks deleted after the test, passed or failed: a server left running would
    hold 8888 where pods share the node's network."""
    names = []
    yield names
    for name in names:
        testcluster.kubectl("delete", "notebook", name, "--ignore-not-found", check=False)


def test_storage_classes_and_claims(testcluster, unique):
    out = testcluster.kubectl("get", "storageclass").stdout.splitlines()
    assert out[0].split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]
    assert any(l.split()[:5] == ["standard", "(default)", "rancher.io/local-path", "Delete", "Immediate"] for l in out), out
    assert any(l.split()[:3] == ["local-path", "rancher.io/local-path", "Delete"] for l in out), out

    testcluster.kubectl("apply", "-f", "-", input=CLAIM.format(name=unique))
    until(lambda: get(testcluster, "pvc", unique)["status"]["phase"] == "Bound", what="claim bound")
    claim = get(testcluster, "pvc", unique)
    assert claim["spec"]["storageClassName"] == "standard"
    volume = claim["spec"]["volumeName"]
    rows = testcluster.kubectl("get", "pvc", unique).stdout.splitlines()
    assert rows[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert rows[1].split()[:6] == [unique, "Bound", volume, "2Gi", "RWO", "standard"]
    pv = testcluster.kubectl("get", "pv", volume).stdout.splitlines()[1].split()
    assert pv[:6] == [volume, "2Gi", "RWO", "Delete", "Bound", f"default/{unique}"]

    missing = unique + "-x"
    testcluster.kubectl("apply", "-f", "-", input=CLAIM.format(name=missing).replace(
        "spec:\n", "spec:\n  storageClassName: fast-ssd\n"))
    described = until(lambda: (lambda d: d if "ProvisioningFailed" in d else None)(
        testcluster.kubectl("describe", "pvc", missing).stdout), what="ProvisioningFailed")
    assert 'storageclass.storage.k8s.io "fast-ssd" not found' in described
    assert get(testcluster, "pvc", missing)["status"]["phase"] == "Pending"
    testcluster.kubectl("delete", "pvc", unique, missing)
    until(lambda: testcluster.kubectl("get", "pv", volume, check=False).returncode != 0, what="volume deleted")


def test_notebook_with_kubectl_and_port_forward(testcluster, unique, made):
    made.append(unique)
    make_notebook(testcluster, unique)
    wait_serving(testcluster, unique)
    # The same object through the older version.
    assert get(testcluster, f"notebooks.v1beta1.kubeflow.org/{unique}")["apiVersion"] == "kubeflow.org/v1beta1"
    assert testcluster.kubectl("get", "statefulset", unique).stdout.splitlines()[1].split()[:2] == [unique, "1/1"]
    status = get(testcluster, "notebook", unique)["status"]
    assert "running" in status["containerState"]
    assert {"type": "Ready", "status": "True"}.items() <= next(c for c in status["conditions"] if c["type"] == "Ready").items()

    api = f"/notebook/default/{unique}/api"
    for websockets in (True, False):
        with port_forward(testcluster, f"pod/{unique}-0", 8888, websockets) as (port, _):
            with requests.Session() as s:
                for _ in range(2):  # two requests on one forwarded connection
                    got = s.get(f"http://127.0.0.1:{port}{api}", timeout=10)
                    assert got.status_code == 200 and "version" in got.json()
            assert requests.get(f"http://127.0.0.1:{port}{api}/status", timeout=10).json()["kernels"] == 0
    # Through the Service: kubectl maps its port 80 to the pod's 8888.
    with port_forward(testcluster, f"svc/{unique}", 80) as (port, _):
        assert "version" in requests.get(f"http://127.0.0.1:{port}{api}", timeout=10).json()

    testcluster.kubectl("annotate", "notebook", unique, "kubeflow-resource-stopped=2026-01-01T00:00:00Z")
    until(lambda: testcluster.kubectl("get", "pod", f"{unique}-0", check=False).returncode != 0, what="pod gone")
    until(lambda: get(testcluster, "notebook", unique)["status"] == {"conditions": [], "containerState": {}, "readyReplicas": 0},
          what="stopped status")
    testcluster.kubectl("annotate", "notebook", unique, "kubeflow-resource-stopped-")
    wait_serving(testcluster, unique)
    testcluster.kubectl("delete", "notebook", unique)
    for kind in ("statefulset", "service", "pod"):
        name = f"{unique}-0" if kind == "pod" else unique
        until(lambda: testcluster.kubectl("get", kind, name, check=False).returncode != 0, what=f"{kind} deleted")


def test_python_client_port_forward(testcluster, unique, made):
    pytest.importorskip("kubernetes")
    from kubernetes import client, config
    from kubernetes.stream import portforward
    import http.client

    api = config.new_client_from_config(config_file=testcluster.kubeconfig)
    co = client.CustomObjectsApi(api)
    body = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Notebook", "metadata": {"name": unique},
            "spec": {"template": {"spec": {"containers": [{"name": unique, "image": IMAGE}]}}}}
    made.append(unique)
    co.create_namespaced_custom_object("kubeflow.org", "v1beta1", "default", "notebooks", body)
    assert co.get_namespaced_custom_object("kubeflow.org", "v1", "default", "notebooks", unique)["apiVersion"] == "kubeflow.org/v1"
    wait_serving(testcluster, unique)
    v1 = client.CoreV1Api(api)
    pf = portforward(v1.connect_get_namespaced_pod_portforward, f"{unique}-0", "default", ports="8888")
    conn = http.client.HTTPConnection("localhost", 8888, timeout=10)
    conn.sock = pf.socket(8888)
    conn.request("GET", f"/notebook/default/{unique}/api")
    resp = conn.getresponse()
    assert resp.status == 200 and "version" in json.loads(resp.read())
    assert pf.error(8888) is None
    conn.close()
    # Nothing on 9999: the error channel says why.
    refused = portforward(v1.connect_get_namespaced_pod_portforward, f"{unique}-0", "default", ports="9999")
    refused.socket(9999).recv(1)
    until(lambda: refused.error(9999), what="error channel")
    assert "error forwarding port 9999" in refused.error(9999) and "connection refused" in refused.error(9999)


# The Python client's proxy thread may die with the lost connection (an unhandled exception).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_drop_fault_cuts_port_forward(testcluster, unique, made):
    pytest.importorskip("kubernetes")
    from kubernetes import client, config
    from kubernetes.stream import portforward

    made.append(unique)
    make_notebook(testcluster, unique)
    wait_serving(testcluster, unique)
    api = f"/notebook/default/{unique}/api"
    try:
        with port_forward(testcluster, f"pod/{unique}-0", 8888) as (port, proc):
            testcluster.admin("PUT", "/admin/faults", {"portforwardDropAfterBytes": 5})
            with pytest.raises(requests.RequestException):
                requests.get(f"http://127.0.0.1:{port}{api}", timeout=10)
            # kubectl notices the lost connection and exits, as on a real cluster.
            assert proc.wait(timeout=15) != 0
            assert "lost connection to pod" in proc.stderr.read()
        v1 = client.CoreV1Api(config.new_client_from_config(config_file=testcluster.kubeconfig))
        pf = portforward(v1.connect_get_namespaced_pod_portforward, f"{unique}-0", "default", ports="8888")
        sock = pf.socket(8888)
        sock.settimeout(3)
        sock.sendall(f"GET {api} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = b""
        try:
            while chunk := sock.recv(1024):
                got += chunk
        except TimeoutError:
            pass  # client versions that leave the socket open once the connection is gone
        # At most the 5 bytes sent before the cut (a client may drop what it had not handed on).
        assert got in (b"", b"HTTP/")
    finally:
        testcluster.admin("PUT", "/admin/faults", {})
    # Reconnecting works once the fault is gone.
    with port_forward(testcluster, f"pod/{unique}-0", 8888) as (port, _):
        assert "version" in requests.get(f"http://127.0.0.1:{port}{api}", timeout=10).json()


def test_notebook_failures_in_status(testcluster, unique, made):
    claim = unique + "-home"
    made.extend([unique, unique + "-img", unique + "-gpu"])
    testcluster.kubectl("apply", "-f", "-", input=NOTEBOOK.format(version="v1", name=unique, image=IMAGE) + f"""
        volumeMounts: [{{name: home, mountPath: /home/jovyan}}]
      volumes: [{{name: home, persistentVolumeClaim: {{claimName: {claim}}}}}]
""")

    def scheduled(name):
        conds = get(testcluster, "notebook", name).get("status", {}).get("conditions", [])
        return next((c for c in conds if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    cond = until(lambda: scheduled(unique), what="unschedulable")
    assert cond["reason"] == "Unschedulable"
    assert f'persistentvolumeclaim "{claim}" not found' in cond["message"]
    assert "Reissued from pod/" in testcluster.kubectl("describe", "notebook", unique).stdout
    testcluster.kubectl("apply", "-f", "-", input=CLAIM.format(name=claim))
    wait_serving(testcluster, unique)

    bad = unique + "-img"
    make_notebook(testcluster, bad, image="registry.example.com/does-not-exist/jupyter:1")
    reasons = set()
    until(lambda: reasons.add(get(testcluster, "notebook", bad).get("status", {}).get("containerState", {})
                              .get("waiting", {}).get("reason")) or {"ErrImagePull", "ImagePullBackOff"} <= reasons,
          what="both pull states")
    assert get(testcluster, "notebook", bad)["status"]["readyReplicas"] == 0

    gpu = unique + "-gpu"
    testcluster.kubectl("apply", "-f", "-", input=NOTEBOOK.format(version="v1", name=gpu, image=IMAGE) +
                        "        resources: {limits: {nvidia.com/gpu: 1}}\n")
    cond = until(lambda: scheduled(gpu), what="unschedulable for the GPU")
    assert "Insufficient nvidia.com/gpu" in cond["message"]


@pytest.fixture(scope="module")
def cluster_without_notebooks(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("without") / "state", extra_args=["--without", "notebooks"])
    yield cluster
    cluster.stop()


def test_without_notebooks(cluster_without_notebooks):
    tc = cluster_without_notebooks
    resources = tc.kubectl("api-resources", "--api-group=kubeflow.org", "-o", "name").stdout.split()
    assert "pytorchjobs.kubeflow.org" in resources and "notebooks.kubeflow.org" not in resources
    res = tc.kubectl("get", "notebooks", check=False)
    assert res.returncode != 0 and 'the server doesn\'t have a resource type "notebooks"' in res.stderr
    assert tc.kubectl("get", "crd", "notebooks.kubeflow.org", check=False).returncode != 0


def _has_jupyter_server():
    try:
        import jupyter_server  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def jupyter_cluster(tmp_path_factory):
    if not _has_jupyter_server():
        pytest.skip("jupyter_server is not installed (tests/requirements.txt)")
    # Jupyter images run with this Python, which has jupyter_server.
    cluster = Cluster(tmp_path_factory.mktemp("jupyter") / "state",
                      extra_args=["--image-map", f"jupyter=jupyter:{sys.executable}"])
    yield cluster
    cluster.stop()


def test_real_jupyter_server(jupyter_cluster, unique):
    import jupyter_server

    tc = jupyter_cluster
    make_notebook(tc, unique)
    until(lambda: "Jupyter Server" in tc.kubectl("logs", f"{unique}-0", check=False).stdout, timeout=60, what="server log")
    wait_serving(tc, unique)
    with port_forward(tc, f"pod/{unique}-0", 8888) as (port, _):
        base = f"http://127.0.0.1:{port}/notebook/default/{unique}"
        # The real server, not the stand-in.
        assert "Jupyter Server stand-in" not in tc.kubectl("logs", f"{unique}-0").stdout
        assert requests.get(f"{base}/api", timeout=10).json()["version"] == jupyter_server.__version__
        status = requests.get(f"{base}/api/status", timeout=10).json()
        assert {"started", "last_activity", "kernels", "connections"} <= status.keys()
        assert requests.get(f"{base}/api/contents", timeout=10).json()["type"] == "directory"
