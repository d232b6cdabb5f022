"""Scheduled notebooks through KflowExecutionManager on the test cluster: the notebook runs in a
pod, its outputs come back through the API server's exec (tar, streamed), and stop, delete and
an unschedulable GPU or a notebook over its memory limit behave as jupyter-scheduler's users
expect."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.error

import nbformat
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

import kflow
from kflow.scheduler import kflow_job_name, kflow_schedule_name
from kflow_testsupport import TestCluster

from .server import absolute, downloaded, outputs_of, wait_until_executing

pytestmark = pytest.mark.timeout(300)

# An image with Jupyter's packages: the test cluster runs it with this environment's Python,
# which has nbclient, nbconvert and ipykernel (jupyter-scheduler brings them).
IMAGE = "kflow-notebook-test:1"
ON_CLUSTER = {"backend": "cluster", "image": IMAGE}


@pytest.fixture(scope="module")
def nb_cluster(tmp_path_factory):
    c = TestCluster(tmp_path_factory.mktemp("nb-cluster") / "cluster", ["--image-map", f"kflow-notebook-test=python:{sys.executable}"])
    yield c
    c.stop()


@pytest.fixture(autouse=True)
def kubeconfig(nb_cluster, kflow_home, monkeypatch):
    # Set before the scheduler's server starts, so its execution processes inherit it.
    monkeypatch.setenv("KUBECONFIG", nb_cluster.kubeconfig)
    monkeypatch.delenv("KFLOW_CONTEXT", raising=False)
    return nb_cluster.kubeconfig


def namespace_objects(kubeconfig):
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=kubeconfig))
    custom = k8s.CustomObjectsApi(api.api_client)
    return {
        "pods": [p.metadata.name for p in api.list_namespaced_pod("default").items],
        "configmaps": [c.metadata.name for c in api.list_namespaced_config_map("default").items
                       if c.metadata.name != "kube-root-ca.crt"],
        "pytorchjobs": [j["metadata"]["name"] for j in custom.list_namespaced_custom_object(
            "kubeflow.org", "v1", "default", "pytorchjobs")["items"]],
    }


def test_a_parameterised_notebook_runs_in_a_pod_and_every_output_arrives_intact(scheduler, notebook_root):
    (notebook_root.root / "data").mkdir()
    (notebook_root.root / "data" / "rows.csv").write_text("a,b\n1,2\n3,4\n")
    nb = notebook_root(
        "train.ipynb",
        "import hashlib, os, socket\nrows = open('data/rows.csv').read().splitlines()\n"
        # 100 MiB that does not compress: the output transport must carry it whole.
        "blob = os.urandom(100 << 20)\nopen('weights.bin', 'wb').write(blob)\n"
        "print('host', socket.gethostname(), 'rows', len(rows), 'sha', hashlib.sha256(blob).hexdigest())",
        "print(f'lr={lr!r} epochs={epochs!r}')",
        parameters="lr = 0.1\nepochs = 1",
    )
    job_id = scheduler.create(nb, name="train", output_formats=["ipynb", "html", "script"], package_input_folder=True,
                              parameters={"lr": "0.003", "epochs": "7"}, runtime_environment_parameters=ON_CLUSTER)
    job = scheduler.wait(job_id)
    assert job["status"] == "COMPLETED", job["status_message"]
    job = downloaded(scheduler, job_id, "weights.bin")
    out = outputs_of(job)
    executed = nbformat.read(absolute(scheduler, out["ipynb"]), as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "lr=0.003 epochs=7" in printed
    # It ran in the pod (its hostname), with the input folder packaged into it.
    name = kflow_job_name(job_id)
    assert f"host {name}-master-0 rows 3" in printed, printed
    assert "<html" in absolute(scheduler, out["html"]).read_text().lower()
    assert "print(f'lr=" in absolute(scheduler, out["script"]).read_text()
    weights = absolute(scheduler, out["ipynb"]).parent / "weights.bin"
    deadline = time.monotonic() + 30
    while weights.stat().st_size < 100 << 20:  # the download (a copy) may still be writing it
        assert time.monotonic() < deadline, weights.stat().st_size
        time.sleep(0.2)
    assert f"sha {hashlib.sha256(weights.read_bytes()).hexdigest()}" in printed
    assert "weights.bin" in job["packaged_files"]
    # The pod ended once its outputs were copied; the kflow job is a normal one.
    kjob = kflow.get(name)
    assert kjob.status.phase == "Succeeded"
    assert kjob.spec["image"] == IMAGE


def test_a_failing_cell_in_a_pod_gives_failed_with_its_error(scheduler, notebook_root):
    nb = notebook_root("broken.ipynb", "x = 1", "raise ValueError('bad batch size')")
    job = scheduler.wait(scheduler.create(nb, output_formats=["ipynb"], runtime_environment_parameters=ON_CLUSTER))
    assert job["status"] == "FAILED"
    assert job["status_message"] == "ValueError: bad batch size"
    executed = nbformat.read(absolute(scheduler, outputs_of(downloaded(scheduler, job["job_id"]))["ipynb"]), as_version=4)
    assert any(o.get("ename") == "ValueError" for c in executed.cells for o in c.get("outputs", []))


def test_a_long_job_on_the_cluster_is_stopped_and_deleted_with_nothing_left(scheduler, notebook_root, kubeconfig):
    nb = notebook_root("long.ipynb", "import time\nprint('started', flush=True)\ntime.sleep(600)")
    job_id = scheduler.create(nb, runtime_environment_parameters=ON_CLUSTER)
    name = kflow_job_name(job_id)
    wait_until_executing(name, "long.ipynb")
    scheduler.request("PATCH", f"/scheduler/jobs/{job_id}", {"status": "STOPPED"})
    assert scheduler.wait(job_id, statuses=("STOPPED",), timeout=30)["status"] == "STOPPED"
    scheduler.request("DELETE", f"/scheduler/jobs/{job_id}")
    with pytest.raises(kflow.JobNotFoundError):
        kflow.get(name)
    deadline = time.monotonic() + 30
    # The module's cluster keeps the other tests' jobs: this job's objects must all go.
    while left := [n for names in namespace_objects(kubeconfig).values() for n in names if n.startswith(name)]:
        assert time.monotonic() < deadline, f"left on the cluster: {left}"
        time.sleep(0.3)


def test_a_gpu_the_cluster_cannot_give_fails_unschedulable(scheduler, notebook_root):
    nb = notebook_root("gpu.ipynb", "print('got a gpu')")
    job_id = scheduler.create(nb, runtime_environment_parameters={**ON_CLUSTER, "gpu": 1, "start_timeout_seconds": 2})
    job = scheduler.wait(job_id)
    assert job["status"] == "FAILED"
    assert job["status_message"].startswith("Unschedulable: master-0 cannot be scheduled"), job["status_message"]
    assert "Insufficient nvidia.com/gpu" in job["status_message"]
    assert kflow.get(kflow_job_name(job_id)).status.reason == "Cancelled"


def test_a_notebook_over_its_memory_limit_fails_oomkilled(scheduler, notebook_root):
    nb = notebook_root("hog.ipynb", "hog = []\nfor _ in range(40):\n    hog.append(bytearray(16 << 20))")
    job = scheduler.wait(scheduler.create(nb, runtime_environment_parameters={**ON_CLUSTER, "memory": "256Mi"}))
    assert job["status"] == "FAILED"
    assert "OOMKilled" in job["status_message"], job["status_message"]
    assert "more memory than its limit" in job["status_message"]


def kubectl(kubeconfig, *args):
    binary = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or "kubectl"
    done = subprocess.run([binary, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def schedule_objects(kubeconfig, name):
    api = k8s.ApiClient(k8s_config.new_client_from_config(config_file=kubeconfig).configuration)
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    found = {
        "cronjobs": [c.metadata.name for c in batch.list_namespaced_cron_job("default").items],
        "jobs": [j.metadata.name for j in batch.list_namespaced_job("default").items],
        "pods": [p.metadata.name for p in core.list_namespaced_pod("default").items],
        "configmaps": [c.metadata.name for c in core.list_namespaced_config_map("default").items],
        "pvcs": [p.metadata.name for p in core.list_namespaced_persistent_volume_claim("default").items],
    }
    return {kind: [n for n in names if n.startswith(name)] for kind, names in found.items()}


def test_a_scheduled_definition_is_a_cronjob_whose_runs_arrive_in_the_job_list(scheduler, notebook_root, kubeconfig):
    (notebook_root.root / "labels.txt").write_text("cat\ndog\n")
    nb = notebook_root(
        "nightly.ipynb",
        "import json\nlabels = open('labels.txt').read().split()\njson.dump({'lr': lr}, open('metrics.json', 'w'))\n"
        "print(f'nightly lr={lr!r} labels={labels}')",
        parameters="lr = 0.1",
    )
    definition_id = scheduler.request("POST", "/scheduler/job_definitions", {
        "input_uri": nb, "runtime_environment_name": "kflow", "name": "nightly", "output_formats": ["ipynb", "html"],
        "package_input_folder": True,
        "schedule": "0 3 * * *", "timezone": "UTC", "parameters": {"lr": "0.5"},
        "runtime_environment_parameters": ON_CLUSTER,
    })["job_definition_id"]
    name = kflow_schedule_name(definition_id)
    batch = k8s.BatchV1Api(k8s_config.new_client_from_config(config_file=kubeconfig))
    cron = batch.read_namespaced_cron_job(name, "default")
    assert (cron.spec.schedule, cron.spec.time_zone, cron.spec.suspend) == ("0 3 * * *", "UTC", False)
    made = schedule_objects(kubeconfig, name)
    assert made["pvcs"] == [f"{name}-outputs"] and f"{name}-code" in made["configmaps"], made

    # A run now, the way an operator starts one: the CronJob controller's template, by kubectl.
    kubectl(kubeconfig, "create", "job", f"--from=cronjob/{name}", f"{name}-now")
    deadline = time.monotonic() + 150
    # The list answers at once and imports in the background: the run shows up on a later look.
    while not (jobs := scheduler.request("GET", f"/scheduler/jobs?job_definition_id={definition_id}")["jobs"]):
        assert time.monotonic() < deadline, "the scheduled run never showed up in the job list"
        time.sleep(1)
    [job] = jobs
    job = scheduler.wait(job["job_id"], timeout=60)
    assert job["status"] == "COMPLETED", job["status_message"]
    assert (job["name"], job["job_definition_id"]) == ("nightly", definition_id)
    job = downloaded(scheduler, job["job_id"], "metrics.json")
    out = outputs_of(job)
    executed = nbformat.read(absolute(scheduler, out["ipynb"]), as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "nightly lr=0.5 labels=['cat', 'dog']" in printed
    assert "<html" in absolute(scheduler, out["html"]).read_text().lower()
    assert "metrics.json" in job["packaged_files"]
    # Imported: the run's Job, its pod and the reader pod are gone; the list does not repeat it.
    deadline = time.monotonic() + 30
    while (left := schedule_objects(kubeconfig, name))["jobs"] or left["pods"]:
        assert time.monotonic() < deadline, f"left after the import: {left}"
        time.sleep(0.3)
    time.sleep(6)  # past the import interval
    assert len(scheduler.request("GET", f"/scheduler/jobs?job_definition_id={definition_id}")["jobs"]) == 1

    # Pausing and changing the definition change the CronJob; deleting it leaves nothing.
    scheduler.request("PATCH", f"/scheduler/job_definitions/{definition_id}", {"active": False})
    assert batch.read_namespaced_cron_job(name, "default").spec.suspend is True
    scheduler.request("PATCH", f"/scheduler/job_definitions/{definition_id}", {"schedule": "*/30 * * * *", "timezone": "Etc/UTC"})
    cron = batch.read_namespaced_cron_job(name, "default")
    assert (cron.spec.schedule, cron.spec.time_zone, cron.spec.suspend) == ("*/30 * * * *", "Etc/UTC", True)
    # A time zone the cluster does not know is its refusal, in words, and changes nothing.
    with pytest.raises(urllib.error.HTTPError) as refused:
        scheduler.request("PATCH", f"/scheduler/job_definitions/{definition_id}", {"schedule": "0 4 * * *", "timezone": "Mars/Olympus"})
    assert "Mars/Olympus" in refused.value.read().decode()
    assert batch.read_namespaced_cron_job(name, "default").spec.schedule == "*/30 * * * *"
    scheduler.request("DELETE", f"/scheduler/job_definitions/{definition_id}")
    deadline = time.monotonic() + 30
    while any((left := schedule_objects(kubeconfig, name)).values()):
        assert time.monotonic() < deadline, f"left after deleting the definition: {left}"
        time.sleep(0.3)


def test_a_definition_the_cluster_cannot_schedule_is_refused_with_nothing_made(scheduler, notebook_root, kubeconfig):
    nb = notebook_root("bad.ipynb", "print(1)")
    with pytest.raises(urllib.error.HTTPError) as refused:
        scheduler.request("POST", "/scheduler/job_definitions", {
            "input_uri": nb, "runtime_environment_name": "kflow", "name": "bad", "output_formats": ["ipynb"],
            "schedule": "0 3 * * *", "runtime_environment_parameters": {**ON_CLUSTER, "memory": "16"},
        })
    assert "memory" in refused.value.read().decode()
    assert scheduler.request("GET", "/scheduler/job_definitions")["job_definitions"] == []
    assert not any(schedule_objects(kubeconfig, "nbdef-").values())
