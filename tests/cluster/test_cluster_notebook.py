"""A notebook on the kflow kernel whose cells run as jobs on the test cluster (what `jupyter
execute` does with it): the saved outputs hold both replicas' logs."""

from __future__ import annotations

import pytest

nbclient = pytest.importorskip("nbclient", reason="pip install nbclient nbformat (tests/requirements.txt)")
nbformat = pytest.importorskip("nbformat", reason="pip install nbclient nbformat (tests/requirements.txt)")


def text_of(cell) -> str:
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def test_notebook_cells_run_as_cluster_jobs(cluster, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager

    if "kflow" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("the kflow kernelspec is not installed (pip install the wheel)")
    project = tmp_path / "notebook"
    project.mkdir()
    (project / "helper.py").write_text("GREETING = 'hello from the project'\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(c)
        for c in [
            "%kflow backend=cluster workers=2",
            "import os\nfrom helper import GREETING\nprint(GREETING, os.environ['RANK'], 'of', os.environ['WORLD_SIZE'])",
            "%kflow_jobs",
        ]
    ]
    nbclient.NotebookClient(nb, kernel_name="kflow", timeout=180, resources={"metadata": {"path": str(project)}}).execute()
    saved = nbformat.reads(nbformat.writes(nb), as_version=4)
    logs = text_of(saved.cells[1])
    assert "hello from the project 0 of 2" in logs and "hello from the project 1 of 2" in logs, logs
    jobs = text_of(saved.cells[2])
    # The operator's condition reason: the job ran on the cluster, not locally.
    assert "PyTorchJobSucceeded" in jobs, jobs
