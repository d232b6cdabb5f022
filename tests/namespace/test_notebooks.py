"""Notebook servers from kflow against the test cluster's Notebook controller: created with an
offered image, ready, reached through kflow's own port-forward (an HTTP request to the Jupyter
API through the local port), still reachable after the pod behind the forward is replaced,
stopped, started and deleted; bad requests refused before anything is made; a cluster without
the controller says it is not installed."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

import kflow
from kflow_testsupport import TestCluster


def get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def retry_get_json(url, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get_json(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_notebook_lifecycle_from_python(cluster, kube):
    core, _ = kube
    ns = kflow.namespace()
    images = ns.notebook_images()
    assert images["default"] in images["options"]
    row = ns.create_notebook("lab", image="jupyter-scipy", cpu="0.5", memory="512Mi", timeout=120)
    assert row["state"] == "Ready" and row["image"].endswith("jupyter-scipy:v1.10.0")
    assert row["volumes"] == ["lab-workspace"] and row["cpu"] == "0.5" and row["memory"] == "512Mi"
    assert core.read_namespaced_persistent_volume_claim("lab-workspace", "default")
    pod = core.read_namespaced_pod("lab-0", "default")
    env = {e.name: e.value for e in pod.spec.containers[0].env or []}
    assert env.get("NB_PREFIX") == "/notebook/default/lab"

    with ns.open_notebook("lab") as forward:
        assert forward.url == f"http://127.0.0.1:{forward.local_port}/notebook/default/lab/"
        # Ready means the server's pod runs (as in Kubeflow); Jupyter inside may still be a
        # moment from listening on a loaded machine.
        assert "version" in retry_get_json(forward.url + "api")
        # The pod behind the forward goes away (its stream with it) and comes back: the next
        # request gets a new stream to the new pod.
        core.delete_namespaced_pod("lab-0", "default")
        ns.wait_notebook("lab", timeout=120)
        assert "version" in retry_get_json(forward.url + "api")
        # A forward stream the API server cuts mid-way costs that request, not the forward
        # (`kubectl port-forward` exits on it): the next request gets a new stream.
        cluster.admin("PUT", "/admin/faults", {"portforwardDropAfterBytes": 5})
        with pytest.raises((OSError, http.client.HTTPException)):
            get_json(forward.url + "api", timeout=5)
        cluster.admin("PUT", "/admin/faults", {})
        assert "version" in get_json(forward.url + "api")
        assert forward.connections >= 3

    stopped = ns.stop_notebook("lab")
    assert stopped["state"] == "Stopped"
    deadline = time.monotonic() + 60
    while any(p.metadata.name == "lab-0" for p in core.list_namespaced_pod("default").items):
        assert time.monotonic() < deadline, "the stopped server's pod stayed"
        time.sleep(0.3)
    with pytest.raises(kflow.KflowError) as err:
        ns.open_notebook("lab")
    assert "Stopped" in str(err.value)
    assert ns.start_notebook("lab", timeout=120)["state"] == "Ready"
    ns.delete_notebook("lab")
    assert "lab" not in {n["name"] for n in ns.notebooks(all=True)}
    # The workspace outlives the server, as in Kubeflow.
    assert core.read_namespaced_persistent_volume_claim("lab-workspace", "default")
    ns.delete_pvc("lab-workspace")


def test_notebook_from_the_cli_open_and_list(cluster, cli):
    cli("notebook", "create", "cli-lab", "--no-workspace", "--cpu", "0.5", "--mem", "512Mi", timeout=180)
    listed = json.loads(cli("notebook", "list", "--json").stdout)["items"]
    assert [(n["name"], n["state"], n["volumes"]) for n in listed if n["name"] == "cli-lab"] == [("cli-lab", "Ready", [])]
    assert "cli-lab" in cli("ls", "notebooks").stdout
    opener = subprocess.Popen([sys.executable, "-m", "kflow", "notebook", "open", "cli-lab", "--no-browser"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        url = opener.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/notebook/default/cli-lab/"), url
        assert "version" in retry_get_json(url + "api")
    finally:
        opener.send_signal(signal.SIGINT)
        assert opener.wait(timeout=20) == 0, opener.stderr.read()
    cli("notebook", "stop", "cli-lab")
    assert json.loads(cli("notebook", "list", "--json").stdout)["items"][0]["state"] == "Stopped"
    cli("notebook", "start", "cli-lab", timeout=180)
    cli("notebook", "delete", "cli-lab")


@pytest.mark.parametrize("args,says", [
    (["Bad_Name"], "not a valid Kubernetes name"),
    (["nb-x", "--image", "my/own:1"], "--custom-image"),
    (["nb-x", "--cpu", "lots"], "cpu"),
    (["nb-x", "--gpu-vendor", "acme.com/gpu"], "not a GPU resource"),
    (["nb-x", "--data", "no-such-pvc"], "no PVC named \"no-such-pvc\""),
    (["nb-x", "--workspace", "no-such-pvc"], "no PVC named \"no-such-pvc\""),
])
def test_bad_notebook_requests_are_refused_before_anything_is_made(cluster, cli, kube, args, says):
    core, custom = kube
    result = cli("notebook", "create", *args, check=False)
    assert result.returncode == 2 and says in result.stderr and "error[" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not custom.list_namespaced_custom_object("kubeflow.org", "v1", "default", "notebooks")["items"]
    assert "nb-x-workspace" not in [p.metadata.name for p in core.list_namespaced_persistent_volume_claim("default").items]


def test_a_server_that_cannot_start_says_why(cluster, kube):
    ns = kflow.namespace()
    with pytest.raises(kflow.KflowError) as err:
        ns.create_notebook("greedy", gpus=8, workspace=False, timeout=60)
    assert "Unschedulable" in str(err.value) and "fewer GPUs" in err.value.fix
    assert ns.notebook("greedy")["state"] == "Error"
    ns.delete_notebook("greedy")


def test_without_the_notebook_controller_every_surface_says_not_installed(tmp_path, kflow_home, monkeypatch):
    bare = TestCluster(tmp_path / "bare", ["--without", "notebooks"])
    try:
        monkeypatch.setenv("KUBECONFIG", bare.kubeconfig)
        with pytest.raises(kflow.NotInstalledError) as err:
            kflow.namespace().notebooks()
        assert "not installed in this deployment" in str(err.value) and err.value.event_id
        result = subprocess.run([sys.executable, "-m", "kflow", "notebook", "list"], capture_output=True, text=True,
                                env=dict(os.environ), timeout=60)
        assert result.returncode == 1 and "Notebook controller is not installed" in result.stderr
        assert "404" not in result.stderr and "Traceback" not in result.stderr
        # The rest of the namespace still lists.
        assert kflow.namespace().training_jobs().next is None
    finally:
        bare.stop()
