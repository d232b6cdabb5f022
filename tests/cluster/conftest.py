"""Fixtures for the cluster backend: a kflow-testcluster process per test, KUBECONFIG pointing
at it, and a wheel folder the test pods can see (pip in pods never reaches the network)."""

from __future__ import annotations

import shutil
import uuid

import pytest

from kflow_testsupport import REPO, TestCluster, build_wheel


@pytest.fixture
def wheels():
    # Pods get a private /tmp, so the wheel folder lives under the repo's target/ where the
    # sandbox (a read-only view of the host) can see it.
    folder = REPO / "target" / "cluster-test-wheels" / uuid.uuid4().hex[:10]
    build_wheel(folder, "kflowdemo", "1.0", "ANSWER = 42\n")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path, wheels, kflow_home, monkeypatch):
    c = TestCluster(tmp_path / "cluster", ["--wheel-dir", str(wheels)])
    monkeypatch.setenv("KUBECONFIG", c.kubeconfig)
    monkeypatch.delenv("KFLOW_CONTEXT", raising=False)
    yield c
    c.stop()
