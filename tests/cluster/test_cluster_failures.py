"""Why a cluster job does not run, as the user reads it from `status()`, `logs()` and the CLI:
a replica over its memory limit (OOMKilled), a GPU the cluster does not have (Unschedulable,
with the scheduler's words), and the same job running once a node has the GPU."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import kflow
from kflow_testsupport import TestCluster

HOG = """\
import time
print('allocating', flush=True)
hog = []
for _ in range(64):
    hog.append(bytearray(16 << 20))  # touched: bytearray zero-fills, so the pages are resident
    time.sleep(0.05)
print('survived', flush=True)
"""


def wait_for(job, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.status
        if predicate(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout} s: {job.status}")


def test_a_replica_over_its_memory_limit_is_reported_oomkilled(cluster, project):
    script = project("hog.py", HOG)
    job = kflow.run(str(script), name="pt-oom", memory="256Mi", backend="cluster")
    status = job.wait(timeout=90)
    assert (status.phase, status.reason) == ("Failed", "OOMKilled"), status
    assert "master-0 was killed for using more memory than its limit" in status.message
    assert "raise memory=" in status.message
    lines = list(job.logs())
    assert "allocating" in lines and "survived" not in lines
    cli = subprocess.run([sys.executable, "-m", "kflow", "status", "pt-oom"], capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0 and "reason:   OOMKilled" in cli.stdout, cli.stdout + cli.stderr


def test_a_gpu_the_cluster_lacks_is_unschedulable_with_the_schedulers_reason(cluster, project):
    script = project("gpu.py", "print('got a gpu')\n")
    job = kflow.run(str(script), name="pt-gpu", gpu=1, backend="cluster")
    status = wait_for(job, lambda s: s.reason == "Unschedulable")
    assert status.phase == "Pending"
    assert "Insufficient nvidia.com/gpu" in status.message, status.message
    # Following the logs says what the replica waits for instead of hanging silently.
    for line in job.logs(follow=True):
        assert line.startswith("kflow: waiting for master-0: "), line
        if "Unschedulable" in line:
            assert "Insufficient nvidia.com/gpu" in line
            break
    events = job.describe()["events"]
    assert any(e["reason"] == "FailedScheduling" and "Insufficient nvidia.com/gpu" in e["message"] for e in events), events
    cancelled = job.cancel()
    assert (cancelled.phase, cancelled.reason) == ("Failed", "Cancelled")


@pytest.fixture
def gpu_cluster(tmp_path, wheels, kflow_home, monkeypatch):
    c = TestCluster(tmp_path / "gpu-cluster", ["--wheel-dir", str(wheels), "--node-gpus", "1"])
    monkeypatch.setenv("KUBECONFIG", c.kubeconfig)
    yield c
    c.stop()


def test_the_same_job_runs_where_a_node_has_the_gpu(gpu_cluster, project):
    script = project("gpu.py", "print('got a gpu')\n")
    job = kflow.run(str(script), name="pt-gpu", gpu=1, backend="cluster")
    assert job.wait(timeout=60).phase == "Succeeded"
    assert list(job.logs()) == ["got a gpu"]
