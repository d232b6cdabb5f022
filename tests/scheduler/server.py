"""A real jupyter_server with jupyter-scheduler from PyPI, driven through its REST API (a plain
module: bench/bench_scheduler.py uses it too)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KFLOW_CONFIG = (
    'c.SchedulerApp.scheduler_class = "kflow.scheduler.KflowScheduler"\n'
    'c.SchedulerApp.environment_manager_class = "kflow.scheduler.KflowEnvironmentManager"\n'
)


class SchedulerServer:
    """`config`: the jupyter_server_config.py text (kflow's backend by default)."""

    def __init__(self, root: Path, logs: Path, config_text: str = KFLOW_CONFIG):
        self.root = root
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = root.parent / "jupyter_server_config.py"
        config.write_text(config_text)
        self.log = open(logs, "wb")
        env = dict(os.environ, JUPYTER_TOKEN=self.token)
        env["JUPYTER_CONFIG_DIR"] = str(root.parent / "jupyter-config")
        env["JUPYTER_DATA_DIR"] = str(root.parent / "jupyter-data")
        env["JUPYTER_RUNTIME_DIR"] = str(root.parent / "jupyter-runtime")
        for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
            Path(env[var]).mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--config={config}", "--no-browser",
             f"--ServerApp.port={self.port}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}",
             "--ServerApp.port_retries=0", "--allow-root"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=root,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.request("GET", "/scheduler/config")
                break
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter_server did not start; see {logs}")
                time.sleep(0.3)

    def request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            return json.loads(text) if text else None

    def create(self, notebook: str, **fields) -> str:
        body = {"input_uri": notebook, "runtime_environment_name": fields.pop("environment", "kflow"), "name": fields.pop("name", "nb"),
                "output_formats": fields.pop("output_formats", ["ipynb"]), **fields}
        return self.request("POST", "/scheduler/jobs", body)["job_id"]

    def job(self, job_id: str):
        return self.request("GET", f"/scheduler/jobs/{job_id}")

    def wait(self, job_id: str, statuses=("COMPLETED", "FAILED", "STOPPED"), timeout=180):
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            # A new job reads STOPPED (the ORM's default) until its process starts it.
            if job["status"] in statuses and (job["status"] != "STOPPED" or job.get("start_time")):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(0.3)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def outputs_of(job):
    return {f["file_format"]: f["file_path"] for f in job["job_files"]}


def downloaded(server, job_id, *expected: str):
    """What the UI's download does: the staged outputs copied into the job's folder (by a
    process of jupyter-scheduler's, so they are waited for)."""
    server.request("GET", f"/scheduler/jobs/{job_id}/download_files?redownload=true")
    deadline = time.monotonic() + 30
    while True:
        job = server.job(job_id)
        paths = [f["file_path"] for f in job["job_files"]]
        folder = server.root / Path(next(p for p in paths if p)).parent if any(paths) else None
        if all(paths) and folder and all((folder / e).exists() for e in expected):
            return job
        assert time.monotonic() < deadline, f"outputs not downloaded: {job['job_files']}"
        time.sleep(0.2)


def absolute(server, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else server.root / p


def wait_until_executing(name: str, notebook: str, timeout: float = 90) -> None:
    """Until the kflow job `name` exists and its runner says it executes `notebook` (a cell's
    own output goes into the notebook, not the job's log)."""
    import kflow

    deadline = time.monotonic() + timeout
    while True:
        try:
            if any(f"executing {notebook}" in line for line in kflow.get(name).logs()):
                return
        except kflow.JobNotFoundError:
            pass
        assert time.monotonic() < deadline, f"the kflow job {name} never started {notebook}"
        time.sleep(0.2)
