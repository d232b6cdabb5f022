"""Fixtures of the kernel tests; the kernelspecs and helpers are in kernel_harness.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .kernel_harness import KERNELS, _root, make_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A notebook folder: the project every cell's job packages."""
    return make_project(tmp_path)


@pytest.fixture(params=KERNELS)
def kernel_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def kernel(kernel_name: str, project: Path):
    """(KernelManager, BlockingKernelClient) started in the project folder."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=kernel_name, cwd=str(project), startup_timeout=30)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_root, ignore_errors=True)
