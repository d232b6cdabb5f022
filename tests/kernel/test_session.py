"""Session mode ("Kubeflow session (kflow)"): cells run in one long-lived ipykernel that kflow's
kernel proxies to — on the local backend (a process group under kflow's supervisor) and on the
test cluster (a session pod reached through the API server's port-forward). Driven with
jupyter_client and nbclient; the protocol suite (jupyter_kernel_test) is in
test_session_protocol.py."""

from __future__ import annotations

import base64
import contextlib
import os
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("jupyter_client")

from jupyter_client.manager import KernelManager

from kflow_testsupport import TestCluster

from .kernel_harness import KFLOW_HOME, run_cell, stream_text, wheel_kernel_available

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not wheel_kernel_available(), reason="the kflow wheel is not installed"),
]

# An image the test cluster runs with this environment's Python, which has ipykernel.
IMAGE = "kflow-session-test:1"
# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def session_cluster(tmp_path_factory):
    c = TestCluster(tmp_path_factory.mktemp("session-cluster") / "cluster", ["--image-map", f"kflow-session-test=python:{sys.executable}"])
    yield c
    c.stop()


def cluster_env(cluster: TestCluster) -> dict:
    return {"KUBECONFIG": cluster.kubeconfig, "KFLOW_BACKEND": "cluster", "KFLOW_DEFAULT_IMAGE": IMAGE}


@pytest.fixture(params=["local", "cluster"])
def where(request) -> tuple[str, dict, TestCluster | None]:
    if request.param == "local":
        return "local", {}, None
    cluster = request.getfixturevalue("session_cluster")
    return "cluster", cluster_env(cluster), cluster


@pytest.fixture
def project(tmp_path: Path) -> Path:
    d = tmp_path / "notebooks"
    d.mkdir()
    (d / "mymod.py").write_text("VALUE = 41\n")
    return d


@contextlib.contextmanager
def session_kernel(project: Path, env: dict):
    """kflow's session kernel, started as Jupyter starts it, shut down politely afterwards
    (so the session is stopped through the protocol, as a frontend would)."""
    km = KernelManager(kernel_name="kflow-session")
    km.start_kernel(cwd=str(project), env={**os.environ, **env})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def leftovers(where: str, cluster: TestCluster | None) -> list[str]:
    """What of any session is left: run folders here, jobs and pods on the cluster."""
    if cluster is None:
        runs = KFLOW_HOME / "state" / "runs"
        return [p.name for p in runs.glob("kflow-session-*")] if runs.exists() else []
    from kubernetes import client, config

    api = config.new_client_from_config(cluster.kubeconfig)
    jobs = client.CustomObjectsApi(api).list_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs")["items"]
    pods = client.CoreV1Api(api).list_namespaced_pod("default").items
    return [j["metadata"]["name"] for j in jobs if j["metadata"]["name"].startswith("kflow-session-")] + [
        p.metadata.name for p in pods if p.metadata.name.startswith("kflow-session-")
    ]


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()


def run_ok(kc, code: str, timeout: float = 60, **kw):
    """Run a cell that must succeed; its iopub messages."""
    reply, msgs = run_cell(kc, code, timeout=timeout, **kw)
    assert reply["content"]["status"] == "ok", error_of(reply)
    return msgs


def error_of(reply) -> str:
    c = reply["content"]
    return f"{c.get('ename')}: {c.get('evalue')}"


def test_state_modules_rich_output_and_input_live_in_one_python(where, project):
    name, env, cluster = where
    with session_kernel(project, env) as (km, kc):
        run_ok(kc, "import mymod\nx = mymod.VALUE + 1", timeout=120)
        reply, msgs = run_cell(kc, "print(x, mymod.VALUE)")
        assert stream_text(msgs) == "42 41\n"

        _, msgs = run_cell(kc, "from IPython.display import HTML, Image, display\ndisplay(HTML('<b>bold</b>'))\n"
                               f"display(Image(data={PNG!r}))")
        shown = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
        assert shown[0]["text/html"] == "<b>bold</b>"
        assert base64.b64decode(shown[1]["image/png"]) == PNG

        run_ok(kc, "answer = input('who? ')", allow_stdin=True, stdin_hook=lambda m: kc.input("ada"))
        _, msgs = run_cell(kc, "print(answer)")
        assert stream_text(msgs) == "ada\n"

        # The project travels again before a cell when it changed: an edit and a new file.
        (project / "mymod.py").write_text("VALUE = 7\n")
        (project / "extra.py").write_text("NAME = 'new file'\n")
        _, msgs = run_cell(kc, "import importlib, extra\nimportlib.reload(mymod)\nprint(mymod.VALUE, extra.NAME, x)")
        assert stream_text(msgs) == "7 new file 42\n"
        (project / "extra.py").unlink()
        _, msgs = run_cell(kc, "import os\nprint(os.path.exists('extra.py'), os.path.exists('mymod.py'))")
        assert stream_text(msgs) == "False True\n"
    assert wait_for(lambda: not leftovers(name, cluster)), leftovers(name, cluster)


