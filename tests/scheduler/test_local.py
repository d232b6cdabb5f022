"""Scheduled notebooks through KflowExecutionManager on kflow's local backend."""

from __future__ import annotations

import json
import time
import urllib.error
from pathlib import Path

import nbformat
import pytest

import kflow
from kflow.scheduler import kflow_job_name

from .server import absolute, downloaded, outputs_of, wait_until_executing

pytestmark = pytest.mark.timeout(300)


def test_a_parameterised_notebook_runs_and_its_outputs_land_where_jupyter_scheduler_expects(scheduler, notebook_root):
    (notebook_root.root / "data").mkdir()
    (notebook_root.root / "data" / "rows.csv").write_text("a,b\n1,2\n")
    nb = notebook_root(
        "report.ipynb",
        "import json\nrows = open('data/rows.csv').read().splitlines()\n"
        "open('side.json', 'w').write(json.dumps({'lr': lr, 'steps': steps, 'label': label, 'rows': len(rows)}))",
        "print(f'lr={lr!r} steps={steps!r} label={label!r}')",
        parameters="lr = 0.5\nsteps = 1\nlabel = 'x'",
    )
    job_id = scheduler.create(nb, name="report", output_formats=["ipynb", "html", "script"], package_input_folder=True,
                              parameters={"lr": "0.01", "steps": "20", "label": "__import__('os').system('touch PWNED')"})
    job = scheduler.wait(job_id)
    assert job["status"] == "COMPLETED", job["status_message"]
    job = downloaded(scheduler, job_id, "side.json")
    out = outputs_of(job)
    assert set(out) >= {"ipynb", "html", "script", "input"}
    executed = nbformat.read(absolute(scheduler, out["ipynb"]), as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    # Values keep their literal type; a value that is code stays a string, never runs.
    assert "lr=0.01 steps=20 label=\"__import__('os').system('touch PWNED')\"" in printed
    assert not list(scheduler.root.parent.rglob("PWNED"))
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and executed.cells.index(injected[0]) == 1
    assert "<html" in absolute(scheduler, out["html"]).read_text().lower()
    assert "print(f'lr=" in absolute(scheduler, out["script"]).read_text()
    # The names are jupyter-scheduler's own (input name, create time, format).
    assert Path(out["ipynb"]).name.startswith("report-") and out["html"].endswith(".html")
    # The input folder travelled (data/rows.csv was read); the file the notebook wrote beside
    # itself is collected as the default executor does.
    assert "side.json" in job["packaged_files"] and "data/rows.csv" in job["packaged_files"]
    side = absolute(scheduler, out["ipynb"]).parent / "side.json"
    assert json.loads(side.read_text()) == {"lr": 0.01, "steps": 20, "label": "__import__('os').system('touch PWNED')", "rows": 2}
    # It ran as a kflow job, visible to every kflow surface.
    kjob = kflow.get(kflow_job_name(job_id))
    assert kjob.status.phase == "Succeeded"
    assert any("executing report" in line for line in kjob.logs())


def test_a_failing_cell_gives_failed_with_its_error(scheduler, notebook_root):
    nb = notebook_root("broken.ipynb", "x = 1", "1 / 0", "print('never')")
    job = scheduler.wait(scheduler.create(nb, output_formats=["ipynb"]))
    assert job["status"] == "FAILED"
    assert job["status_message"] == "ZeroDivisionError: division by zero"
    job = downloaded(scheduler, job["job_id"])
    # The partly executed notebook still arrives, with the traceback in it.
    executed = nbformat.read(absolute(scheduler, outputs_of(job)["ipynb"]), as_version=4)
    assert any(o.get("ename") == "ZeroDivisionError" for c in executed.cells for o in c.get("outputs", []))


def test_a_long_job_is_stopped_and_deleted_with_nothing_left(scheduler, notebook_root):
    nb = notebook_root("long.ipynb", "import time\nprint('started', flush=True)\ntime.sleep(600)")
    job_id = scheduler.create(nb)
    scheduler.wait(job_id, statuses=("IN_PROGRESS",))
    name = kflow_job_name(job_id)
    wait_until_executing(name, "long.ipynb")
    scheduler.request("PATCH", f"/scheduler/jobs/{job_id}", {"status": "STOPPED"})
    assert scheduler.wait(job_id, statuses=("STOPPED",), timeout=30)["status"] == "STOPPED"
    assert kflow.get(name).status.done
    scheduler.request("DELETE", f"/scheduler/jobs/{job_id}")
    with pytest.raises(kflow.JobNotFoundError):
        kflow.get(name)
    with pytest.raises(urllib.error.HTTPError):
        scheduler.job(job_id)


def test_timeout_seconds_ends_the_job(scheduler, notebook_root):
    nb = notebook_root("slow.ipynb", "import time\ntime.sleep(600)")
    job = scheduler.wait(scheduler.create(nb, runtime_environment_parameters={"timeout_seconds": 3}))
    assert job["status"] == "FAILED"
    assert "timed out after 3 s" in job["status_message"]
    assert kflow.get(kflow_job_name(job["job_id"])).status.done


def test_bad_input_is_refused_before_anything_is_made(scheduler, notebook_root):
    nb = notebook_root("ok.ipynb", "print(1)")
    for fields, words in [
        ({"runtime_environment_parameters": {"gpus": 1}}, "gpus unknown to kflow; use image, gpu"),
        ({"runtime_environment_parameters": {"timeout_seconds": "soon"}}, "timeout_seconds: 'soon' is not a positive number"),
        ({"parameters": {"not a name": "1"}}, "parameter 'not a name': not a Python name"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as e:
            scheduler.create(nb, **fields)
        assert words in e.value.read().decode()
    assert scheduler.request("GET", "/scheduler/jobs")["jobs"] == []
    assert kflow.jobs() == []


def test_supported_features_are_exact(scheduler):
    features = scheduler.request("GET", "/scheduler/config")["supported_features"]
    assert {k for k, v in features.items() if v} == {
        "job_name", "parameters", "output_formats", "timeout_seconds", "stop_job", "delete_job", "job_definition"}


def test_a_job_definition_runs_through_kflow_when_triggered(scheduler, notebook_root):
    nb = notebook_root("nightly.ipynb", "print(f'{greeting}, run {run}')", parameters="greeting = 'hello'\nrun = 0")
    definition = scheduler.request("POST", "/scheduler/job_definitions", {
        "input_uri": nb, "runtime_environment_name": "kflow", "name": "nightly", "output_formats": ["ipynb"],
        "parameters": {"greeting": "'good night'"}})["job_definition_id"]
    # A trigger's own parameters would replace the definition's (jupyter-scheduler's rule); none here.
    job_id = scheduler.request("POST", f"/scheduler/job_definitions/{definition}/jobs", {})["job_id"]
    job = scheduler.wait(job_id)
    assert job["status"] == "COMPLETED", job["status_message"]
    assert job["job_definition_id"] == definition
    lines = list(kflow.get(kflow_job_name(job_id)).logs())
    assert any("executing nightly.ipynb" in line for line in lines)
    executed = nbformat.read(absolute(scheduler, outputs_of(downloaded(scheduler, job_id))["ipynb"]), as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "good night, run 0" in printed
    # A definition kflow cannot run is refused before it is recorded.
    with pytest.raises(urllib.error.HTTPError) as e:
        scheduler.request("POST", "/scheduler/job_definitions", {
            "input_uri": nb, "runtime_environment_name": "kflow", "name": "bad",
            "runtime_environment_parameters": {"gpus": 1}})
    assert "gpus unknown to kflow" in e.value.read().decode()
    assert [d["name"] for d in scheduler.request("GET", "/scheduler/job_definitions")["job_definitions"]] == ["nightly"]


def test_a_kflow_job_cancelled_elsewhere_stops_the_notebook_job(scheduler, notebook_root):
    nb = notebook_root("cancelled.ipynb", "import time\nprint('started', flush=True)\ntime.sleep(600)")
    job_id = scheduler.create(nb)
    name = kflow_job_name(job_id)
    deadline = time.monotonic() + 60
    while True:
        try:
            # The runner's own line (cell output goes into the notebook, not the log).
            if any("kflow: executing cancelled.ipynb" in line for line in kflow.get(name).logs()):
                break
        except kflow.JobNotFoundError:
            pass
        assert time.monotonic() < deadline, "the notebook never started"
        time.sleep(0.2)
    kflow.get(name).cancel()  # as `kflow cancel` or the VS Code panel would
    job = scheduler.wait(job_id, statuses=("STOPPED", "FAILED", "COMPLETED"))
    assert job["status"] == "STOPPED" and job["status_message"] == f"the kflow job {name} was cancelled"
