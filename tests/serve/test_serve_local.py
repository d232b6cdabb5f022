"""`kflow serve --stdio` on the local backend, over real pipes: the protocol's framing and
errors, a run followed through `logs/lines` to `logs/end`, and the job methods the panel uses."""

from __future__ import annotations

import subprocess
import sys

import pytest

from serve_client import RpcError, ServeClient


@pytest.fixture
def served(kflow_home, tmp_path):
    clients = []

    def start(settings=None, **kw):
        c = ServeClient(**kw)
        result = c.request("initialize", {"settings": settings or {}, "workspaceFolder": str(tmp_path),
                                          "clientName": "pytest"})
        clients.append(c)
        return c, result

    yield start
    for c in clients:
        c.close()


def test_initialize_answers_with_the_protocol_and_who_is_signed_in(served):
    c, result = served()
    assert result["protocol"] == 1 and result["version"]
    assert result["identity"]["signed_in"] is False
    assert c.request("whoami")["signed_in"] is False
    assert c.close() == 0


def test_requests_before_initialize_unknown_methods_and_bad_params_are_refused(kflow_home):
    c = ServeClient()
    try:
        with pytest.raises(RpcError) as e:
            c.request("whoami")
        assert e.value.code == -32002 and "initialize" in str(e.value)
        c.request("initialize", {"settings": {}})
        with pytest.raises(RpcError) as e:
            c.request("job/frobnicate")
        assert e.value.code == -32601 and e.value.data["kind"] == "method-not-found"
        with pytest.raises(RpcError) as e:
            c.request("run", {"options": {"script": "train.py", "gpus": 1}})
        assert e.value.code == -32602 and '"gpus"' in str(e.value) and "gpu" in str(e.value)
        with pytest.raises(RpcError) as e:
            c.request("job/status", {})
        assert e.value.code == -32602 and "name" in str(e.value)
        # A body that is not JSON gets a parse error, and the connection goes on.
        c.proc.stdin.write(b"Content-Length: 3\r\n\r\nnop")
        c.proc.stdin.flush()
        assert c.request("whoami")["signed_in"] is False
    finally:
        c.close()


