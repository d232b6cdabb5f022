"""The kflow Jupyter kernel's launcher: `python -m kflow.kernel -f {connection_file}` (the
kernelspec's argv). The kernel itself is Rust (kflow._native.kernel_main); this package only
passes it the connection file and installs kernelspecs for setups that do not pick up the one
shipped in the wheel."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

KERNEL_NAME = "kflow"
DISPLAY_NAME = "Kubeflow (kflow)"


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kflow.kernel", description="Run the kflow Jupyter kernel.")
    parser.add_argument("-f", "--connection-file", required=True, help="the connection file jupyter_client wrote")
    ns = parser.parse_args(argv)
    # Reported as language_info.version; the local backend's jobs run with this interpreter.
    os.environ.setdefault("KFLOW_PYTHON_VERSION", "%d.%d.%d" % sys.version_info[:3])
    from kflow import _native

    _native.kernel_main(ns.connection_file)
    return 0


def spec(executable: Optional[str] = None) -> dict:
    """kernel.json content with an absolute interpreter (for installs outside sys.prefix)."""
    return {
        "argv": [executable or sys.executable, "-m", "kflow.kernel", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }


def _shipped_logos() -> List[Path]:
    for base in (Path(sys.prefix), Path(__file__).resolve().parents[3]):
        for folder in (base / "share/jupyter/kernels" / KERNEL_NAME, base / "kernel-spec" / KERNEL_NAME):
            logos = sorted(folder.glob("logo-*.png"))
            if logos:
                return logos
    return []


def install(user: bool = False, sys_prefix: bool = False, name: str = KERNEL_NAME, prefix: Optional[str] = None) -> str:
    """Writes an absolute-path kernelspec (`kflow kernel install`) and returns its folder."""
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        folder.mkdir()
        data = spec()
        if name != KERNEL_NAME:
            data["display_name"] = f"{DISPLAY_NAME} [{name}]"
        (folder / "kernel.json").write_text(json.dumps(data, indent=2) + "\n")
        for logo in _shipped_logos():
            shutil.copy(logo, folder / logo.name)
        if sys_prefix:
            prefix = sys.prefix
        return KernelSpecManager().install_kernel_spec(str(folder), kernel_name=name, user=user, prefix=prefix)
