"""Shared fixtures: every test gets its own kflow state, cache and config folders, and a small
project on disk. Dependencies come from a wheel built here and served from a local folder, so
no test reaches the network."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kflow_testsupport import TestCluster, build_wheel


@pytest.fixture
def kflow_home(tmp_path, monkeypatch):
    home = tmp_path / "kflow-home"
    for var, sub in [("KFLOW_STATE_DIR", "state"), ("KFLOW_CACHE_DIR", "cache"), ("KFLOW_CONFIG_DIR", "config")]:
        monkeypatch.setenv(var, str(home / sub))
    for var in ["KFLOW_BACKEND", "KFLOW_DEFAULT_IMAGE", "KFLOW_DEFAULT_NAMESPACE", "KFLOW_AUTO_PVC_FOR_PIP"]:
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    root.mkdir()

    def write(rel: str, text: str) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    write.root = root  # type: ignore[attr-defined]
    return write


@pytest.fixture
def wheelhouse(tmp_path, monkeypatch):
    """pip reads PIP_* from the environment: the job's pip sees only this folder."""
    folder = tmp_path / "wheels"
    build_wheel(folder, "kflowdemo", "1.0", "ANSWER = 42\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """One kflow-testcluster per module (filling a big namespace is costly)."""
    c = TestCluster(tmp_path_factory.mktemp("cluster") / "cluster")
    yield c
    c.stop()


@pytest.fixture
def cluster(shared_cluster, kflow_home, monkeypatch):
    """The module's test cluster, KUBECONFIG pointing at it."""
    monkeypatch.setenv("KUBECONFIG", shared_cluster.kubeconfig)
    monkeypatch.delenv("KFLOW_CONTEXT", raising=False)
    return shared_cluster
