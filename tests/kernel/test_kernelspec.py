"""The shipped kernelspec, its logos and the wheel's data-dir links to them. `kflow kernel
install` is tested with the CLI (tests/cli/test_cli.py)."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from .kernel_harness import REPO

SPEC_DIR = REPO / "kernel-spec" / "kflow"


def test_kernel_json() -> None:
    spec = json.loads((SPEC_DIR / "kernel.json").read_text())
    assert spec["argv"] == ["python", "-m", "kflow.kernel", "-f", "{connection_file}"]
    assert spec["display_name"] == "Kubeflow (kflow)"
    assert spec["language"] == "python"
    assert spec["interrupt_mode"] == "message"


@pytest.mark.parametrize("size", [32, 64])
def test_logos_are_pngs_of_their_size(size: int) -> None:
    data = (SPEC_DIR / f"logo-{size}x{size}.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (size, size)


def test_wheel_data_dir_points_at_the_spec() -> None:
    wheel_dir = REPO / "kernel-spec/wheel-data/data/share/jupyter/kernels/kflow"
    if not wheel_dir.exists():
        pytest.skip("kernel-spec/wheel-data is not set up")
    for name in ("kernel.json", "logo-32x32.png", "logo-64x64.png"):
        assert (wheel_dir / name).read_bytes() == (SPEC_DIR / name).read_bytes()


def test_wheel_installs_the_spec_where_jupyter_looks() -> None:
    """`pip install kflow` puts the spec in sys.prefix/share/jupyter/kernels (the data dir),
    which is on Jupyter's (and VS Code's) search path."""
    from .kernel_harness import NO_WHEEL, wheel_kernel_available

    if not wheel_kernel_available():
        pytest.skip(NO_WHEEL)
    jupyter_core_paths = pytest.importorskip("jupyter_core.paths")
    installed = Path(sys.prefix) / "share/jupyter/kernels/kflow"
    assert json.loads((installed / "kernel.json").read_text()) == json.loads((SPEC_DIR / "kernel.json").read_text())
    assert (installed / "logo-64x64.png").read_bytes() == (SPEC_DIR / "logo-64x64.png").read_bytes()
    assert str(Path(sys.prefix) / "share/jupyter") in jupyter_core_paths.jupyter_path()
