"""Shared fixtures: every test gets its own kflow state, cache and config folders, and a small
project on disk. Dependencies come from a wheel built here and served from a local folder, so
no test reaches the network."""

from __future__ import annotations

import base64
import hashlib
import os
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(folder: Path, name: str, version: str, module_source: str) -> Path:
    """A minimal pure-Python wheel, written by hand so tests need neither network nor build tools."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": module_source.encode(),
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: kflow-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(p, d) for p, d in files.items()] + [f"{dist}.dist-info/RECORD,,"]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, d in files.items():
            zf.writestr(p, d)
    return path


@pytest.fixture
def wheelhouse(tmp_path, monkeypatch):
    """pip reads PIP_* from the environment: the job's pip sees only this folder."""
    folder = tmp_path / "wheels"
    build_wheel(folder, "kflowdemo", "1.0", "ANSWER = 42\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder
