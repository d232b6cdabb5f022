"""nbclient runs a several-cell notebook on the kernel (what `jupyter execute` does); the saved
notebook holds the jobs' logs."""

from __future__ import annotations

import pytest

REQS = "pip install jupyter_client jupyter_kernel_test nbclient nbformat ipykernel (tests/requirements.txt)"
pytest.importorskip("nbclient", reason=REQS)
pytest.importorskip("nbformat", reason=REQS)

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CELLS = [
    "%kflow env=EPOCHS=3",
    "%%kflow_file model.py\ndef train(epochs):\n    for e in range(epochs):\n        print(f'epoch {e} loss {1 / (e + 1):.3f}')\n",
    "import os\nfrom model import train\nfrom helper import GREETING\nprint(GREETING)\ntrain(int(os.environ['EPOCHS']))",
    "%kflow_jobs",
    "%kflow_yaml\nprint('preview only')",
]


def notebook(cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


def text_of(cell) -> str:
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type == "execute_result":
            parts.append(o.data["text/plain"])
    return "".join(parts)


def test_notebook_runs_and_saves_logs(kernel_name: str, project: Path) -> None:
    nb = notebook(CELLS)
    NotebookClient(nb, kernel_name=kernel_name, timeout=120, resources={"metadata": {"path": str(project)}}).execute()
    path = project / "run.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    assert [c.execution_count for c in saved.cells] == [1, 2, 3, 4, 5]
    assert text_of(saved.cells[0]) == "env=EPOCHS=3"
    assert text_of(saved.cells[2]) == "hello from the project\nepoch 0 loss 1.000\nepoch 1 loss 0.500\nepoch 2 loss 0.333\n"
    assert "Succeeded" in text_of(saved.cells[3])
    assert "kind: PyTorchJob" in text_of(saved.cells[4])
    assert (project / "model.py").exists()


def test_failing_cell_stops_the_notebook(kernel_name: str, project: Path) -> None:
    nb = notebook(["print('first')", "import sys\nprint('going down', flush=True)\nsys.exit(4)", "print('never')"])
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=120, resources={"metadata": {"path": str(project)}})
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert "JobFailed" in str(info.value)
    assert "exited with code 4" in str(info.value)
    assert text_of(nb.cells[1]).startswith("going down")
    assert nb.cells[2].outputs == []
