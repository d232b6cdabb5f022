"""Shared by the kernel tests (a module of its own: tests/conftest.py is also named conftest).

Kernelspecs for the kernel tests, in a private JUPYTER_PATH.

- ``kflow-dev``: the Rust dev binary (target/debug/kflow-kernel-dev) running cells through
  kflow-core's local backend (it is its own job supervisor), so the kernel is tested without the
  wheel. Build it first: ``cargo build -p kflow-kernel``.
- ``kflow-dev-process``: the same binary with the plain process runner (python per cell).
- ``kflow``: the shipped spec (``python -m kflow.kernel``); only when kflow._native exposes
  ``kernel_main`` (the wheel glue), otherwise tests using it skip with that reason.

Every kernel gets its own KFLOW_STATE_DIR / KFLOW_CACHE_DIR / KFLOW_CONFIG_DIR, so tests never
touch the user's runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC_SRC = REPO / "kernel-spec" / "kflow"

_root = Path(tempfile.mkdtemp(prefix="kflow-kernel-tests-"))
JUPYTER_DIR = _root / "jupyter"
KFLOW_HOME = _root / "kflow"
for sub in ("state", "cache", "config"):
    (KFLOW_HOME / sub).mkdir(parents=True, exist_ok=True)

KFLOW_ENV = {
    "KFLOW_STATE_DIR": str(KFLOW_HOME / "state"),
    "KFLOW_CACHE_DIR": str(KFLOW_HOME / "cache"),
    "KFLOW_CONFIG_DIR": str(KFLOW_HOME / "config"),
    "KFLOW_PYTHON": sys.executable,
}


def dev_binary() -> Path | None:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        p = target / profile / "kflow-kernel-dev"
        if p.is_file():
            return p
    return None


def wheel_kernel_available() -> bool:
    try:
        from kflow import _native  # type: ignore[attr-defined]
    except Exception:
        return False
    return hasattr(_native, "kernel_main")


def _write_spec(name: str, argv: list[str], display: str) -> None:
    d = JUPYTER_DIR / "kernels" / name
    d.mkdir(parents=True, exist_ok=True)
    spec = json.loads((SPEC_SRC / "kernel.json").read_text())
    spec.update({"argv": argv, "display_name": display, "env": KFLOW_ENV})
    (d / "kernel.json").write_text(json.dumps(spec, indent=1))
    for logo in SPEC_SRC.glob("logo-*.png"):
        shutil.copy(logo, d / logo.name)


_bin = dev_binary()
if _bin is not None:
    _write_spec("kflow-dev", [str(_bin), "--runner", "kflow", "-f", "{connection_file}"], "kflow (dev)")
    _write_spec("kflow-dev-process", [str(_bin), "--runner", "process", "-f", "{connection_file}"], "kflow (dev, process)")
# The shipped spec, unchanged except for the env: jupyter_client swaps "python" for sys.executable.
_write_spec("kflow", json.loads((SPEC_SRC / "kernel.json").read_text())["argv"], "Kubeflow (kflow)")
_write_spec("kflow-session", ["python", "-m", "kflow.kernel", "--session", "-f", "{connection_file}"], "Kubeflow session (kflow)")

os.environ["JUPYTER_PATH"] = str(JUPYTER_DIR) + os.pathsep + os.environ.get("JUPYTER_PATH", "")
# Keep the machine's own kernels and config out of the way.
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

NO_DEV = "target/debug/kflow-kernel-dev is not built: run `cargo build -p kflow-kernel` first"
NO_WHEEL = "the kflow wheel (kflow._native.kernel_main) is not installed in this interpreter: maturin build + pip install, as .ci/run does"

KERNELS = [
    pytest.param("kflow-dev", marks=pytest.mark.skipif(_bin is None, reason=NO_DEV)),
    pytest.param("kflow", marks=pytest.mark.skipif(not wheel_kernel_available(), reason=NO_WHEEL)),
]


def make_project(tmp_path: Path) -> Path:
    """A notebook folder: the project every cell's job packages."""
    d = tmp_path / "project"
    d.mkdir()
    (d / "helper.py").write_text("GREETING = 'hello from the project'\n")
    return d


def run_cell(kc, code: str, timeout: float = 60, **kw) -> tuple[dict, list[dict]]:
    """Execute and collect (reply, iopub messages up to idle)."""
    msgs: list[dict] = []
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=msgs.append, **kw)
    return reply, msgs


def stream_text(msgs: list[dict], name: str = "stdout") -> str:
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == name)

