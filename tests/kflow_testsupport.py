"""Helpers shared by the test folders: the test cluster binary and hand-made wheels. (A plain
module, not a conftest, so every folder imports the same one.)"""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import subprocess
import zipfile

REPO = pathlib.Path(__file__).resolve().parent.parent


def testcluster_binary() -> str:
    """$KFLOW_TESTCLUSTER_BIN (CI), else a fresh `cargo build` (a no-op when up to date, and it
    keeps a stale binary from being tested)."""
    explicit = os.environ.get("KFLOW_TESTCLUSTER_BIN")
    if explicit:
        return explicit
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    subprocess.run(["cargo", "build", "-q", "-p", "kflow-testcluster"], cwd=REPO, check=True)
    return str(target / "debug" / "kflow-testcluster")


def build_wheel(folder: pathlib.Path, name: str, version: str, source: str) -> pathlib.Path:
    """A minimal pure-Python wheel written by hand: tests need neither build tools nor network."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": source.encode(),
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: kflow-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

    def record_line(path: str, data: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"{path},sha256={digest},{len(data)}"

    record = [record_line(p, d) for p, d in files.items()] + [f"{dist}.dist-info/RECORD,,"]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, d in files.items():
            zf.writestr(p, d)
    return path
