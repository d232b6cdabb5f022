"""Every listing of the namespace pages through 5,000 objects made by other tools, from the
CLI and from Python; odd objects made with kubectl (no runPolicy, no status, unknown replica
types) are listed, not fatal; any training job of the namespace can be followed, described
and deleted, not only kflow's."""

from __future__ import annotations

import concurrent.futures
import json
import time

import pytest

import kflow

N = 5000


def fill(make, n=N):
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(make, range(n)))


@pytest.fixture(scope="module")
def crowded(shared_cluster):
    """5,000 each of suspended PyTorchJobs (no pods), ConfigMaps, PVCs and stopped Notebook
    servers, made with the `kubernetes` client as another tool would."""
    from kubernetes import client, config

    settings = client.Configuration()
    config.load_kube_config(shared_cluster.kubeconfig, client_configuration=settings)
    settings.connection_pool_maxsize = 16
    api = client.ApiClient(settings)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    core.create_namespace({"metadata": {"name": "crowd"}})
    start = time.perf_counter()
    pod = {"spec": {"containers": [{"name": "pytorch", "image": "registry.invalid/none:1"}]}}
    fill(lambda i: custom.create_namespaced_custom_object("kubeflow.org", "v1", "crowd", "pytorchjobs", {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": f"job-{i:05d}"},
        "spec": {"runPolicy": {"suspend": True}, "pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": pod}}}}))
    fill(lambda i: core.create_namespaced_config_map("crowd", {
        "metadata": {"name": f"cm-{i:05d}"}, "data": {"a": "x" * (i % 50)}, "binaryData": {"b": "aGVsbG8="}}))
    fill(lambda i: core.create_namespaced_persistent_volume_claim("crowd", {
        "metadata": {"name": f"pvc-{i:05d}"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    fill(lambda i: custom.create_namespaced_custom_object("kubeflow.org", "v1beta1", "crowd", "notebooks", {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Notebook",
        "metadata": {"name": f"nb-{i:05d}", "annotations": {"kubeflow-resource-stopped": "2026-12-01T00:00:00Z"}},
        "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "jupyter-scipy"}]}}}}))
    print(f"filled namespace crowd with {4 * N} objects in {time.perf_counter() - start:.1f} s")
    return shared_cluster


@pytest.mark.parametrize("kind,method,prefix", [
    ("jobs", "training_jobs", "job-"),
    ("configmaps", "config_maps", "cm-"),
    ("pvcs", "pvcs", "pvc-"),
    ("notebooks", "notebooks", "nb-"),
])
def test_every_listing_pages_through_5000(crowded, cluster, cli, kind, method, prefix):
    ns = kflow.namespace("crowd")
    start = time.perf_counter()
    first = getattr(ns, method)(limit=500)
    print(f"{kind}: first page of 500 in {(time.perf_counter() - start) * 1000:.0f} ms")
    assert len(first) == 500 and first.next
    names = [r["name"] for r in first]
    cursor = first.next
    while cursor:
        page = getattr(ns, method)(limit=500, cursor=cursor)
        names += [r["name"] for r in page]
        cursor = page.next
    mine = [n for n in names if n.startswith(prefix)]
    assert len(mine) == N and len(set(mine)) == N
    everything = getattr(ns, method)(all=True)
    # The first page tells the whole listing's length (what a panel shows as "500 of N").
    assert first.total == len(everything)
    assert sorted(r["name"] for r in everything if r["name"].startswith(prefix)) == sorted(mine)
    # The CLI pages the same way, as JSON and as a table.
    out = json.loads(cli("ls", kind, "-n", "crowd", "--limit", "7", "--json").stdout)
    assert len(out["items"]) == 7 and out["next"]
    more = json.loads(cli("ls", kind, "-n", "crowd", "--limit", "7", "--cursor", out["next"], "--json").stdout)
    assert not {r["name"] for r in more["items"]} & {r["name"] for r in out["items"]}
    table = cli("ls", kind, "-n", "crowd", "--all")
    assert table.stdout.count(f"\n{prefix}") == N  # each row after the header's line


def test_rows_say_what_each_object_is(crowded, cluster):
    ns = kflow.namespace("crowd")
    job = ns.training_jobs(limit=1)[0]
    assert (job["kind"], job["phase"], job["replicas"], job["made_by_kflow"]) == ("PyTorchJob", "Suspended", {"Master": 1}, False)
    cm = next(r for r in ns.config_maps(limit=20) if r["name"] == "cm-00003")
    assert cm["keys"] == [{"key": "a", "bytes": 3}, {"key": "b", "bytes": 5}] and cm["code_of"] is None
    pvc = ns.pvcs(limit=1)[0]
    assert pvc["access_modes"] == ["ReadWriteOnce"] and pvc["size"] == "1Gi" and pvc["mounted_by"] == []
    nb = ns.notebooks(limit=1)[0]
    assert nb["state"] == "Stopped" and nb["url_path"] == f"/notebook/crowd/{nb['name']}/"


def test_bad_cursor_and_limit_are_refused(crowded, cluster, cli):
    ns = kflow.namespace("crowd")
    with pytest.raises(kflow.ValidationError) as err:
        ns.training_jobs(cursor="not-a-cursor")
    assert "cursor" in str(err.value) and err.value.event_id
    with pytest.raises(kflow.ValidationError):
        ns.pvcs(limit=0)
    with pytest.raises(kflow.ValidationError):
        kflow.namespace("Bad_Namespace")
    result = cli("ls", "jobs", "-n", "crowd", "--cursor", "nope", check=False)
    assert result.returncode == 2 and "error[" in result.stderr and "Traceback" not in result.stderr


ODD = """\
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: odd-master
spec:
  pytorchReplicaSpecs:
    Master:
      template:
        spec:
          containers:
          - name: pytorch
            image: python:3.12
            command: ["python", "-c", "print('odd master says hi')"]
---
apiVersion: kubeflow.org/v1
kind: TFJob
metadata:
  name: odd-tf
spec:
  tfReplicaSpecs:
    Chief:
      template:
        spec:
          containers:
          - name: tensorflow
            image: python:3.12
            command: ["python", "-c", "print('chief')"]
    PS:
      template:
        spec:
          containers:
          - name: tensorflow
            image: python:3.12
            command: ["python", "-c", "print('ps')"]
    Worker:
      replicas: 2
      template:
        spec:
          containers:
          - name: tensorflow
            image: python:3.12
            command: ["python", "-c", "print('worker')"]
"""


def test_jobs_made_with_kubectl_are_listed_followed_and_deleted(cluster, kubectl, cli):
    """No runPolicy, replica types kflow never makes (TFJob Chief and PS), made by kubectl."""
    kubectl("apply", "-n", "default", "-f", "-", input=ODD)
    rows = {r["name"]: r for r in kflow.namespace().training_jobs(all=True)}
    assert rows["odd-tf"]["kind"] == "TFJob"
    assert rows["odd-tf"]["replicas"] == {"Chief": 1, "PS": 1, "Worker": 2}
    assert rows["odd-master"]["replicas"] == {"Master": 1} and not rows["odd-master"]["made_by_kflow"]
    # status, logs and describe work on jobs this machine never submitted.
    job = kflow.get("odd-master")
    status = job.wait(timeout=120)
    assert status.phase == "Succeeded", status
    assert "odd master says hi" in list(job.logs())
    tf = kflow.get("odd-tf")
    assert tf.wait(timeout=120).phase == "Succeeded"
    assert "[chief-0] chief" in list(tf.logs())
    shown = json.loads(cli("status", "odd-tf", "--json").stdout)
    assert shown["phase"] == "Succeeded"
    assert {r["name"] for r in shown["replicas"]} == {"chief-0", "ps-0", "worker-0", "worker-1"}
    described = json.loads(cli("describe", "odd-tf", "--json").stdout)
    assert described["status"]["phase"] == "Succeeded" and described["pods"]
    # restart needs a run record: kflow says so instead of failing half-way.
    restart = cli("restart", "odd-master", "-d", check=False)
    assert restart.returncode == 2 and "not made by kflow" in restart.stderr and "Traceback" not in restart.stderr
    # They are the namespace's jobs, not this machine's runs.
    assert not {"odd-master", "odd-tf"} & {j.name for j in kflow.jobs()}
    cli("delete", "odd-master")
    cli("delete", "odd-tf")
    assert kubectl("get", "pytorchjob", "odd-master", "-n", "default", check=False).returncode != 0
    assert kubectl("get", "tfjob", "odd-tf", "-n", "default", check=False).returncode != 0
    missing = cli("status", "odd-gone", check=False)
    assert missing.returncode == 2 and "odd-gone" in missing.stderr
