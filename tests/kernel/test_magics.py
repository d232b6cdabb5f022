"""The %kflow_run magic for ordinary IPython kernels.

The parser and the streaming/cancel logic are tested in-process against a stand-in for the
public API (kflow.run / Job); the end-to-end test drives a real ipykernel with jupyter_client
and needs the built wheel (kflow._native), skipping with that reason until it is installed."""

from __future__ import annotations

import pytest

REQS = "pip install jupyter_client jupyter_kernel_test nbclient nbformat ipykernel (tests/requirements.txt)"
pytest.importorskip("IPython", reason=REQS)
pytest.importorskip("jupyter_client", reason=REQS)

import importlib.util
import sys
import time
from pathlib import Path
from types import SimpleNamespace


from .kernel_harness import KFLOW_ENV, REPO, stream_text

MAGICS_PY = REPO / "python" / "kflow" / "magics.py"


def load_magics():
    # By path: importing the `kflow` package would need the native extension.
    spec = importlib.util.spec_from_file_location("kflow_magics_under_test", MAGICS_PY)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


magics = load_magics()


def test_parse_line() -> None:
    script, params, args, detach = magics.parse_line(
        "train.py --gpu 1 --pip rich --pip=numpy,torch --env LR=0.1 --memory 4Gi --project sub -- --epochs 3", True
    )
    assert script == "train.py"
    assert params == {"gpu": 1, "pip": ["rich", "numpy", "torch"], "env": {"LR": "0.1"}, "memory": "4Gi", "project_root": "sub"}
    assert args == ["--epochs", "3"]
    assert not detach
    assert magics.parse_line("--workers 2 --detach -- a", False) == (None, {"workers": 2}, ["a"], True)
    for bad in ["", "t.py --gpu", "t.py --gpu one", "t.py --bogus 1", "t.py --env X", "t.py 'unclosed"]:
        with pytest.raises(magics.UsageError):
            magics.parse_line(bad, True)


class FakeJob:
    def __init__(self, name: str, lines: list[str], phase: str = "Succeeded", block: bool = False) -> None:
        self.name = name
        self._lines = lines
        self._phase = phase
        self._block = block
        self.cancelled = False

    def logs(self, follow: bool = False):
        yield from self._lines
        if self._block:
            raise KeyboardInterrupt  # what an interrupt does to the following loop

    def wait(self, timeout=None):
        return SimpleNamespace(phase=self._phase, succeeded=self._phase == "Succeeded", reason="Error" if self._phase == "Failed" else None, message=None)

    def cancel(self):
        self.cancelled = True


class FakeKflow:
    def __init__(self, job: FakeJob) -> None:
        self.job = job
        self.calls: list[tuple] = []

    def run(self, script, wait=False, **params):
        self.calls.append((script, wait, params, Path(script).read_text() if Path(script).exists() else None))
        return self.job


@pytest.fixture
def shell(monkeypatch, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    magics.load_ipython_extension(ip)
    yield ip
    InteractiveShell.clear_instance()


def test_line_magic_streams_and_returns_the_job(shell, monkeypatch, capsys) -> None:
    fake = FakeKflow(FakeJob("train-x", ["epoch 1\n", "epoch 2"]))
    monkeypatch.setattr(magics, "_kflow", lambda: fake)
    job = shell.run_line_magic("kflow_run", "train.py --gpu 1 -- --lr 0.1")
    assert job is fake.job
    assert fake.calls[0][:3] == ("train.py", False, {"gpu": 1, "args": ["--lr", "0.1"]})
    assert capsys.readouterr().out == "epoch 1\nepoch 2\n"


def test_cell_magic_runs_the_cell(shell, monkeypatch, tmp_path, capsys) -> None:
    fake = FakeKflow(FakeJob("cell-a", ["hi"], phase="Failed"))
    monkeypatch.setattr(magics, "_kflow", lambda: fake)
    job = shell.run_cell_magic("kflow_run", "--workers 2", "print('hi')\n")
    assert job is fake.job
    script, wait, params, text = fake.calls[0]
    assert text == "print('hi')\n" and Path(script).parent == tmp_path
    assert params["workers"] == 2 and params["project_root"] == str(tmp_path) and params["name"].startswith("cell-")
    assert not Path(script).exists(), "the cell file is removed once packaged"
    out = capsys.readouterr()
    assert out.out == "hi\n" and "job cell-a Failed (Error)" in out.err


def test_interrupt_cancels(shell, monkeypatch) -> None:
    fake = FakeKflow(FakeJob("slow", ["started"], block=True))
    monkeypatch.setattr(magics, "_kflow", lambda: fake)
    with pytest.raises(KeyboardInterrupt):
        shell.run_line_magic("kflow_run", "slow.py")
    assert fake.job.cancelled


def test_detach_and_usage_errors(shell, monkeypatch, capsys) -> None:
    fake = FakeKflow(FakeJob("d", ["never streamed"]))
    monkeypatch.setattr(magics, "_kflow", lambda: fake)
    assert shell.run_line_magic("kflow_run", "t.py --detach") is fake.job
    assert capsys.readouterr().out == ""
    assert shell.run_line_magic("kflow_run", "t.py --gpu x") is None
    assert "whole number" in capsys.readouterr().err


def _wheel_importable() -> bool:
    try:
        import kflow  # noqa: F401
        from kflow import _native  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _wheel_importable(), reason="the kflow wheel (kflow._native) is not installed")
def test_magic_in_a_real_ipykernel(project: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    (project / "train.py").write_text("import sys, time\nfor i in range(3):\n    print('step', i, sys.argv[1:], flush=True)\n")
    (project / "slow.py").write_text("import time\nprint('slow started', flush=True)\ntime.sleep(120)\n")
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(project), env={**__import__("os").environ, **KFLOW_ENV})
    try:
        out: list[dict] = []
        reply = kc.execute_interactive("%load_ext kflow\njob = %kflow_run train.py -- --lr 1\nprint(job.status.phase)", timeout=120, output_hook=out.append)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert stream_text(out) == "step 0 ['--lr', '1']\nstep 1 ['--lr', '1']\nstep 2 ['--lr', '1']\nSucceeded\n"

        out = []
        reply = kc.execute_interactive("%%kflow_run\nfrom helper import GREETING\nprint(GREETING)", timeout=120, output_hook=out.append)
        assert "hello from the project" in stream_text(out)

        # Interrupt (SIGINT for ipykernel) mid-job cancels the job.
        # stop_on_error=False: otherwise ipykernel aborts the requests that follow the
        # interrupted one for a moment, which would race with the check below.
        msg_id = kc.execute("job = %kflow_run slow.py", stop_on_error=False)
        deadline = time.time() + 60
        while time.time() < deadline:
            m = kc.get_iopub_msg(timeout=60)
            if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream" and "slow started" in m["content"]["text"]:
                break
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "error"
        out = []
        kc.execute_interactive("import kflow\nprint([j.phase for j in kflow.jobs() if j.name.startswith('slow')])", timeout=30, output_hook=out.append)
        assert "Failed" in stream_text(out), [(m["msg_type"], m["content"]) for m in out]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
