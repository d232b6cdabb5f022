"""MPIJob end to end, in the shape kflow's client writes it (golden mpijob-v1/-v2beta1): the
code as a tar.gz ConfigMap that workers unpack, then the launcher's `mpirun ... sh -c '...'
kflow-rank train.py ARGS`, which reaches each worker through the rsh agent (kubexec.sh ->
kubectl exec with the launcher's service-account token). Ranks print their rank into the
launcher log; a failing rank fails the job; cleanPodPolicy Running removes the workers."""

import base64
import io
import json
import tarfile

import pytest

from conftest import Cluster

TRAIN = """import os, sys
rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
print(f"rank {rank}/{os.environ['OMPI_COMM_WORLD_SIZE']} on {os.environ['HOSTNAME']} "
      f"args={sys.argv[1:]} lr={os.environ.get('LR')} unbuffered={os.environ.get('PYTHONUNBUFFERED')}")
if rank == int(os.environ.get("FAIL_RANK", "-1")):
    print(f"rank {rank} failing", file=sys.stderr)
    sys.exit(3)
"""

LAUNCH = ("set -eu\nexec mpirun --allow-run-as-root -np 2 -bind-to none -map-by slot "
          "-x PYTHONUNBUFFERED -x LR -x FAIL_RANK sh -c 'while [ ! -f /workspace/.kflow-ready ]; do sleep 1; done; "
          "cd /workspace && exec python -u \"$@\"' kflow-rank train.py --epochs 3 '$(id)'\n")
SETUP = ("set -eu\nmkdir -p /workspace\ntar -xzf /kflow/code/code.tar.gz -C /workspace\ncd /workspace\n"
         "touch /workspace/.kflow-ready\nexec sleep infinity\n")


def code_configmap(name):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = TRAIN.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-code"},
            "binaryData": {"code.tar.gz": base64.b64encode(buf.getvalue()).decode()}}


def replica(name, command, fail_rank):
    return {"replicas": 1, "restartPolicy": "Never", "template": {"spec": {
        "containers": [{
            "name": "mpi", "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
            "command": ["/bin/sh", "-c", command], "workingDir": "/workspace",
            "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}, {"name": "LR", "value": "0.1"},
                    {"name": "FAIL_RANK", "value": str(fail_rank)}],
            "volumeMounts": [{"name": "kflow-code", "mountPath": "/kflow/code", "readOnly": True},
                             {"name": "kflow-workspace", "mountPath": "/workspace"}],
            "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}}],
        "volumes": [{"name": "kflow-code", "configMap": {"name": f"{name}-code"}},
                    {"name": "kflow-workspace", "emptyDir": {}}]}}}


def mpijob(name, version, fail_rank=-1):
    launcher = replica(name, LAUNCH, fail_rank)
    # mpi-operator v2 workers serve ssh (kflow's v2beta1 output ends in `exec /usr/sbin/sshd -De`).
    setup = SETUP.replace("exec sleep infinity", "exec /usr/sbin/sshd -De") if version == "v2beta1" else SETUP
    worker = replica(name, setup, fail_rank)
    worker["replicas"] = 2
    spec = {"slotsPerWorker": 1, "runPolicy": {"cleanPodPolicy": "Running"},
            "mpiReplicaSpecs": {"Launcher": launcher, "Worker": worker}}
    if version == "v2beta1":
        spec.update({"mpiImplementation": "OpenMPI", "sshAuthMountPath": "/root/.ssh"})
    return {"apiVersion": f"kubeflow.org/{version}", "kind": "MPIJob", "metadata": {"name": name}, "spec": spec}


def run(tc, name, version, launcher, fail_rank=-1, want="Succeeded"):
    manifest = "\n---\n".join(json.dumps(o) for o in (code_configmap(name), mpijob(name, version, fail_rank)))
    tc.kubectl("create", "-f", "-", input=manifest)
    tc.kubectl("wait", f"mpijob/{name}", f"--for=condition={want}", "--timeout=90s", timeout=120)
    job = json.loads(tc.kubectl("get", "mpijob", name, "-o", "json").stdout)
    return job, tc.kubectl("logs", launcher).stdout


def workers_gone(tc, name, role_label):
    pods = json.loads(tc.kubectl("get", "pods", "-l", f"training.kubeflow.org/job-name={name},{role_label}",
                                 "-o", "json").stdout)["items"]
    return [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]


def wait_workers_gone(tc, name, role_label):
    import time
    deadline = time.monotonic() + 30
    while workers_gone(tc, name, role_label):
        assert time.monotonic() < deadline, f"workers of {name} still there"
        time.sleep(0.3)


def test_mpijob_v1_ranks_run_on_workers(testcluster, unique):
    job, log = run(testcluster, unique, "v1", f"{unique}-launcher-0")
    for rank in (0, 1):
        assert (f"rank {rank}/2 on {unique}-worker-{rank} args=['--epochs', '3', '$(id)'] "
                f"lr=0.1 unbuffered=1") in log, log
    # The v1 rsh agent is the operator's kubexec.sh (set -x shows it calling kubectl exec).
    assert f"/opt/kube/kubectl exec {unique}-worker-0" in log
    assert job["status"]["conditions"][-1]["reason"] == "MPIJobSucceeded"
    wait_workers_gone(testcluster, unique, "training.kubeflow.org/replica-type=worker")


def test_mpijob_v1_failing_rank_fails_job(testcluster, unique):
    job, log = run(testcluster, unique, "v1", f"{unique}-launcher-0", fail_rank=1, want="Failed")
    assert "rank 1 failing" in log
    assert "mpirun detected that one or more processes exited with non-zero status" in log
    assert "Exit code:    3" in log
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"][0]
    assert failed["reason"] == "MPIJobFailed" and "exit code 3" in failed["message"]
    wait_workers_gone(testcluster, unique, "training.kubeflow.org/replica-type=worker")


@pytest.fixture(scope="module")
def v2_cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("mpiv2") / "state", extra_args=["--mpi-v2beta1"])
    yield cluster
    cluster.stop()


def test_mpijob_v2beta1_ranks_reach_fqdn_hosts(v2_cluster, unique):
    job, log = run(v2_cluster, unique, "v2beta1", f"{unique}-launcher")
    for rank in (0, 1):
        assert f"rank {rank}/2 on {unique}-worker-{rank} args=['--epochs', '3', '$(id)']" in log, log
    assert job["status"]["conditions"][-1]["reason"] == "MPIJobSucceeded"
    wait_workers_gone(v2_cluster, unique, "training.kubeflow.org/job-role=worker")