def test_a_frame_announcing_a_huge_message_ends_the_server_cleanly_without_allocating(kflow_home):
    proc = subprocess.Popen([sys.executable, "-m", "kflow", "serve", "--stdio"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(b"Content-Length: %d\r\n\r\n{" % (1 << 62), timeout=30)
    assert proc.returncode == 2, err
    assert b"over the 64 MiB limit" in err and b"memory allocation" not in err and b"panicked" not in err


def test_kflow_errors_carry_problem_fix_and_an_event_id_that_is_in_the_log(served, kflow_home, project):
    c, _ = served()
    script = project("train.py", "print('hi')\n")
    with pytest.raises(RpcError) as e:
        c.request("run", {"options": {"script": str(script), "cpu": "-1"}})
    data = e.value.data
    assert e.value.code == 1001 and data["kind"] == "validation"
    assert "cpu" in data["problem"].lower() and data["fix"]
    assert data["message"] == str(e.value)
    log = (kflow_home / "state" / "kflow.log").read_text()
    assert data["eventId"] in log
    with pytest.raises(RpcError) as e:
        c.request("job/status", {"name": "no-such-job"})
    assert e.value.code == 1004 and e.value.data["kind"] == "not-found"
    # Nothing was created by the refused run.
    assert not (kflow_home / "state" / "runs").exists() or not any((kflow_home / "state" / "runs").iterdir())


def test_editor_settings_apply_without_a_restart_and_bad_ones_name_the_setting(served, project):
    script = project("train.py", "print('hi')\n")
    c, _ = served({"defaultImage": "example.com/first:1", "kflow.path": "/ignored"})
    assert c.request("resolve", {"options": {"script": str(script)}})["image"] == "example.com/first:1"
    assert c.request("settings/update", {"settings": {"defaultImage": "example.com/second:2"}})["applied"]
    assert c.request("resolve", {"options": {"script": str(script)}})["image"] == "example.com/second:2"
    with pytest.raises(RpcError) as e:
        c.request("settings/update", {"settings": {"autoPVCforPip": "yes"}})
    assert e.value.code == 1001 and "kflow.autoPVCforPip" in str(e.value)
    with pytest.raises(RpcError) as e:
        c.request("settings/update", {"settings": {"defaultImage": 5}})
    assert "kflow.defaultImage" in str(e.value) and "string" in str(e.value)
    # The refused update left the last good settings in place.
    assert c.request("resolve", {"options": {"script": str(script)}})["image"] == "example.com/second:2"


def test_run_follow_logs_and_the_job_methods(served, project):
    c, _ = served()
    script = project("train.py", """
        import sys, time
        for i in range(3):
            print(f"step {i}", flush=True)
            time.sleep(0.1)
        print("RuntimeError: CUDA out of memory (a line the panel highlights)", file=sys.stderr)
    """)
    preview = c.request("preview", {"options": {"script": str(script), "workers": 2}})
    assert "kind: PyTorchJob" in preview["yaml"] and "train.py" in preview["summary"]
    run = c.request("run", {"options": {"script": str(script), "name": "served-run", "workers": 2}})
    assert run["name"] == "served-run" and run["kind"] == "PyTorchJob" and run["backend"] == "local"
    assert run["replicas"] == ["master-0", "worker-0"]
    follow = c.request("logs/follow", {"name": "served-run"})
    lines = []
    while True:
        n = c.notifications.get(timeout=60)
        if n["method"] == "logs/lines" and n["params"]["followId"] == follow["followId"]:
            lines += n["params"]["lines"]
        elif n["method"] == "logs/end" and n["params"]["followId"] == follow["followId"]:
            end = n["params"]
            break
    assert end["status"]["phase"] == "Succeeded"
    texts = [(l["replica"], l["text"]) for l in lines]
    for replica in ("master-0", "worker-0"):
        assert [t for r, t in texts if r == replica and t.startswith("step")] == ["step 0", "step 1", "step 2"]
    oom = [l for l in lines if "CUDA out of memory" in l["text"]]
    assert len(oom) == 2 and all(l["severity"] == "error" for l in oom)
    assert all(l["severity"] == "normal" for l in lines if l["text"].startswith("step"))
    status = c.request("job/status", {"name": "served-run"})
    assert status["phase"] == "Succeeded" and status["kind"] == "PyTorchJob" and len(status["replicas"]) == 2
    described = c.request("job/describe", {"name": "served-run"})
    assert described["status"]["phase"] == "Succeeded" and "master-0" in described["logs"]
    assert "PyTorchJob" in c.request("job/yaml", {"name": "served-run"})["yaml"]
    restarted = c.request("job/restart", {"name": "served-run"})
    assert restarted == {"name": "served-run", "attempt": 2}
    again = c.request("logs/follow", {"name": "served-run"})
    c.next_notification("logs/end", where=lambda p: p["followId"] == again["followId"])
    c.request("job/delete", {"name": "served-run"})
    with pytest.raises(RpcError) as e:
        c.request("job/status", {"name": "served-run"})
    assert e.value.data["kind"] == "not-found"


def test_requests_are_answered_concurrently(served, project):
    """A follow that waits for a long job never holds up a quick request behind it."""
    c, _ = served()
    script = project("slow.py", "import time\nprint('start', flush=True)\ntime.sleep(30)\n")
    c.request("run", {"options": {"script": str(script), "name": "slow"}})
    slow = c.send("job/describe", {"name": "slow"})
    quick = c.send("whoami")
    assert c.wait(quick, timeout=10)["signed_in"] is False
    c.wait(slow)
    follow = c.request("logs/follow", {"name": "slow"})
    c.next_notification("logs/lines", where=lambda p: p["followId"] == follow["followId"])
    assert c.request("logs/unfollow", {"followId": follow["followId"]}) == {"stopped": True}
    assert c.request("job/cancel", {"name": "slow"})["phase"] == "Failed"


def test_templates_come_with_the_options_they_set(served, tmp_path):
    templates = tmp_path / ".kflow" / "templates"
    templates.mkdir(parents=True)
    (templates / "gpu-big.json").write_text('{"gpu": 2, "memory": "32Gi", "pip": ["numpy"]}')
    c, _ = served()
    got = c.request("templates")
    assert [(t["name"], t["scope"]) for t in got] == [("gpu-big", "project")]
    assert got[0]["options"]["gpu"] == 2 and got[0]["options"]["memory"] == "32Gi"
    assert got[0]["options"]["pip"] == ["numpy"] and got[0]["options"]["image"] is None
    images = c.request("images", {"kind": "TFJob"})
    assert images["default"].startswith("tensorflow/") and images["default"] in images["options"]
