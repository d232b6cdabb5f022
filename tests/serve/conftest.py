"""The served panel's tests use the module's test cluster (tests/conftest.py) and the
`kubernetes` client as another user's tool."""

from __future__ import annotations

import pytest


@pytest.fixture
def custom(cluster):
    from kubernetes import client, config

    return client.CustomObjectsApi(config.new_client_from_config(cluster.kubeconfig))
