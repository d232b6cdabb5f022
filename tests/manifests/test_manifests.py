"""Generated manifests against the real CRD schemas (KFLOW_CRD_DIR, CI: ../shared/crds), and
the startup chain executed for real with stand-ins for python, pip and apt-get."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

import kflow

CRD_DIR = os.environ.get("KFLOW_CRD_DIR")
CRD_FILES = {"PyTorchJob": "kubeflow.org_pytorchjobs.yaml", "TFJob": "kubeflow.org_tfjobs.yaml", "MPIJob": "kubeflow.org_mpijobs.yaml"}


def crd_schema(kind: str, version: str):
    crd = yaml.safe_load(Path(CRD_DIR, CRD_FILES[kind]).read_text())
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise AssertionError(f"{kind} {version} not in the CRD")


@pytest.mark.skipif(not CRD_DIR, reason="set KFLOW_CRD_DIR to the Kubeflow CRDs (CI sets ../shared/crds)")
@pytest.mark.parametrize("kind", ["pytorch", "tf", "mpi"])
@pytest.mark.parametrize("code_mode", ["targz", "configmap"])
def test_job_validates_against_its_crd(kflow_home, project, kind, code_mode):
    import jsonschema

    script = project("train.py", "print(1)\n")
    objects = kflow.manifests(
        script, kind=kind, code_mode=code_mode, gpu=1, cpu="2", mem="4Gi", workers=3,
        pip=["numpy"], apt=["curl"], env={"A": "1"}, args=["--x", "1"], namespace="team-a",
    )
    job = objects[-1]
    schema = crd_schema(job["kind"], job["apiVersion"].split("/")[1])
    jsonschema.validate(job, schema)
    kinds = [o["kind"] for o in objects]
    assert kinds == ["PersistentVolumeClaim", "ConfigMap", job["kind"]]


def test_preview_elides_code_and_shows_digest(kflow_home, project):
    script = project("train.py", "print(1)\n")
    text = kflow.yaml(script)
    assert "filled in at submission" in text and "sha256" in text


def test_startup_chain_runs_and_passes_user_strings_literally(kflow_home, project, tmp_path):
    """Runs the container script from the manifest with PATH stand-ins that record their argv."""
    script = project("train.py", "print(1)\n")
    # Valid PEP 508 (a marker's quoted value may hold anything), still hostile to a shell.
    hostile_pip = "numpy; sys_platform != '$(touch PWNED)' and os_name != \"`touch PWNED3`\""
    hostile_arg = "$(touch PWNED2)"
    objects = kflow.manifests(script, pip=[hostile_pip, "torch>=2"], apt=["curl"], args=[hostile_arg, "it's"])
    container = objects[-1]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["/bin/sh", "-c"]
    chain = container["command"][2]

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "calls"
    for tool in ["python", "apt-get", "tar"]:
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "{tool}" "$@" "--" >> {record}\n')
        stub.chmod(0o755)
    work = tmp_path / "root"
    chain = chain.replace("/workspace", str(work / "workspace")).replace("/kflow/code", str(work / "code"))
    subprocess.run(["/bin/sh", "-c", chain], check=True, cwd=tmp_path, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})

    calls = record.read_text().split("--\n")
    argvs = [c.strip("\n").split("\n") for c in calls if c.strip()]
    assert argvs[0][:2] == ["apt-get", "update"]
    assert argvs[1][-1] == "curl"
    assert argvs[2] == ["python", "-m", "pip", "install", "--disable-pip-version-check", hostile_pip, "torch>=2"]
    assert argvs[3][0] == "tar"
    assert argvs[4] == ["python", "-u", "train.py", hostile_arg, "it's"]
    assert not list(tmp_path.rglob("PWNED*"))
