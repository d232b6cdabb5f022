"""PVCs from kflow: created (size, class, access mode checked first), listed with the pods
that mount them, deleted — refused while a running pod mounts one, unless forced; the
dashboard's address."""

from __future__ import annotations

import json
import time

import pytest

import kflow


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_pvc_create_list_and_delete_from_python(cluster, kube):
    core, _ = kube
    ns = kflow.namespace()
    row = ns.create_pvc("data-py", size="2Gi", access_mode="rwx")
    assert (row["name"], row["size"], row["access_modes"]) == ("data-py", "2Gi", ["ReadWriteMany"])
    made = core.read_namespaced_persistent_volume_claim("data-py", "default")
    assert made.spec.resources.requests["storage"] == "2Gi"
    assert made.metadata.labels["app.kubernetes.io/managed-by"] == "kflow"
    listed = {p["name"]: p for p in ns.pvcs(all=True)}
    assert listed["data-py"]["access_modes"] == ["ReadWriteMany"]
    with pytest.raises(kflow.ConflictError) as err:
        ns.create_pvc("data-py")
    assert "already exists" in str(err.value)
    ns.delete_pvc("data-py")
    wait_for(lambda: "data-py" not in {p["name"] for p in ns.pvcs(all=True)})


def test_pvc_from_the_cli_with_defaults_from_settings(cluster, cli, kube, monkeypatch):
    core, _ = kube
    monkeypatch.setenv("KFLOW_DEFAULT_PVC_SIZE", "3Gi")
    cli("pvc", "create", "data-cli")
    assert core.read_namespaced_persistent_volume_claim("data-cli", "default").spec.resources.requests["storage"] == "3Gi"
    rows = json.loads(cli("ls", "pvcs", "--all", "--json").stdout)["items"]
    assert any(r["name"] == "data-cli" and r["size"] in ("3Gi",) for r in rows)
    table = cli("ls", "pvcs").stdout
    assert table.startswith("NAME") and "data-cli" in table
    cli("pvc", "delete", "data-cli")


@pytest.mark.parametrize("args,says", [
    (["pvc", "create", "Bad_Name"], "not a valid Kubernetes name"),
    (["pvc", "create", "ok-name", "--size", "lots"], "not a Kubernetes quantity"),
    (["pvc", "create", "ok-name", "--size", "10"], "smaller than 1Mi"),
    (["pvc", "create", "ok-name", "--access-mode", "shared"], "not a Kubernetes access mode"),
    (["pvc", "create", "ok-name", "--storage-class", "gold-nvme"], "no StorageClass of that name"),
    (["pvc", "delete", "never-made"], "no PVC named \"never-made\""),
])
def test_bad_pvc_requests_are_refused_before_anything_is_made(cluster, cli, kube, args, says):
    core, _ = kube
    result = cli(*args, check=False)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and "error[" in result.stderr and "Fix:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    names = [p.metadata.name for p in core.list_namespaced_persistent_volume_claim("default").items]
    assert "ok-name" not in names and "Bad_Name" not in names


def test_a_mounted_pvc_is_kept_unless_forced(cluster, kube):
    core, _ = kube
    ns = kflow.namespace()
    ns.create_pvc("in-use", size="1Gi")
    core.create_namespaced_pod("default", {
        "metadata": {"name": "uses-pvc"},
        "spec": {"restartPolicy": "Never", "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "in-use"}}],
                 "containers": [{"name": "c", "image": "python:3.12", "command": ["sleep", "60"],
                                 "volumeMounts": [{"name": "d", "mountPath": "/data"}]}]}})
    wait_for(lambda: core.read_namespaced_pod("uses-pvc", "default").status.phase == "Running")
    row = next(p for p in ns.pvcs(all=True) if p["name"] == "in-use")
    assert row["mounted_by"] == ["uses-pvc"]
    with pytest.raises(kflow.ConflictError) as err:
        ns.delete_pvc("in-use")
    assert "uses-pvc" in str(err.value) and err.value.fix and "force" in err.value.fix
    assert core.read_namespaced_persistent_volume_claim("in-use", "default")
    ns.delete_pvc("in-use", force=True)
    core.delete_namespaced_pod("uses-pvc", "default")


def test_dashboard_url(cluster, cli, monkeypatch):
    missing = cli("dashboard", "--no-browser", check=False)
    assert missing.returncode == 2 and "Kubeflow URL" in missing.stderr
    monkeypatch.setenv("KFLOW_URL", "https://kubeflow.example.com/")
    assert cli("dashboard", "--no-browser").stdout.strip() == "https://kubeflow.example.com/?ns=default"
    assert kflow.dashboard(open_browser=False) == "https://kubeflow.example.com/?ns=default"
    assert kflow.namespace("team-a").dashboard_url() == "https://kubeflow.example.com/?ns=team-a"
