"""The local backend end to end, through the public Python API: real processes, real logs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import kflow


def lines(job, follow=True):
    return list(job.logs(follow=follow))


def test_run_streams_logs_and_succeeds(kflow_home, project):
    script = project("train.py", """
        import sys
        print("hello from kflow")
        print("to stderr", file=sys.stderr)
        print("args", sys.argv[1:])
    """)
    job = kflow.run(script, args=["--lr", "0.1"])
    assert job.name.startswith("train-")
    out = lines(job)
    assert "hello from kflow" in out and "to stderr" in out
    assert "args ['--lr', '0.1']" in out
    status = job.wait(timeout=60)
    assert status.phase == "Succeeded" and status.succeeded
    assert status.replicas[0].exit_code == 0
    assert kflow.get(job.name).status.phase == "Succeeded"
    assert [j.name for j in kflow.jobs()] == [job.name]


def test_two_replicas_see_the_operator_environment(kflow_home, project):
    script = project("dist.py", """
        import os
        keys = ["RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PET_NNODES", "PET_NODE_RANK", "PYTHONUNBUFFERED"]
        print(" ".join(f"{k}={os.environ.get(k)}" for k in keys))
    """)
    job = kflow.run(script, workers=2, wait=True)
    assert job.status.phase == "Succeeded"
    out = lines(job, follow=False)
    master = [l for l in out if l.startswith("[master-0]")][0]
    worker = [l for l in out if l.startswith("[worker-0]")][0]
    assert "RANK=0 WORLD_SIZE=2" in master and "RANK=1 WORLD_SIZE=2" in worker
    assert "PET_NNODES=2" in master and "PET_NODE_RANK=1" in worker and "PYTHONUNBUFFERED=1" in worker
    port = master.split("MASTER_PORT=")[1].split()[0]
    assert f"MASTER_PORT={port}" in worker and "MASTER_ADDR=127.0.0.1" in worker


def test_tfjob_gets_tf_config(kflow_home, project):
    script = project("tf.py", """
        import json, os
        c = json.loads(os.environ["TF_CONFIG"])
        print(len(c["cluster"]["worker"]), c["task"]["type"], c["task"]["index"])
    """)
    job = kflow.run(script, kind="tf", workers=2, wait=True)
    out = sorted(lines(job, follow=False))
    assert out == ["[worker-0] 2 worker 0", "[worker-1] 2 worker 1"]


def test_failing_script_fails_the_job_with_its_exit_code(kflow_home, project):
    script = project("fail.py", """
        print("about to fail")
        raise SystemExit(3)
    """)
    job = kflow.run(script)
    status = job.wait(timeout=60)
    assert status.phase == "Failed"
    assert status.reason == "Error"
    assert status.replicas[0].exit_code == 3
    assert "exited with code 3" in status.message


def test_cancel_ends_the_whole_process_group(kflow_home, project, tmp_path):
    pidfile = tmp_path / "child.pid"
    script = project("long.py", f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(300)
    """)
    job = kflow.run(script)
    for line in job.logs(follow=True):
        if line == "started":
            break
    status = job.cancel()
    assert status.phase == "Failed" and status.reason == "Cancelled"
    child = int(pidfile.read_text())
    deadline = time.time() + 10
    while time.time() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "the replica's own child must end with it"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_restart_reuses_spec_and_code(kflow_home, project):
    script = project("again.py", """
        import os
        print("attempt", os.environ["ATTEMPT_MARK"])
    """)
    job = kflow.run(script, env={"ATTEMPT_MARK": "x"}, wait=True)
    # Changing the project must not change what a restart runs: the stored code is reused.
    script.write_text("raise SystemExit('changed')\n")
    again = job.restart()
    assert again.name == job.name
    status = again.wait(timeout=60)
    assert status.phase == "Succeeded"
    assert lines(again, follow=False) == ["attempt x"]
    assert json.loads(Path(again._native.run_dir, "record.json").read_text())["attempt"] == 2


def test_pip_dependency_is_installed_once_and_reused(kflow_home, project, wheelhouse):
    script = project("uses_dep.py", """
        import kflowdemo
        print("answer", kflowdemo.ANSWER)
    """)
    first = kflow.run(script, pip=["kflowdemo==1.0"], wait=True)
    assert first.status.phase == "Succeeded", lines(first, follow=False)
    assert "answer 42" in lines(first, follow=False)
    second = kflow.run(script, pip=["kflowdemo==1.0"], wait=True)
    out = lines(second, follow=False)
    assert any("reusing the environment" in l for l in out), out
    assert "answer 42" in out


def test_pip_spec_with_shell_metacharacters_is_refused_before_anything_runs(kflow_home, project, wheelhouse, tmp_path):
    marker = tmp_path / "pwned"
    script = project("train.py", "print('should not run')\n")
    with pytest.raises(kflow.ValidationError) as err:
        kflow.run(script, pip=[f"kflowdemo; touch {marker}"])
    assert "not a PEP 508 requirement" in str(err.value) and err.value.event_id.startswith("KF-")
    assert not marker.exists(), "the spec must never be run by a shell"
    assert kflow.jobs() == [], "nothing is created for a refused run"
    # A valid requirement whose marker holds shell syntax reaches pip as one literal argument.
    job = kflow.run(script, pip=[f"kflowdemo; sys_platform != '$(touch {marker})'"])
    assert job.wait(timeout=120).phase == "Succeeded"
    assert not marker.exists()


