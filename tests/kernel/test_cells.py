"""Cells as jobs through a real kernel: options, files, previews, job magics, failures,
store_history=false probes, interrupt, and a million-line flood."""

from __future__ import annotations

import pytest

REQS = "pip install jupyter_client jupyter_kernel_test nbclient nbformat ipykernel (tests/requirements.txt)"
pytest.importorskip("jupyter_client", reason=REQS)

import json
import time
from pathlib import Path

from .kernel_harness import KFLOW_HOME, run_cell, stream_text


def runs() -> set[Path]:
    """The run folders kflow's state holds (shared by the session's kernels)."""
    d = KFLOW_HOME / "state/runs"
    return set(d.iterdir()) if d.exists() else set()


def outputs(msgs: list[dict], kind: str) -> list[dict]:
    return [m for m in msgs if m["msg_type"] == kind]


def test_cell_is_a_job_in_the_project(kernel, project: Path) -> None:
    _, kc = kernel
    reply, msgs = run_cell(kc, "from helper import GREETING\nimport os\nprint(GREETING, os.environ['RANK'])")
    assert reply["content"]["status"] == "ok", reply["content"]
    assert stream_text(msgs) == "hello from the project 0\n"
    # The cell was written into the project only while packaging.
    assert sorted(p.name for p in project.iterdir()) == ["helper.py"]


def test_options_files_and_job_magics(kernel, project: Path) -> None:
    _, kc = kernel
    reply, msgs = run_cell(kc, "%kflow env=LR=0.5 workers=2")
    assert reply["content"]["status"] == "ok"
    assert outputs(msgs, "execute_result")[0]["content"]["data"]["text/plain"] == "workers=2 env=LR=0.5"

    reply, _ = run_cell(kc, "%%kflow_file lib/util.py\ndef twice(x):\n    return 2 * x\n")
    assert reply["content"]["status"] == "ok"
    assert (project / "lib/util.py").read_text().startswith("def twice")

    reply, msgs = run_cell(kc, "import os, sys\nsys.path.insert(0, 'lib')\nfrom util import twice\nprint(os.environ['RANK'], twice(21), os.environ['LR'])")
    assert reply["content"]["status"] == "ok", reply["content"]
    lines = sorted(stream_text(msgs).splitlines())
    # Two replicas, each line prefixed with its replica.
    assert lines == ["[master-0] 0 42 0.5", "[worker-0] 1 42 0.5"], lines

    reply, msgs = run_cell(kc, "%kflow_jobs")
    assert "Succeeded" in stream_text(msgs)
    reply, msgs = run_cell(kc, "%kflow_status")
    assert "Succeeded" in outputs(msgs, "execute_result")[0]["content"]["data"]["text/plain"]
    reply, msgs = run_cell(kc, "%kflow_logs")
    assert "[worker-0] 1 42 0.5" in stream_text(msgs)

    # The next cell's manifest is shown, not submitted.
    runs_before = len(runs())
    run_cell(kc, "%kflow_yaml")
    reply, msgs = run_cell(kc, "print('never runs')")
    assert reply["content"]["status"] == "ok"
    text = stream_text(msgs)
    assert "kind: PyTorchJob" in text and "never runs" not in text
    assert len(runs()) == runs_before

    reply, msgs = run_cell(kc, "%kflow reset")
    assert outputs(msgs, "execute_result")[0]["content"]["data"]["text/plain"] == "(defaults)"


def test_kflow_run_script_with_args(kernel, kernel_name: str, project: Path) -> None:
    _, kc = kernel
    name = f"my-train-{kernel_name}"  # the kernels of one test session share kflow's state
    (project / "train.py").write_text("import sys\nprint('args', sys.argv[1:])\n")
    reply, msgs = run_cell(kc, f"%kflow_run train.py --name {name} -- --lr 0.1")
    assert reply["content"]["status"] == "ok", reply["content"]
    assert stream_text(msgs) == "args ['--lr', '0.1']\n"
    reply, msgs = run_cell(kc, f"%kflow_status {name}")
    assert outputs(msgs, "execute_result")[0]["content"]["data"]["text/plain"].startswith(f"{name}: Succeeded")


