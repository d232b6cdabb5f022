"""Fixtures for the namespace tests: one kflow-testcluster per module (a 5,000-object
namespace is costly to fill), KUBECONFIG pointing at it, and the `kubernetes` client and
kubectl as the other tools a user has."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

@pytest.fixture
def kube(cluster):
    from kubernetes import client, config

    api = config.new_client_from_config(cluster.kubeconfig)
    return client.CoreV1Api(api), client.CustomObjectsApi(api)


@pytest.fixture
def kubectl(cluster):
    binary = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or "kubectl"

    def run(*args, input=None, check=True):
        result = subprocess.run([binary, "--kubeconfig", cluster.kubeconfig, *args], input=input,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def cli(cluster):
    def run(*args, check=True, timeout=120):
        result = subprocess.run([sys.executable, "-m", "kflow", *args], capture_output=True, text=True,
                                timeout=timeout, env=dict(os.environ))
        if check and result.returncode != 0:
            raise AssertionError(f"kflow {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    return run
