"""`kflow doctor` / `kflow.doctor()`: the connection in use, the user, the namespace and the
served Kubeflow kinds against kflow-testcluster; with no cluster, that runs stay local."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

import kflow


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "kflow", *args], capture_output=True, text=True, timeout=60, env=env)


def test_doctor_names_kubeconfig_context_user_namespace_and_kinds(cluster):
    kc = yaml.safe_load(open(cluster.kubeconfig))
    ctx = next(c for c in kc["contexts"] if c["name"] == kc["current-context"])
    token = kc["users"][0]["user"]["token"]
    d = kflow.doctor()
    assert d["backend"] == "local" and d["cluster_configured"] is True and d["problem"] is None
    c = d["connection"]
    assert c["via"] == "kubeconfig" and c["files"] == [cluster.kubeconfig]
    assert (c["context"], c["user"]) == (kc["current-context"], ctx["context"]["user"])
    assert c["server"].rstrip("/") == kc["clusters"][0]["cluster"]["server"].rstrip("/")
    assert c["namespace"] == ctx["context"].get("namespace", "default")
    assert d["kinds"] == ["PyTorchJob (kubeflow.org/v1)", "TFJob (kubeflow.org/v1)", "MPIJob (kubeflow.org/v1)"]
    assert d["notebook"] == "kubeflow.org/v1"
    assert d["can_submit"] is True  # the API server's SelfSubjectAccessReview for the namespace

    human = cli("doctor")
    assert human.returncode == 0, human.stderr
    assert f"connection: kubeconfig {cluster.kubeconfig}" in human.stdout
    assert f"user:       {ctx['context']['user']}" in human.stdout
    assert "kinds:      PyTorchJob (kubeflow.org/v1), TFJob (kubeflow.org/v1), MPIJob (kubeflow.org/v1)" in human.stdout
    assert "notebooks:  Notebook (kubeflow.org/v1)" in human.stdout
    assert f"submit:     allowed in {c['namespace']}" in human.stdout
    as_json = cli("doctor", "--json")
    assert json.loads(as_json.stdout) == d
    # Never a credential, in any form.
    for out in (human.stdout + human.stderr, as_json.stdout):
        assert token not in out


def test_doctor_without_operator_says_so_and_exits_1(cluster):
    cluster.admin("PUT", "/admin/faults", {"rules": [{"pathContains": "/apis/kubeflow.org", "errorRate": 1.0, "errorCode": 404}]})
    d = kflow.doctor()
    assert d["kinds"] == [] and d["notebook"] is None
    assert "the Kubeflow Training Operator is not installed here" in d["problem"]
    result = cli("doctor")
    assert result.returncode == 1
    assert "kinds:      none" in result.stdout and "Training Operator is not installed" in result.stderr


def test_doctor_with_no_cluster_says_local_backend(kflow_home, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    d = kflow.doctor()
    assert (d["backend"], d["cluster_configured"], d["connection"], d["problem"]) == ("local", False, None, None)
    assert "runs use the local backend" in d["notes"][0]
    result = cli("doctor")
    assert result.returncode == 0, result.stderr
    assert "cluster:    not configured" in result.stdout and "runs use the local backend" in result.stderr


def test_doctor_names_a_broken_config_that_makes_runs_fail(kflow_home, tmp_path, monkeypatch, project):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    config = kflow_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("url = ")
    result = cli("doctor")
    assert result.returncode != 0
    assert "config.toml" in result.stderr and "line 1" in result.stderr, result.stderr
    run = cli("run", str(project("train.py", "print(1)\n")))
    assert run.returncode == 2 and "config.toml" in run.stderr and "line 1" in run.stderr, run.stderr
    config.write_text("defaultImage = 5\n")
    assert 'expected a string in double quotes, got integer 5' in cli("doctor").stderr
