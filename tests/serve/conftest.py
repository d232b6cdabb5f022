"""A kflow-testcluster per module for the served panel's listings and watches, KUBECONFIG
pointing at it."""

from __future__ import annotations

import pytest

from kflow_testsupport import TestCluster


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    c = TestCluster(tmp_path_factory.mktemp("serve") / "cluster")
    yield c
    c.stop()


@pytest.fixture
def cluster(shared_cluster, kflow_home, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", shared_cluster.kubeconfig)
    monkeypatch.delenv("KFLOW_CONTEXT", raising=False)
    return shared_cluster


@pytest.fixture
def custom(cluster):
    from kubernetes import client, config

    return client.CustomObjectsApi(config.new_client_from_config(cluster.kubeconfig))