def test_interrupt_keeps_state_and_restart_clears_it(where, project):
    name, env, cluster = where
    with session_kernel(project, env) as (km, kc):
        run_ok(kc, "kept = 'still here'", timeout=120)
        threading.Timer(1.5, km.interrupt_kernel).start()
        started = time.monotonic()
        reply, _ = run_cell(kc, "import time\ntime.sleep(600)", timeout=60)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - started < 30
        _, msgs = run_cell(kc, "print(kept)")
        assert stream_text(msgs) == "still here\n"

        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        reply, _ = run_cell(kc, "print(kept)", timeout=120)
        assert reply["content"]["ename"] == "NameError"
        assert len(leftovers(name, cluster)) >= 1  # one session, kept across the restart
    assert wait_for(lambda: not leftovers(name, cluster)), leftovers(name, cluster)


def test_an_idle_session_is_culled_and_the_next_cell_gets_a_fresh_one(where, project):
    name, env, cluster = where
    with session_kernel(project, env) as (km, kc):
        reply, msgs = run_cell(kc, "%kflow session idle=3s")
        assert "idle timeout: 3 s" in stream_text(msgs)
        run_ok(kc, "y = 1", timeout=120)
        assert leftovers(name, cluster)
        assert wait_for(lambda: not leftovers(name, cluster), timeout=40), leftovers(name, cluster)
        reply, msgs = run_cell(kc, "print(y)", timeout=120)
        assert reply["content"]["ename"] == "NameError"
        assert "idle culling" in stream_text(msgs, "stderr")


def test_a_cut_forward_stream_reconnects_without_losing_or_repeating_output(session_cluster, project):
    try:
        with session_kernel(project, cluster_env(session_cluster)) as (km, kc):
            run_ok(kc, "n = 60", timeout=120)

            def cut_then_heal():
                time.sleep(1.0)
                session_cluster.admin("PUT", "/admin/faults", {"portforwardDropAfterBytes": 400})
                time.sleep(1.5)
                session_cluster.admin("PUT", "/admin/faults", {})

            threading.Thread(target=cut_then_heal).start()
            msgs = run_ok(kc, "import time\nfor i in range(n):\n    print(f'line {i}', flush=True)\n    time.sleep(0.05)", timeout=120)
            assert stream_text(msgs) == "".join(f"line {i}\n" for i in range(60))
    finally:
        session_cluster.admin("PUT", "/admin/faults", {})


def test_a_cell_past_the_memory_limit_reports_oomkilled(session_cluster, project):
    with session_kernel(project, cluster_env(session_cluster)) as (km, kc):
        run_ok(kc, "%kflow memory=400Mi")
        run_ok(kc, "x = 1", timeout=120)
        reply, _ = run_cell(kc, "hog = bytearray(900 * 1024 * 1024)\nhog[::4096] = b'x' * len(hog[::4096])", timeout=120)
        assert reply["content"]["ename"] == "SessionEnded", error_of(reply)
        assert "OOMKilled" in reply["content"]["evalue"]
        # The next cell gets a fresh session.
        reply, _ = run_cell(kc, "print(x)", timeout=120)
        assert reply["content"]["ename"] == "NameError"


def test_a_notebook_runs_in_one_session_with_nbclient(where, project):
    import nbformat
    from nbclient import NotebookClient

    name, env, cluster = where
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in [
        "import mymod\ntotal = mymod.VALUE",
        "total += 1\ntotal",
        "%%kflow_job\nprint('a training job, not the session')",
        "print(total)",
    ]]
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, kernel_name="kflow-session", timeout=180, resources={"metadata": {"path": str(project)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == "42"
    assert "a training job, not the session" in "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert nb.cells[3].outputs[0]["text"] == "42\n"
    assert wait_for(lambda: not leftovers(name, cluster)), leftovers(name, cluster)


def test_comms_reach_the_remote_kernel_and_come_back(where, project):
    """What ipywidgets rides on: a comm the frontend opens reaches a target registered in the
    remote kernel, and the remote kernel's comm messages come back on iopub."""
    name, env, cluster = where
    with session_kernel(project, env) as (km, kc):
        reply, _ = run_cell(kc, (
            "def echo(comm, open_msg):\n"
            "    @comm.on_msg\n"
            "    def _(msg):\n"
            "        comm.send({'echo': msg['content']['data']['value']})\n"
            "get_ipython().kernel.comm_manager.register_target('kflow-echo', echo)"
        ), timeout=120)
        assert reply["content"]["status"] == "ok", error_of(reply)
        kc.session.send(kc.shell_channel.socket, "comm_open", {"comm_id": "c1", "target_name": "kflow-echo", "data": {}})
        kc.session.send(kc.shell_channel.socket, "comm_msg", {"comm_id": "c1", "data": {"value": 42}})
        deadline = time.monotonic() + 30
        echoed = None
        while time.monotonic() < deadline and echoed is None:
            msg = kc.get_iopub_msg(timeout=30)
            if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == "c1":
                echoed = msg["content"]["data"]
        assert echoed == {"echo": 42}
        kc.comm_info()
        assert "c1" in kc.get_shell_msg(timeout=30)["content"]["comms"]


def test_a_session_that_cannot_be_scheduled_ends_the_cell_and_leaves_nothing(session_cluster, project):
    with session_kernel(project, cluster_env(session_cluster)) as (km, kc):
        run_ok(kc, "%kflow gpu=1")
        reply, _ = run_cell(kc, "x = 1", timeout=120)
        assert reply["content"]["ename"] == "SessionError", error_of(reply)
        assert "Unschedulable" in reply["content"]["evalue"]
        assert wait_for(lambda: not leftovers("cluster", session_cluster)), leftovers("cluster", session_cluster)
