"""`kflow.schedule`: a run's pod on a cron schedule, as a CronJob on the test cluster. Its runs
write to the CronJob's outputs claim and `Schedule.collect` brings those files here through a
short-lived reader pod; bad values are refused before anything is made; deleting the schedule
leaves nothing."""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
import time

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

import kflow

WRITER = """\
    import os, sys
    out = os.environ["KFLOW_OUTPUT_DIR"]
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    open(os.path.join(out, "plots", "loss.csv"), "w").write("step,loss\\n1,0.5\\n")
    open(os.path.join(out, "run.txt"), "w").write(os.environ["KFLOW_SCHEDULED_RUN"] + " " + " ".join(sys.argv[1:]))
    print("wrote", out)
"""


def objects(kubeconfig, prefix):
    api = k8s_config.new_client_from_config(config_file=kubeconfig)
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    found = {
        "cronjobs": batch.list_namespaced_cron_job("default").items,
        "jobs": batch.list_namespaced_job("default").items,
        "pods": core.list_namespaced_pod("default").items,
        "configmaps": core.list_namespaced_config_map("default").items,
        "pvcs": core.list_namespaced_persistent_volume_claim("default").items,
    }
    return {kind: sorted(o.metadata.name for o in items if o.metadata.name.startswith(prefix)) for kind, items in found.items()}


