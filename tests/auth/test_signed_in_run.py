"""A cluster run made with nothing but a sign-in (no kubeconfig file anywhere) — and the sentinel
search over everything it produced: the objects kflow created in the namespace (jobs,
ConfigMaps, PVCs, pods with their env, events), the pods' logs, the local run record and log
copies, kflow's own log, every output, and every process's arguments while it ran."""

from __future__ import annotations

import json

import kubernetes
import pytest

from .auth_helpers import files_containing, kflow
from .test_login import USER, ArgsWatcher, stored_secrets

NAMESPACE = "kubeflow-user-example-com"


def everything_in(namespace: str, admin_kubeconfig) -> str:
    """Every object of the namespace as JSON, plus each pod's log, read with the admin's token."""
    api = kubernetes.config.new_client_from_config(config_file=str(admin_kubeconfig))
    core, custom = kubernetes.client.CoreV1Api(api), kubernetes.client.CustomObjectsApi(api)
    dumps = []
    for lister in (core.list_namespaced_config_map, core.list_namespaced_secret, core.list_namespaced_persistent_volume_claim,
                   core.list_namespaced_pod, core.list_namespaced_event, core.list_namespaced_service):
        dumps.append(json.dumps(api.sanitize_for_serialization(lister(namespace))))
    for plural in ("pytorchjobs", "tfjobs", "mpijobs"):
        dumps.append(json.dumps(custom.list_namespaced_custom_object("kubeflow.org", "v1", namespace, plural)))
    for pod in core.list_namespaced_pod(namespace).items:
        dumps.append(core.read_namespaced_pod_log(pod.metadata.name, namespace))
    return "\n".join(dumps)


def test_a_signed_in_cluster_run_leaves_no_secret_anywhere(realm, secret_service, sandbox, sentinel, tmp_path):
    env = secret_service.env(sandbox["env"])
    env.pop("KUBECONFIG", None)
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("import os, sys\nprint('rank', os.environ['RANK'], 'args', sys.argv[1:])\n")
    outputs = []
    with ArgsWatcher() as ps:
        res = kflow(["login", "--url", realm.url, "--username", USER, "--password-stdin"], env, input=sentinel + "\n")
        outputs.append(res.stdout + res.stderr)
        assert res.returncode == 0, res.stderr
        run = kflow(["run", str(project / "train.py"), "--cluster", "--namespace", NAMESPACE, "--name", "signed-in",
                     "--workers", "2", "--", "--lr", "0.1"], env, timeout=180)
        outputs.append(run.stdout + run.stderr)
        assert run.returncode == 0, run.stdout + run.stderr
        logs = kflow(["logs", "signed-in"], env)
        outputs.append(logs.stdout + logs.stderr)
        assert "[master-0] rank 0 args ['--lr', '0.1']" in logs.stdout
        assert "[worker-0] rank 1 args ['--lr', '0.1']" in logs.stdout
        described = kflow(["describe", "signed-in", "--json"], env)
        outputs.append(described.stdout + described.stderr)
        assert json.loads(described.stdout)["status"]["phase"] == "Succeeded", described.stdout
        tokens = stored_secrets(secret_service.entries())
        assert len(tokens) >= 3
        cluster_side = everything_in(NAMESPACE, realm.admin_kubeconfig)
        assert "signed-in-code" in cluster_side and "rank 1 args" in cluster_side  # the search covers real objects
        out = kflow(["logout"], env)
        outputs.append(out.stdout + out.stderr)
    needles = [sentinel, *tokens]
    leaks = [n[:24] for n in needles if n in cluster_side]
    assert leaks == [], "a secret in an object or a pod log on the cluster"
    assert files_containing(sandbox["root"], needles) == []
    assert not [o for o in outputs if any(n in o for n in needles)]
    assert not [s for s in ps.samples if any(n in s for n in needles)]


def test_a_namespace_that_is_not_yours_is_refused_before_anything_is_uploaded(realm, secret_service, sandbox, sentinel, tmp_path):
    env = secret_service.env(sandbox["env"])
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('never runs')\n")
    assert kflow(["login", "--url", realm.url, "--username", USER, "--password-stdin"], env, input=sentinel + "\n").returncode == 0
    try:
        run = kflow(["run", str(project / "train.py"), "--cluster", "--namespace", "someone-else", "--name", "not-mine"], env)
    finally:
        kflow(["logout"], env)
    # Asked with a SelfSubjectAccessReview before packaging: the job kind is named, not the
    # first object a submission happens to create.
    assert run.returncode == 1, run.stdout + run.stderr
    assert 'you are not allowed to create pytorchjobs in namespace "someone-else"' in run.stderr, run.stderr
    assert "Fix: ask your cluster admin to grant you create on pytorchjobs" in run.stderr
    assert "error[KF-" in run.stderr and "Traceback" not in run.stderr
    assert not (sandbox["dirs"]["state"] / "runs" / "not-mine").exists()
    api = kubernetes.config.new_client_from_config(config_file=str(realm.admin_kubeconfig))
    leftovers = kubernetes.client.CoreV1Api(api).list_namespaced_config_map("someone-else").items
    assert leftovers == []


def test_sign_in_with_only_the_kubeflow_url_names_the_api_server_fix(realm, secret_service, sandbox, sentinel, tmp_path):
    env = secret_service.env(sandbox["env"])
    env.pop("KFLOW_API_SERVER", None)
    env.pop("KUBECONFIG", None)
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('found the API server')\n")
    assert kflow(["login", "--url", realm.url, "--username", USER, "--password-stdin"], env, input=sentinel + "\n").returncode == 0
    try:
        run = kflow(["run", str(project / "train.py"), "--cluster", "--namespace", NAMESPACE, "--name", "no-api"], env)
        assert run.returncode != 0
        assert f"{realm.url} is not a Kubernetes API server" in run.stderr, run.stderr
        assert "--api-server" in run.stderr and "Traceback" not in run.stderr
        assert "Training Operator is not installed" not in run.stderr
        doctor = kflow(["doctor"], env)
        assert "is not a Kubernetes API server" in doctor.stdout + doctor.stderr, doctor.stdout + doctor.stderr
        # With the API server named at sign-in, the same run goes through.
        login = kflow(["login", "--url", realm.url, "--api-server", realm.api, "--username", USER, "--password-stdin"],
                      env, input=sentinel + "\n")
        assert login.returncode == 0, login.stderr
        run = kflow(["run", str(project / "train.py"), "--cluster", "--namespace", NAMESPACE, "--name", "with-api"], env, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "found the API server" in run.stdout
    finally:
        kflow(["logout"], env)
