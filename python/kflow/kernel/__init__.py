"""The kflow Jupyter kernel's launcher: `python -m kflow.kernel -f {connection_file}` (the
kernelspec's argv). The kernel itself is Rust (kflow._native.kernel_main); this package only
passes it the connection file. The kernelspec ships in the wheel's data dir; `kflow kernel
install` (the Rust CLI) writes an absolute-path one for other setups."""

from __future__ import annotations

import os
import sys
from typing import List, Optional


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
