"""The namespace through a sign-in only (no kubeconfig): listings, a PVC made and removed, the
notebook images the deployment's spawner offers (read through the gateway) — and no secret in
any output, file or process argument."""

from __future__ import annotations

import json

from .auth_helpers import files_containing, kflow
from .test_login import USER, ArgsWatcher, stored_secrets

NAMESPACE = "kubeflow-user-example-com"


def test_signed_in_namespace_commands(realm, secret_service, sandbox, sentinel):
    env = secret_service.env(sandbox["env"])
    env.pop("KUBECONFIG", None)
    outputs = []
    with ArgsWatcher() as ps:
        res = kflow(["login", "--url", realm.url, "--username", USER, "--password-stdin"], env, input=sentinel + "\n")
        assert res.returncode == 0, res.stderr
        images = kflow(["notebook", "images", "--json"], env)
        outputs.append(images.stdout + images.stderr)
        offered = json.loads(images.stdout)
        assert offered["from_deployment"] is True, offered
        assert "registry.example.com/ml-team/jupyter-ml-team:2026.11" in offered["options"]
        made = kflow(["pvc", "create", "signed-in-data", "-n", NAMESPACE, "--size", "1Gi"], env)
        outputs.append(made.stdout + made.stderr)
        assert made.returncode == 0, made.stderr
        listed = kflow(["ls", "pvcs", "-n", NAMESPACE, "--json"], env)
        outputs.append(listed.stdout + listed.stderr)
        assert "signed-in-data" in [p["name"] for p in json.loads(listed.stdout)["items"]]
        jobs = kflow(["ls", "jobs", "-n", NAMESPACE], env)
        outputs.append(jobs.stdout + jobs.stderr)
        assert jobs.returncode == 0, jobs.stderr
        # The deployment's own image needs no --custom-image; an unknown one names the offered ones.
        odd = kflow(["notebook", "create", "nb-odd", "-n", NAMESPACE, "--image", "other/img:1", "--no-wait"], env)
        outputs.append(odd.stdout + odd.stderr)
        assert odd.returncode == 2 and "jupyter-ml-team:2026.11" in odd.stderr
        gone = kflow(["pvc", "delete", "signed-in-data", "-n", NAMESPACE], env)
        outputs.append(gone.stdout + gone.stderr)
        assert gone.returncode == 0, gone.stderr
        tokens = stored_secrets(secret_service.entries())
        kflow(["logout"], env)
    needles = [sentinel, *tokens]
    assert files_containing(sandbox["root"], needles) == []
    assert not [o for o in outputs if any(n in o for n in needles)]
    assert not [s for s in ps.samples if any(n in s for n in needles)]
