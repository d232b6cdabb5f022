"""The `kflow` command as a user types it: exit codes, output, errors with event IDs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

KFLOW = [sys.executable, "-m", "kflow"]


def kflow_cmd(*args, **kw):
    return subprocess.run([*KFLOW, *args], capture_output=True, text=True, timeout=120, **kw)


def test_run_streams_and_exits_with_the_jobs_outcome(kflow_home, project):
    ok = project("ok.py", "print('fine')\n")
    result = kflow_cmd("run", str(ok), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "[master-0] fine" in result.stdout and "[worker-0] fine" in result.stdout
    assert "local backend" in result.stderr and "Succeeded" in result.stderr

    bad = project("bad.py", "raise SystemExit(4)\n")
    result = kflow_cmd("run", str(bad))
    assert result.returncode == 1
    assert "Failed" in result.stderr and "exited with code 4" in result.stderr


def test_detach_then_logs_status_jobs_restart_delete(kflow_home, project):
    script = project("train.py", "import sys; print('args', sys.argv[1:])\n")
    result = kflow_cmd("run", "--detach", str(script), "--", "--epochs", "2")
    assert result.returncode == 0, result.stderr
    name = result.stdout.strip()
    logs = kflow_cmd("logs", name, "-f")
    assert logs.stdout.strip() == "args ['--epochs', '2']"
    status = json.loads(kflow_cmd("status", name, "--json").stdout)
    assert status["phase"] == "Succeeded" and status["name"] == name
    human = kflow_cmd("status", name).stdout
    assert "phase:    Succeeded" in human
    jobs = json.loads(kflow_cmd("jobs", "--json").stdout)
    assert [j["name"] for j in jobs] == [name]
    restarted = kflow_cmd("restart", name)
    assert restarted.returncode == 0 and "args ['--epochs', '2']" in restarted.stdout
    logs_json = [json.loads(l) for l in kflow_cmd("logs", name, "--json").stdout.splitlines()]
    assert logs_json[0]["replica"] == "master-0" and logs_json[0]["severity"] == "normal"
    assert kflow_cmd("delete", name).returncode == 0
    assert json.loads(kflow_cmd("jobs", "--json").stdout) == []


def test_errors_carry_an_event_id_found_in_the_log_and_no_traceback(kflow_home, project):
    script = project("train.py", "print(1)\n")
    result = kflow_cmd("run", str(script), "--name", "Bad_Name")
    assert result.returncode == 2
    match = re.search(r"error\[(KF-[0-9A-Z]{6})\]", result.stderr)
    assert match, result.stderr
    assert "Traceback" not in result.stderr and "Fix:" in result.stderr
    assert match.group(1) in (kflow_home / "state" / "kflow.log").read_text()

    missing = kflow_cmd("logs", "no-such-job")
    assert missing.returncode == 2 and "kflow jobs" in missing.stderr

    usage = kflow_cmd("run", str(script), "--gpu", "two")
    assert usage.returncode == 2 and "invalid value 'two'" in usage.stderr


def test_yaml_preview_creates_nothing(kflow_home, project):
    script = project("train.py", "print(1)\n")
    result = kflow_cmd("yaml", str(script), "--gpu", "1", "--pip", "numpy", "--name", "preview-job")
    assert result.returncode == 0, result.stderr
    assert "kind: PyTorchJob" in result.stdout and "nvidia.com/gpu: '1'" in result.stdout
    assert "name: preview-job" in result.stdout
    assert json.loads(kflow_cmd("jobs", "--json").stdout) == []


def test_templates_listing(kflow_home, project):
    project(".kflow/templates/geo.json", '{"gpu": 1}')
    result = kflow_cmd("templates", "--json", cwd=project.root)
    assert [t["name"] for t in json.loads(result.stdout)] == ["geo"]
    script = project("train.py", "print(1)\n")
    result = kflow_cmd("yaml", str(script), "--template", "geo")
    assert "nvidia.com/gpu: '1'" in result.stdout


def test_help_lists_the_commands():
    result = kflow_cmd("--help")
    for command in ["run", "logs", "status", "jobs", "delete", "restart", "yaml", "templates"]:
        assert command in result.stdout


def test_ctrl_c_without_a_terminal_cancels_the_job(kflow_home, project):
    import signal
    import time

    script = project("long.py", "import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([*KFLOW, "run", str(script)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "cancelled" in err and "Traceback" not in err
    name = json.loads(kflow_cmd("jobs", "--json").stdout)[0]["name"]
    status = json.loads(kflow_cmd("status", name, "--json").stdout)
    assert status["phase"] == "Failed" and status["reason"] == "Cancelled"


def test_kernel_install_writes_an_absolute_spec_jupyter_finds(tmp_path):
    import os
    import sys

    data = tmp_path / "jupyter-data"
    env = {**os.environ, "JUPYTER_DATA_DIR": str(data)}
    result = kflow_cmd("kernel", "install", "--user", "--name", "kflow-test", env=env)
    assert result.returncode == 0, result.stderr
    spec = json.loads((data / "kernels" / "kflow-test" / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and spec["interrupt_mode"] == "message"
    listed = subprocess.run(
        [sys.executable, "-c", "import json; from jupyter_client.kernelspec import KernelSpecManager as M; print(json.dumps(M().find_kernel_specs()))"],
        capture_output=True, text=True, env=env, check=True,
    )
    assert "kflow-test" in json.loads(listed.stdout)
    session = json.loads((data / "kernels" / "kflow-test-session" / "kernel.json").read_text())
    assert session["argv"][:4] == [sys.executable, "-m", "kflow.kernel", "--session"]
    assert session["display_name"] == "Kubeflow session (kflow)"

    prefix = tmp_path / "prefix"
    assert kflow_cmd("kernel", "install", "--prefix", str(prefix)).returncode == 0
    assert (prefix / "share/jupyter/kernels/kflow/logo-64x64.png").stat().st_size > 0
    bad = kflow_cmd("kernel", "install", "--name", "bad name", "--prefix", str(prefix))
    assert bad.returncode == 2 and "kernel name" in bad.stderr
