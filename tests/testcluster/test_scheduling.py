"""The node and the scheduler: `kubectl get/describe nodes`, a GPU pod that stays Pending
(Unschedulable, FailedScheduling from default-scheduler) on a GPU-less node, runs when the node
has a GPU, and is scheduled once capacity frees."""

import json
import time

import pytest

from conftest import Cluster

GPU_POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: python:3.12
    command: [python, -c, "{command}"]
    resources:
      limits: {{nvidia.com/gpu: 1}}
"""

GPU_PYTORCHJOB = """
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {{name: {name}}}
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: OnFailure
      template:
        spec:
          containers:
          - name: pytorch
            image: pytorch/pytorch:2.5.1
            command: [python, -c, "print('trained')"]
            resources:
              requests: {{cpu: "2", memory: 8Gi}}
              limits: {{cpu: "2", memory: 8Gi, nvidia.com/gpu: 1}}
"""

MESSAGE = ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are "
           "available: 1 No preemption victims found for incoming pod.")


def until(fn, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def pod(tc, name):
    return json.loads(tc.kubectl("get", "pod", name, "-o", "json").stdout)


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("gpu") / "state", extra_args=["--node-gpus", "1"])
    yield cluster
    cluster.stop()


def test_nodes_listed_and_described(testcluster):
    out = testcluster.kubectl("get", "nodes").stdout
    assert "kflow-node" in out and "Ready" in out and "v1.33.0" in out
    node = json.loads(testcluster.kubectl("get", "node", "kflow-node", "-o", "json").stdout)
    alloc = node["status"]["allocatable"]
    assert alloc["cpu"] == "64" and alloc["memory"] == "256Gi" and alloc["nvidia.com/gpu"] == "0"
    described = testcluster.kubectl("describe", "node", "kflow-node").stdout
    assert "Allocatable:" in described and "nvidia.com/gpu" in described


def test_gpu_pod_unschedulable_without_gpus(testcluster, unique):
    testcluster.kubectl("apply", "-f", "-", input=GPU_POD.format(name=unique, command="print(1)"))
    p = until(lambda: (lambda p: p if p["status"].get("conditions") else None)(pod(testcluster, unique)),
              what="PodScheduled condition")
    assert p["status"]["phase"] == "Pending"
    assert "nodeName" not in p["spec"]
    assert p["status"]["conditions"] == [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": MESSAGE,
        "lastProbeTime": None, "lastTransitionTime": p["status"]["conditions"][0]["lastTransitionTime"]}]
    assert "Pending" in testcluster.kubectl("get", "pod", unique).stdout
    events = json.loads(testcluster.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={unique},reason=FailedScheduling",
        "-o", "json").stdout)["items"]
    assert len(events) == 1
    assert events[0]["type"] == "Warning" and events[0]["message"] == MESSAGE
    assert events[0]["source"]["component"] == "default-scheduler"
    assert "FailedScheduling" in testcluster.kubectl("describe", "pod", unique).stdout
    testcluster.kubectl("delete", "pod", unique, "--wait=false")


def test_gpu_pytorchjob_pending_then_runs_with_gpu(testcluster, gpu_cluster, unique):
    testcluster.kubectl("apply", "-f", "-", input=GPU_PYTORCHJOB.format(name=unique))
    master = f"{unique}-master-0"
    until(lambda: testcluster.kubectl("get", "events", "--field-selector",
                                      f"involvedObject.name={master},reason=FailedScheduling",
                                      "-o", "name").stdout.strip(), what="FailedScheduling")
    assert pod(testcluster, master)["status"]["phase"] == "Pending"
    testcluster.kubectl("delete", "pytorchjob", unique)

    gpu_cluster.kubectl("apply", "-f", "-", input=GPU_PYTORCHJOB.format(name=unique))
    gpu_cluster.kubectl("wait", f"pytorchjob/{unique}", "--for=condition=Succeeded", "--timeout=60s", timeout=90)
    assert gpu_cluster.kubectl("logs", master).stdout == "trained\n"
    assert pod(gpu_cluster, master)["spec"]["nodeName"] == "kflow-node"


def test_second_gpu_pod_waits_for_the_first(gpu_cluster, unique):
    first, second = f"{unique}-a", f"{unique}-b"
    hold = "import time; time.sleep(3); print('done')"
    gpu_cluster.kubectl("apply", "-f", "-", input=GPU_POD.format(name=first, command=hold))
    until(lambda: pod(gpu_cluster, first)["status"]["phase"] == "Running", what="first pod running")
    gpu_cluster.kubectl("apply", "-f", "-", input=GPU_POD.format(name=second, command="print(2)"))
    cond = until(lambda: pod(gpu_cluster, second)["status"].get("conditions"), what="second pod condition")
    assert cond[0]["reason"] == "Unschedulable"
    # Capacity frees when the first pod finishes: the second is scheduled without a nudge.
    until(lambda: pod(gpu_cluster, second)["status"]["phase"] == "Succeeded", what="second pod done")
    assert pod(gpu_cluster, first)["status"]["phase"] == "Succeeded"
    assert gpu_cluster.kubectl("logs", second).stdout == "2\n"