def test_apt_packages_warn_locally(kflow_home, project):
    script = project("train.py", "print('ok')\n")
    job = kflow.run(script, apt=["libgdal-dev"], wait=True)
    out = lines(job, follow=False)
    assert any("does not install apt packages (libgdal-dev)" in l for l in out)
    assert job.status.phase == "Succeeded"


@pytest.mark.parametrize(
    "params, error, needle",
    [
        ({"name": "Bad_Name"}, kflow.ValidationError, "\"bad-name\""),
        ({"name": "bad_name"}, kflow.ValidationError, "Fix:"),
        ({"gpu": "two"}, kflow.ValidationError, "whole number"),
        ({"workers": 0}, kflow.ValidationError, "between 1 and 512"),
        ({"memory": "16GB"}, kflow.ValidationError, "16Gi"),
        ({"template": "nope"}, kflow.TemplateError, "kflow templates"),
        ({"pip": ["--index-url=http://evil"]}, kflow.ValidationError, "PIP_INDEX_URL"),
        ({"apt": ["vim; rm -rf /"]}, kflow.ValidationError, "Debian package"),
        ({"env": {"1BAD": "x"}}, kflow.ValidationError, "variable name"),
        ({"kind": "jax"}, kflow.ValidationError, "pytorch"),
        ({"backend": "cluster"}, kflow.BackendError, "backend"),
        ({"memory": 16}, kflow.ValidationError, "write 16Gi"),
        ({"cpu": 1e29}, kflow.ValidationError, "more than any node"),
        ({"pip": 5}, kflow.ValidationError, "list of strings"),
        ({"pip": ["numpy; rm -rf /"]}, kflow.ValidationError, "PEP 508"),
        ({"requirements": b"requirements.txt"}, kflow.ValidationError, "os.fsdecode"),
        ({"project_root": 3}, kflow.ValidationError, "a path"),
    ],
)
def test_bad_input_is_refused_clearly_and_leaves_nothing(kflow_home, project, params, error, needle):
    script = project("train.py", "print(1)\n")
    with pytest.raises(error) as info:
        kflow.run(script, **params)
    message = str(info.value)
    assert needle in message, message
    assert info.value.event_id in (kflow_home / "state" / "kflow.log").read_text()
    assert kflow.jobs() == []


def test_missing_script_and_unknown_job(kflow_home, tmp_path):
    with pytest.raises(kflow.ValidationError, match="does not exist"):
        kflow.run(tmp_path / "nope.py")
    with pytest.raises(kflow.ValidationError, match="is a folder, not a file"):
        kflow.run(tmp_path)
    with pytest.raises(kflow.ValidationError, match="os.fsdecode"):
        kflow.run(b"train.py")  # type: ignore[arg-type]
    assert kflow.jobs() == []
    with pytest.raises(kflow.JobNotFoundError, match="kflow jobs"):
        kflow.get("no-such-job")


def test_template_supplies_defaults_and_explicit_wins(kflow_home, project):
    script = project("train.py", "import os; print(os.environ['FROM'])\n")
    project(".kflow/templates/geo.json", '{"env": {"FROM": "template"}, "gpu": 0, "image": "img:1"}')
    job = kflow.run(script, template="geo", wait=True)
    assert lines(job, follow=False) == ["template"]
    assert job.spec["image"] == "img:1" and job.spec["template"] == "geo"
    job = kflow.run(script, template="geo", env={"FROM": "explicit"}, wait=True)
    assert lines(job, follow=False) == ["explicit"]
    assert [t["name"] for t in kflow.templates(project.root)] == ["geo"]


def test_bad_template_names_file_key_and_expectation(kflow_home, project):
    script = project("train.py", "print(1)\n")
    project(".kflow/templates/bad.json", '{"gpu": "one"}')
    with pytest.raises(kflow.TemplateError) as info:
        kflow.run(script, template="bad")
    assert "bad.json" in str(info.value) and '"gpu"' in str(info.value) and "whole number" in str(info.value)


def test_delete_removes_the_run(kflow_home, project):
    script = project("train.py", "import time; time.sleep(60)\n")
    job = kflow.run(script)
    job.delete()
    assert kflow.jobs() == []
    with pytest.raises(kflow.JobNotFoundError):
        kflow.get(job.name)


def test_duplicate_name_is_a_conflict(kflow_home, project):
    script = project("train.py", "print(1)\n")
    kflow.run(script, name="same-name", wait=True)
    with pytest.raises(kflow.ConflictError, match="already exists"):
        kflow.run(script, name="same-name")


def test_repr_html_shows_phase(kflow_home, project):
    job = kflow.run(project("train.py", "print(1)\n"), wait=True)
    assert "Succeeded" in job._repr_html_() and job.name in repr(job)


def test_the_example_trains_data_parallel_and_every_rank_ends_with_the_same_weights(kflow_home):
    from kflow_testsupport import EXAMPLE, final_weights_by_replica

    job = kflow.run(EXAMPLE, workers=3, args=["--epochs", "2"])
    assert job.wait(timeout=180).phase == "Succeeded", lines(job, follow=False)
    out = lines(job, follow=False)
    assert any("gradients averaged with" in l for l in out)
    weights = final_weights_by_replica(out)
    assert sorted(weights) == ["master-0", "worker-0", "worker-1"], out
    assert len(set(weights.values())) == 1, weights