def finished(schedule, run, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        done = [r for r in schedule.runs() if r.name == run and r.done]
        if done:
            return done[0]
        assert time.monotonic() < deadline, f"{run} did not finish: {schedule.runs()}"
        time.sleep(0.3)


def test_a_schedule_is_a_cronjob_whose_runs_outputs_are_collected(cluster, project, tmp_path):
    script = project("report.py", WRITER)
    schedule = kflow.schedule(script, "0 6 * * 1-5", name="report", args=["--day", "$(date)"], pip_cache=False)
    assert (schedule.cron, schedule.suspended, schedule.script) == ("0 6 * * 1-5", False, "report.py")
    made = objects(cluster.kubeconfig, "report")
    assert made["cronjobs"] == ["report"] and made["pvcs"] == ["report-outputs"] and made["configmaps"] == ["report-code"], made
    assert [s["name"] for s in kflow.schedules()] == ["report"]
    assert kflow.get_schedule("report").cron == "0 6 * * 1-5"

    run = schedule.trigger()
    assert finished(schedule, run).phase == "Succeeded"
    [ours] = [r for r in schedule.runs() if r.name == run]
    assert ours.manual and ours.started_at and ours.finished_at
    got = schedule.collect([run], tmp_path / "landed")
    assert sorted(got[run].files) == ["plots/loss.csv", "run.txt"]
    # The run's own name, and its arguments as data: `$(date)` stayed literal.
    assert (tmp_path / "landed" / run / "run.txt").read_text() == f"{run} --day $(date)"
    # Moved, not copied: a second collect finds nothing, and the reader pods are gone.
    assert schedule.collect([run], tmp_path / "again")[run].files == []
    assert not [p for p in objects(cluster.kubeconfig, "report-reader")["pods"]]
    schedule.delete_run(run)
    assert [r.name for r in schedule.runs()] == []

    schedule.pause()
    assert kflow.get_schedule("report").suspended
    schedule.update(cron="@hourly", timezone="Etc/UTC", suspend=False)
    assert (schedule.cron, schedule.timezone, schedule.suspended) == ("@hourly", "Etc/UTC", False)
    schedule.update(timezone=None)
    assert kflow.get_schedule("report").timezone is None

    schedule.delete(wait=True)
    deadline = time.monotonic() + 30
    while any(left := objects(cluster.kubeconfig, "report").values()):
        assert time.monotonic() < deadline, f"left: {left}"
        time.sleep(0.3)
    with pytest.raises(kflow.JobNotFoundError) as e:
        kflow.get_schedule("report")
    assert e.value.event_id


def test_a_scheduled_run_over_its_memory_limit_says_oomkilled(cluster, project):
    script = project("hog.py", "hog = [bytearray(16 << 20) for _ in range(40)]\n")
    schedule = kflow.schedule(script, "@daily", name="hog", memory="256Mi", pip_cache=False)
    run = finished(schedule, schedule.trigger())
    assert (run.phase, run.reason) == ("Failed", "OOMKilled"), run
    schedule.delete(wait=True)


@pytest.mark.parametrize("bad, field", [
    (dict(cron="every day"), "schedule"),
    (dict(cron="0 3 * * * *"), "schedule"),
    (dict(cron="@daily", timezone="../etc"), "time zone"),
    (dict(cron="@daily", memory="16"), "memory"),
    (dict(cron="@daily", outputs_size="lots"), "outputs size"),
])
def test_bad_values_are_refused_before_anything_is_made(cluster, project, bad, field):
    script = project("train.py", "print('hi')\n")
    with pytest.raises(kflow.ValidationError) as e:
        kflow.schedule(script, name="bad", **bad)
    assert field in e.value.problem and e.value.fix and e.value.event_id
    assert not any(objects(cluster.kubeconfig, "bad").values())


def test_a_schedule_with_no_cluster_says_so(kflow_home, project, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    with pytest.raises(kflow.KflowError) as e:
        kflow.schedule(project("t.py", "print(1)\n"), "@daily")
    assert "kubeconfig" in str(e.value).lower() and e.value.fix


def kflow_cli(*args, check=True):
    done = subprocess.run([sys.executable, "-m", "kflow", *args], capture_output=True, text=True, timeout=120)
    assert not check or done.returncode == 0, f"kflow {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done


def test_the_cli_creates_triggers_collects_and_deletes_a_schedule(cluster, project, tmp_path):
    script = project("report.py", WRITER)
    bad = kflow_cli("schedule", "create", str(script), "--cron", "every morning", "--name", "clis", check=False)
    assert bad.returncode == 2 and "invalid schedule" in bad.stderr and re.search(r"KF-[0-9A-Z]{6}", bad.stderr), bad.stderr
    assert "Traceback" not in bad.stderr and not any(objects(cluster.kubeconfig, "clis").values())

    kflow_cli("schedule", "create", str(script), "--cron", "0 6 * * *", "--name", "clis", "--no-pip-cache", "--", "--day", "mon")
    listed = json.loads(kflow_cli("schedule", "list", "--json").stdout)
    assert [(s["name"], s["cron"], s["suspended"]) for s in listed] == [("clis", "0 6 * * *", False)]
    kflow_cli("schedule", "pause", "clis")
    assert json.loads(kflow_cli("schedule", "show", "clis", "--json").stdout)["schedule"]["suspended"] is True
    run = kflow_cli("schedule", "trigger", "clis").stdout.strip()
    deadline = time.monotonic() + 60
    while not any(r["name"] == run and r["phase"] == "Succeeded" for r in json.loads(kflow_cli("schedule", "show", "clis", "--json").stdout)["runs"]):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    collected = kflow_cli("schedule", "collect", "clis", "--dest", str(tmp_path / "out"))
    assert f"{run}: 2 files" in collected.stderr + collected.stdout
    assert (tmp_path / "out" / run / "run.txt").read_text() == f"{run} --day mon"
    assert json.loads(kflow_cli("schedule", "show", "clis", "--json").stdout)["runs"] == []
    kflow_cli("schedule", "delete", "clis")
    deadline = time.monotonic() + 30
    while any(objects(cluster.kubeconfig, "clis").values()):
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_credentials_in_a_scheduled_project_stay_behind_and_the_user_is_told(cluster, project):
    script = project("report.py", "print('hi')\n")
    project(".aws/credentials", "[default]\naws_secret_access_key = sentinel-secret\n")
    with pytest.warns(UserWarning, match=r"left out of the upload as credentials: .*\.aws"):
        schedule = kflow.schedule(script, "@daily", name="creds", pip_cache=False)
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=cluster.kubeconfig))
    code = api.read_namespaced_config_map("creds-code", "default")
    assert b"sentinel-secret" not in gzip.decompress(base64.b64decode(code.binary_data["code.tar.gz"]))
    schedule.delete(wait=True)
