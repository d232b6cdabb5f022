"""Helpers shared by the test folders: the test cluster binary and hand-made wheels. (A plain
module, not a conftest, so every folder imports the same one.)"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import ssl
import subprocess
import tempfile
import time
import urllib.request
import zipfile

import yaml

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


class TestCluster:
    """A running kflow-testcluster process: `kubeconfig` is a file kubectl, the kubernetes client
    and kflow accept; `admin()` drives its admin API (faults, compaction) with the static token."""

    __test__ = False  # not a pytest test class

    def __init__(self, state_dir: pathlib.Path, extra_args=()):
        self.state_dir = state_dir
        self.kubeconfig = str(state_dir / "kubeconfig")
        env = dict(os.environ)
        crds = REPO.parent / "shared" / "crds"
        if "KFLOW_CRD_DIR" not in env and crds.is_dir():
            env["KFLOW_CRD_DIR"] = str(crds)
        self.log = open(state_dir.parent / f"{state_dir.name}.server.log", "wb")
        self.proc = subprocess.Popen(
            [testcluster_binary(), "--port", "0", "--state-dir", str(state_dir),
             "--kubeconfig-out", self.kubeconfig, "--restart-backoff-ms", "200", *extra_args],
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
        kc = yaml.safe_load(open(self.kubeconfig))
        cluster = kc["clusters"][0]["cluster"]
        token = kc["users"][0]["user"]["token"]
        ctx = None
        if "certificate-authority-data" in cluster:
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


EXAMPLE = REPO / "examples" / "mnist-lite" / "train.py"


def final_weights_by_replica(log_lines) -> dict:
    """The example's closing `final weights … sha256 …` line per replica, from `[replica] text`
    lines (or bare text for a single replica)."""
    out = {}
    for line in log_lines:
        replica, _, text = line.partition("] ") if line.startswith("[") else ("[master-0", "", line)
        if text.startswith("final weights "):
            out[replica.lstrip("[")] = text
    return out


# A job that leaves files for kflow to fetch and waits to be released, as the scheduled-notebook
# runner does: what `Job.exec` and `Job.copy_from` exist for.
HOLDING_SCRIPT = """\
import os, time
os.makedirs('out/sub', exist_ok=True)
open('out/a.txt', 'w').write('alpha')
open('out/sub/b.bin', 'wb').write(bytes(range(256)) * 8192)
os.symlink('/etc/passwd', 'out/passwd')
open('out/ready', 'w').close()
while not os.path.exists('release'):
    time.sleep(0.05)
print('released', flush=True)
"""


def exercise_exec_and_copy(job, dest: pathlib.Path, cli_prefix) -> None:
    """`Job.exec`, `Job.copy_from` and their CLI commands on a running holding job; the same
    on every backend. `cli_prefix`: the argv that runs kflow's CLI."""
    import kflow

    deadline = time.monotonic() + 90
    while True:
        try:
            if job.exec(["test", "-e", "out/ready"]).exit_code == 0:
                break
        except kflow.ConflictError:  # not running yet
            pass
        assert time.monotonic() < deadline, f"the job never got ready: {job.status}"
        time.sleep(0.2)
    copied = job.copy_from("out", str(dest))
    assert sorted(copied.files) == ["a.txt", "ready", "sub/b.bin"], copied
    assert copied.bytes == 5 + 256 * 8192
    assert copied.skipped == ["passwd (a symbolic link)"]
    assert (dest / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 8192
    assert not (dest / "passwd").exists()
    # Arguments are data: nothing a user writes is run by a shell.
    echoed = job.exec(["echo", "$(touch PWNED); `id`"])
    assert (echoed.exit_code, echoed.stdout) == (0, "$(touch PWNED); `id`\n")
    assert job.exec(["sh", "-c", "echo oops >&2; exit 3"]) == kflow.ExecResult(exit_code=3, stdout="", stderr="oops\n")
    assert job.exec(["test", "-e", "PWNED"]).exit_code == 1
    with pytest_raises(kflow.ValidationError, "has no replica \"worker-7\" (it has master-0)"):
        job.exec(["true"], replica="worker-7")
    with pytest_raises(kflow.ValidationError, "no command given"):
        job.exec([])
    cli = subprocess.run([*cli_prefix, "exec", job.name, "--", "cat", "out/a.txt"], capture_output=True, text=True, timeout=60)
    assert (cli.returncode, cli.stdout) == (0, "alpha"), cli.stderr
    cli = subprocess.run([*cli_prefix, "copy-from", job.name, "out/sub", str(dest / "cli")], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "copied 1 files" in cli.stderr + cli.stdout, cli.stderr
    assert (dest / "cli" / "b.bin").stat().st_size == 256 * 8192
    assert job.exec(["touch", "release"]).exit_code == 0
    assert job.wait(timeout=60).succeeded
    with pytest_raises(kflow.ConflictError, "replica master-0 of job"):
        job.copy_from("out", str(dest / "late"))


def pytest_raises(cls, words: str):
    import pytest

    return pytest.raises(cls, match=__import__("re").escape(words))
