"""The panel's side of `kflow serve` against the test cluster: paged listings of jobs made by
anyone, live changes from watches (made with the `kubernetes` client), a cluster run followed to
its end, and the namespace objects the panel creates."""

from __future__ import annotations

import pytest

from serve_client import RpcError, ServeClient


def foreign_job(name: str, text: str = "hi") -> dict:
    return {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "pytorch", "image": "python:3.12", "command": ["python", "-c", f"print({text!r})"]}]}}}}},
    }


@pytest.fixture
def served(cluster, tmp_path):
    c = ServeClient()
    c.request("initialize", {"settings": {"backend": "cluster"}, "workspaceFolder": str(tmp_path)})
    yield c
    c.close()


def test_listings_page_through_jobs_made_by_anyone(served, custom):
    for i in range(5):
        custom.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs",
                                               foreign_job(f"paged-{i}"))
    names, cursor, pages = [], None, 0
    while True:
        page = served.request("list", {"what": "jobs", "limit": 2, "cursor": cursor})
        pages += 1
        assert len(page["items"]) <= 2
        names += [r["name"] for r in page["items"]]
        cursor = page.get("next")
        if not cursor:
            break
    assert {f"paged-{i}" for i in range(5)} <= set(names) and pages >= 3
    assert served.request("list", {"what": "jobs", "limit": 2})["total"] == len(names)
    row = next(r for r in served.request("list", {"what": "jobs", "limit": 100})["items"] if r["name"] == "paged-0")
    assert row["kind"] == "PyTorchJob" and row["made_by_kflow"] is False and row["replicas"] == {"Master": 1}
    with pytest.raises(RpcError) as e:
        served.request("list", {"what": "jobs", "cursor": "not-a-cursor"})
    assert e.value.data["kind"] == "validation" and e.value.data["eventId"]
    with pytest.raises(RpcError) as e:
        served.request("list", {"what": "pods"})
    assert e.value.code == -32602 and "jobs, pvcs" in str(e.value)


def test_a_watch_pushes_every_row_then_each_change(served, custom):
    custom.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", foreign_job("watched-a"))
    watch = served.request("watch/start", {"what": "jobs"})

    def change(kind, name, initial=False):
        # `initial` marks the rows the watch starts with, so a paged panel leaves unloaded pages out.
        return lambda p: p["watchId"] == watch["watchId"] and any(
            c["change"] == kind and (c.get("row", {}).get("name") == name or c.get("name") == name)
            and c.get("initial", False) == initial
            for c in p["changes"])

    served.next_notification("watch/changes", where=change("upsert", "watched-a", initial=True))
    custom.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", foreign_job("watched-b"))
    served.next_notification("watch/changes", where=change("upsert", "watched-b"))
    # The operator runs it: the row's phase follows, pushed, never polled.
    served.next_notification("watch/changes", timeout=120, where=lambda p: any(
        c["change"] == "upsert" and c["row"]["name"] == "watched-b" and c["row"]["phase"] == "Succeeded"
        for c in p["changes"]))
    custom.delete_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", "watched-b")
    served.next_notification("watch/changes", where=change("delete", "watched-b"))
    assert served.request("watch/stop", {"watchId": watch["watchId"]}) == {"stopped": True}
    assert served.request("watch/stop", {"watchId": watch["watchId"]}) == {"stopped": False}


def test_a_cluster_run_is_followed_to_its_end_and_foreign_jobs_answer_too(served, custom, project):
    script = project("train.py", "import os\nprint('rank', os.environ['RANK'])\nraise SystemExit(0)\n")
    run = served.request("run", {"options": {"script": str(script), "name": "served-cluster", "workers": 2}})
    assert run["backend"] == "cluster" and run["replicas"] == ["master-0", "worker-0"]
    follow = served.request("logs/follow", {"name": "served-cluster"})
    lines = []
    while True:
        n = served.notifications.get(timeout=180)
        if n["method"] == "logs/lines" and n["params"]["followId"] == follow["followId"]:
            lines += [(l["replica"], l["text"]) for l in n["params"]["lines"]]
        elif n["method"] == "logs/end" and n["params"]["followId"] == follow["followId"]:
            assert n["params"]["status"]["phase"] == "Succeeded", n["params"]
            break
    assert ("master-0", "rank 0") in lines and ("worker-0", "rank 1") in lines
    assert served.request("job/status", {"name": "served-cluster"})["phase"] == "Succeeded"
    custom.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs",
                                           foreign_job("someone-elses", "from elsewhere"))
    follow = served.request("logs/follow", {"name": "someone-elses"})
    seen = []
    while True:
        n = served.notifications.get(timeout=180)
        if n["method"] == "logs/lines" and n["params"]["followId"] == follow["followId"]:
            seen += [l["text"] for l in n["params"]["lines"]]
        elif n["method"] == "logs/end" and n["params"]["followId"] == follow["followId"]:
            break
    assert "from elsewhere" in seen
    described = served.request("job/describe", {"name": "someone-elses"})
    assert described["pods"] and described["status"]["phase"] == "Succeeded"
    with pytest.raises(RpcError) as e:
        served.request("job/restart", {"name": "someone-elses"})
    assert e.value.data["kind"] == "validation" and "not made by kflow" in e.value.data["problem"]
    served.request("job/delete", {"name": "someone-elses"})
    served.request("job/delete", {"name": "served-cluster"})
    names = [r["name"] for r in served.request("list", {"what": "jobs", "limit": 500})["items"]]
    assert "someone-elses" not in names and "served-cluster" not in names


def test_pvcs_and_notebooks_are_made_and_removed_from_the_panel(served):
    row = served.request("pvc/create", {"name": "panel-data", "size": "2Gi", "accessMode": "RWX"})
    assert row["name"] == "panel-data" and row["access_modes"] == ["ReadWriteMany"]
    assert "panel-data" in [r["name"] for r in served.request("list", {"what": "pvcs"})["items"]]
    with pytest.raises(RpcError) as e:
        served.request("pvc/create", {"name": "panel-data"})
    assert e.value.data["kind"] == "conflict"
    served.request("pvc/delete", {"name": "panel-data"})
    images = served.request("notebook/images")
    assert images["default"] in images["options"]
    nb = served.request("notebook/create", {"name": "panel-nb", "cpu": "1", "memory": "2Gi", "workspace": "none"})
    assert nb["name"] == "panel-nb" and nb["state"] in ("Starting", "Ready")
    assert served.request("notebook/stop", {"name": "panel-nb"})["state"] == "Stopped"
    served.request("notebook/delete", {"name": "panel-nb"})
    assert "panel-nb" not in [r["name"] for r in served.request("list", {"what": "notebooks"})["items"]]
