"""Fixtures for the cluster backend: a kflow-testcluster process per test, KUBECONFIG pointing
at it, and a wheel folder the test pods can see (pip in pods never reaches the network)."""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import shutil
import subprocess
import time
import uuid
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _binary() -> str:
    explicit = os.environ.get("KFLOW_TESTCLUSTER_BIN")
    if explicit:
        return explicit
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    subprocess.run(["cargo", "build", "-q", "-p", "kflow-testcluster"], cwd=REPO, check=True)
    return str(target / "debug" / "kflow-testcluster")


def build_wheel(folder: pathlib.Path, name: str, version: str, source: str) -> pathlib.Path:
    """A minimal pure-Python wheel written by hand: no build tools, no network."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": source.encode(),
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: kflow-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

    def line(p: str, d: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
        return f"{p},sha256={digest},{len(d)}"

    record = [line(p, d) for p, d in files.items()] + [f"{dist}.dist-info/RECORD,,"]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, d in files.items():
            zf.writestr(p, d)
    return path


class Cluster:
    def __init__(self, state_dir: pathlib.Path, wheels: pathlib.Path):
        self.state_dir = state_dir
        self.kubeconfig = str(state_dir / "kubeconfig")
        env = dict(os.environ)
        crds = REPO.parent / "shared" / "crds"
        if "KFLOW_CRD_DIR" not in env and crds.is_dir():
            env["KFLOW_CRD_DIR"] = str(crds)
        self.log = open(state_dir.parent / f"{state_dir.name}.server.log", "wb")
        self.proc = subprocess.Popen(
            [_binary(), "--port", "0", "--state-dir", str(state_dir), "--kubeconfig-out", self.kubeconfig,
             "--restart-backoff-ms", "200", "--wheel-dir", str(wheels)],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env,
        )
        deadline = time.monotonic() + 30
        while not os.path.exists(self.kubeconfig):
            if self.proc.poll() is not None:
                raise RuntimeError(f"kflow-testcluster exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("kflow-testcluster did not start")
            time.sleep(0.02)

    def admin(self, method: str, path: str, body=None):
        """The cluster's admin API (fault injection) with the static token."""
        import json
        import ssl
        import tempfile
        import urllib.request

        import yaml

        kc = yaml.safe_load(open(self.kubeconfig))
        cluster = kc["clusters"][0]["cluster"]
        token = kc["users"][0]["user"]["token"]
        with tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False) as f:
            f.write(base64.b64decode(cluster["certificate-authority-data"]))
        ctx = ssl.create_default_context(cafile=f.name)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(cluster["server"] + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def wheels():
    # Pods get a private /tmp, so the wheel folder lives under the repo's target/ where the
    # sandbox (a read-only view of the host) can see it.
    folder = REPO / "target" / "cluster-test-wheels" / uuid.uuid4().hex[:10]
    build_wheel(folder, "kflowdemo", "1.0", "ANSWER = 42\n")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path, wheels, kflow_home, monkeypatch):
    c = Cluster(tmp_path / "cluster", wheels)
    monkeypatch.setenv("KUBECONFIG", c.kubeconfig)
    monkeypatch.delenv("KFLOW_CONTEXT", raising=False)
    yield c
    c.stop()
