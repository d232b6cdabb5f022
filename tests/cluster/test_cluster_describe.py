"""`kflow describe` / `Job.describe()`: spec, conditions, pods, events and the last log lines,
on kflow-testcluster and on the local backend."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import kflow


def cli(*args):
    return subprocess.run([sys.executable, "-m", "kflow", *args], capture_output=True, text=True, timeout=60)


def test_describe_a_finished_two_replica_job(cluster, project):
    script = project("count.py", "for i in range(50):\n    print('line', i)\n")
    job = kflow.run(str(script), name="pt-desc", workers=2, backend="cluster")
    assert job.wait(timeout=120).phase == "Succeeded"
    # The job succeeds when its master does (the operator's rule); a worker may still be
    # finishing for a moment, and describe says so. Wait for both to have ended.
    deadline = time.monotonic() + 30
    while True:
        d = job.describe()
        if all(p["phase"] == "Succeeded" for p in d["pods"]):
            break
        assert time.monotonic() < deadline, d["pods"]
        time.sleep(0.2)
    assert (d["name"], d["kind"], d["backend"], d["namespace"]) == ("pt-desc", "PyTorchJob", "cluster", "default")
    assert d["spec"]["script"] == "count.py" and d["status"]["phase"] == "Succeeded"
    assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in d["conditions"]), d["conditions"]
    assert [p["replica"] for p in d["pods"]] == ["master-0", "worker-0"]
    for p in d["pods"]:
        assert (p["phase"], p["state"], p["exit_code"], p["restarts"]) == ("Succeeded", "terminated", 0, 0), p
        assert p["node"]
    reasons = {e["reason"] for e in d["events"]}
    assert {"SuccessfulCreatePod", "Scheduled", "PyTorchJobSucceeded"} <= reasons, reasons
    assert any(e["object"] == "PyTorchJob/pt-desc" for e in d["events"])
    assert d["logs"] == {r: [f"line {i}" for i in range(30, 50)] for r in ["master-0", "worker-0"]}

    result = cli("describe", "pt-desc")
    assert result.returncode == 0, result.stderr
    for text in ["phase:     Succeeded", "Conditions:", "Pods:", "pt-desc-worker-0", "Events:", "SuccessfulCreatePod",
                 "Last log lines of worker-0:", "  line 49"]:
        assert text in result.stdout, (text, result.stdout)
    assert json.loads(cli("describe", "pt-desc", "--json").stdout)["logs"] == d["logs"]


def test_describe_a_bad_image_shows_the_pull_failure_from_pods_and_events(cluster, project):
    script = project("ok.py", "print('never runs')\n")
    job = kflow.run(str(script), name="pt-img", image="registry.invalid/nope:1", backend="cluster")
    deadline = time.monotonic() + 60
    while True:
        d = job.describe()
        if any(p["reason"] == "ImagePullBackOff" for p in d["pods"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    [pod] = d["pods"]
    assert (pod["phase"], pod["state"], pod["reason"]) == ("Pending", "waiting", "ImagePullBackOff"), pod
    assert "registry.invalid/nope:1" in pod["message"]
    failed = [e for e in d["events"] if e["type"] == "Warning" and e["object"] == f"Pod/{pod['name']}"]
    assert any(e["reason"] == "Failed" and "registry.invalid/nope:1" in e["message"] for e in failed), d["events"]
    assert d["logs"] == {"master-0": []}
    human = cli("describe", "pt-img").stdout
    assert "ImagePullBackOff" in human and "Failed to pull image" in human and "(none yet)" in human
    job.delete()


def test_describe_a_local_job(kflow_home, project):
    script = project("loc.py", "for i in range(25):\n    print('n', i)\n")
    job = kflow.run(str(script), name="loc-desc", backend="local", wait=True)
    d = job.describe()
    assert (d["backend"], d["status"]["phase"], d["spec"]["script"]) == ("local", "Succeeded", "loc.py")
    assert (d["conditions"], d["pods"], d["events"]) == ([], [], [])
    assert d["logs"] == {"master-0": [f"n {i}" for i in range(5, 25)]}
    result = cli("describe", "loc-desc")
    assert result.returncode == 0 and "Last log lines of master-0:" in result.stdout and "  n 24" in result.stdout
