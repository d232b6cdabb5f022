"""The cluster backend end to end against kflow-testcluster: a 3-file project with a pip
dependency from a local wheel runs as a 2-worker PyTorchJob through the Python API and the CLI;
failures and a missing operator say why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import kflow

TRAIN = """\
import os
import kflowdemo
from lib.helper import greet
print(greet(), "rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"], "answer", kflowdemo.ANSWER)
for i in range(30):
    print("step", i)
"""


@pytest.fixture
def three_files(project):
    project("lib/__init__.py", "")
    project("lib/helper.py", "def greet():\n    return 'hello from helper'\n")
    return project("train.py", TRAIN)


def pip_env(wheels):
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}


def test_python_api_runs_a_two_worker_pytorchjob(cluster, wheels, three_files):
    start = time.monotonic()
    job = kflow.run(str(three_files), name="pt-api", workers=2, pip="kflowdemo", env=pip_env(wheels), backend="cluster")
    lines = list(job.logs(follow=True))
    status = job.wait(timeout=120)
    print(f"submit + run + logs: {time.monotonic() - start:.2f} s")
    assert status.phase == "Succeeded", status
    for replica, rank in [("master-0", "0"), ("worker-0", "1")]:
        mine = [l for l in lines if l.startswith(f"[{replica}] ")]
        assert f"[{replica}] hello from helper rank {rank} of 2 answer 42" in mine, lines
        assert mine[-30:] == [f"[{replica}] step {i}" for i in range(30)]
    assert job.spec["backend"] == "cluster" and job.spec["namespace"] == "default"
    [summary] = kflow.jobs()
    assert (summary.name, summary.backend, summary.phase) == ("pt-api", "cluster", "Succeeded")
    # Logs outlive the pods: the local copy serves them once the job is gone from the cluster.
    cluster.admin("PUT", "/admin/faults", {"rules": [{"pathContains": "/log", "errorRate": 1.0, "errorCode": 404}]})
    again = list(kflow.get("pt-api").logs())
    assert "[worker-0] step 29" in again


def test_log_streams_cut_every_few_lines_lose_and_repeat_nothing(cluster, wheels, project):
    script = project("many.py", "for i in range(200):\n    print('n', i, flush=True)\n")
    cluster.admin("PUT", "/admin/faults", {"logDropAfter": 25})
    job = kflow.run(str(script), name="pt-cut", workers=2, backend="cluster")
    lines = list(job.logs(follow=True))
    assert job.wait(timeout=120).phase == "Succeeded"
    for replica in ["master-0", "worker-0"]:
        # kflow's own "waiting for …" lines are not the job's output.
        mine = [l for l in lines if l.startswith(f"[{replica}]") and not l.startswith(f"[{replica}] kflow: ")]
        assert mine == [f"[{replica}] n {i}" for i in range(200)]


def test_failing_script_reports_failed_with_exit_code(cluster, project):
    script = project("bad.py", "print('before the crash')\nraise SystemExit(5)\n")
    job = kflow.run(str(script), name="pt-bad", backend="cluster")
    status = job.wait(timeout=60)
    assert status.phase == "Failed"
    assert status.reason == "Error"
    assert "master-0 exited with code 5" in status.message
    assert list(job.logs()) == ["before the crash"]


def test_cli_run_logs_status_restart_delete(cluster, wheels, three_files):
    def cli(*args, timeout=180):
        return subprocess.run([sys.executable, "-m", "kflow", *args], capture_output=True, text=True, timeout=timeout)

    env_args = [a for k, v in pip_env(wheels).items() for a in ("--env", f"{k}={v}")]
    result = cli("run", "--cluster", "--name", "pt-cli", "--workers", "2", "--pip", "kflowdemo", *env_args, str(three_files))
    assert result.returncode == 0, result.stderr
    assert "[master-0] hello from helper rank 0 of 2 answer 42" in result.stdout
    assert "[worker-0] step 29" in result.stdout
    status = json.loads(cli("status", "pt-cli", "--json").stdout)
    assert status["phase"] == "Succeeded"
    jobs = json.loads(cli("jobs", "--json").stdout)
    assert [(j["name"], j["backend"]) for j in jobs] == [("pt-cli", "cluster")]
    logs = cli("logs", "pt-cli").stdout
    assert "[worker-0] step 29" in logs
    restarted = cli("restart", "pt-cli")
    assert restarted.returncode == 0, restarted.stderr
    assert "attempt 2" in restarted.stderr
    assert json.loads(cli("status", "pt-cli", "--json").stdout)["phase"] == "Succeeded"
    assert cli("delete", "pt-cli").returncode == 0
    assert json.loads(cli("jobs", "--json").stdout) == []

    bad = three_files.parent / "bad.py"
    bad.write_text("raise SystemExit(4)\n")
    result = cli("run", "--cluster", "--name", "pt-cli-bad", str(bad))
    assert result.returncode == 1
    assert "Failed" in result.stderr and "exited with code 4" in result.stderr


def test_backend_from_environment_and_missing_operator(cluster, project, monkeypatch):
    script = project("ok.py", "print('ok')\n")
    cluster.admin("PUT", "/admin/faults", {"rules": [{"pathContains": "/apis/kubeflow.org", "errorRate": 1.0, "errorCode": 404}]})
    monkeypatch.setenv("KFLOW_BACKEND", "cluster")
    with pytest.raises(kflow.KflowError) as err:
        kflow.run(str(script), name="pt-none")
    assert "the Kubeflow Training Operator is not installed here (kubeflow.org/v1 PyTorchJob is not served)" in str(err.value)
    # Explicit beats the environment.
    job = kflow.run(str(script), name="pt-local", backend="local", wait=True)
    assert job.status.phase == "Succeeded"


def test_restart_from_another_machine(cluster, project, tmp_path, monkeypatch):
    script = project("ok.py", "import os\nprint('run', os.environ['RANK'])\n")
    job = kflow.run(str(script), name="pt-roam", backend="cluster")
    assert job.wait(timeout=60).phase == "Succeeded"
    # Another machine: empty kflow state, same cluster. The record lives on the job.
    monkeypatch.setenv("KFLOW_STATE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("KFLOW_BACKEND", "cluster")
    [listed] = kflow.jobs()
    assert (listed.name, listed.backend, listed.phase, listed.script) == ("pt-roam", "cluster", "Succeeded", "ok.py")
    there = kflow.get("pt-roam")
    assert there.spec["run_id"] == job.spec["run_id"] and there.status.phase == "Succeeded"
    again = there.restart()
    assert again.wait(timeout=60).phase == "Succeeded"
    assert again.spec["run_id"] != job.spec["run_id"]
    assert list(again.logs())[-1] == "run 0"