def test_failures_carry_the_reason(kernel) -> None:
    _, kc = kernel
    reply, msgs = run_cell(kc, "print('before')\nraise ValueError('bad data')")
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "JobFailed"
    assert "exited with code 1" in c["evalue"], c["evalue"]
    # The traceback is in the job's log, on stderr (highlighted as an error line).
    assert "ValueError: bad data" in stream_text(msgs, "stderr")
    assert len(outputs(msgs, "error")) == 1

    reply, _ = run_cell(kc, "%kflow gpu=lots")
    assert reply["content"]["ename"] == "UsageError"
    reply, _ = run_cell(kc, "%kflow_run missing.py")
    assert reply["content"]["ename"] == "InvalidRun"
    assert "missing.py" in reply["content"]["evalue"]


def test_probes_are_answered_locally(kernel) -> None:
    """VS Code's startup code comes as store_history=false executes: never a job."""
    _, kc = kernel
    reply, _ = run_cell(kc, "print('x')")
    count = reply["content"]["execution_count"]
    before = runs()
    reply, msgs = run_cell(kc, "import ipywidgets\n__vsc_ipynb_file__ = 'x'", store_history=False)
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["execution_count"] == count
    assert not outputs(msgs, "stream")
    reply, _ = run_cell(kc, "raise SystemExit(1)", silent=True)
    assert reply["content"]["status"] == "ok"
    assert runs() == before
    reply, _ = run_cell(kc, "print('y')")
    assert reply["content"]["execution_count"] == count + 1


def test_interrupt_cancels_the_job(kernel) -> None:
    km, kc = kernel
    code = "import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(120)\nprint('not reached')"
    msg_id = kc.execute(code)
    pid = None
    deadline = time.time() + 60
    while pid is None and time.time() < deadline:
        m = kc.get_iopub_msg(timeout=60)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream":
            pid = int(m["content"]["text"].split()[1])
    assert pid is not None
    started = time.time()
    km.interrupt_kernel()  # interrupt_mode "message": an interrupt_request on control
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.time() - started < 15
    # The job's process is gone and the job is recorded as cancelled.
    time.sleep(0.5)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    _, msgs = run_cell(kc, "%kflow_status")
    status = [m for m in msgs if m["msg_type"] == "execute_result"][0]["content"]["data"]["text/plain"]
    assert "Cancelled" in status, status
    # The kernel goes on.
    reply, msgs = run_cell(kc, "print('after')")
    assert stream_text(msgs) == "after\n"


def test_million_lines_arrive_complete(kernel) -> None:
    _, kc = kernel
    started = time.time()
    reply, msgs = run_cell(kc, "for i in range(1_000_000):\n    print(i)", timeout=300)
    assert reply["content"]["status"] == "ok"
    text = stream_text(msgs)
    lines = text.split("\n")
    assert lines[-1] == ""
    assert len(lines) - 1 == 1_000_000
    assert lines[:-1] == [str(i) for i in range(1_000_000)]
    # Batched: far fewer messages than lines.
    assert len(outputs(msgs, "stream")) < 2_000
    print(f"1,000,000 lines in {time.time() - started:.1f} s, {len(outputs(msgs, 'stream'))} stream messages")


def test_failed_cell_aborts_queued_cells(kernel) -> None:
    """VS Code's "Run All" queues every cell at once: after a failing job the rest are aborted
    (as ipykernel does), not submitted."""
    _, kc = kernel
    before = runs()
    ids = [kc.execute("raise SystemExit(2)"), kc.execute("print('second')"), kc.execute("print('third')")]
    replies = {}
    while len(replies) < 3:
        r = kc.get_shell_msg(timeout=60)
        replies[r["parent_header"]["msg_id"]] = r["content"]["status"]
    assert [replies[i] for i in ids] == ["error", "aborted", "aborted"]
    assert len(runs() - before) == 1
    # Without stop_on_error the next cell runs.
    ids = [kc.execute("raise SystemExit(2)", stop_on_error=False), kc.execute("print('runs')")]
    replies = {}
    while len(replies) < 2:
        r = kc.get_shell_msg(timeout=60)
        replies[r["parent_header"]["msg_id"]] = r["content"]["status"]
    assert [replies[i] for i in ids] == ["error", "ok"]


def test_shutdown_cancels_the_running_job(kernel_name: str, project: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=kernel_name, cwd=str(project), startup_timeout=30)
    try:
        msg_id = kc.execute("import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(120)")
        pid = None
        deadline = time.time() + 60
        while pid is None and time.time() < deadline:
            m = kc.get_iopub_msg(timeout=60)
            if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream":
                pid = int(m["content"]["text"].split()[1])
        assert pid is not None
    finally:
        kc.stop_channels()
        started = time.time()
        km.shutdown_kernel(now=False)
    assert time.time() - started < 10
    time.sleep(0.5)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
