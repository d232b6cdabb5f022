"""A real jupyter_server with jupyter-scheduler from PyPI, configured with kflow's scheduler and
execution manager, driven through its REST API."""

from __future__ import annotations

import nbformat
import pytest

from .server import SchedulerServer


@pytest.fixture
def notebook_root(tmp_path):
    root = tmp_path / "notebooks"
    root.mkdir()

    def write(name: str, *cells: str, parameters: str = None) -> str:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        if parameters is not None:
            cell = nbformat.v4.new_code_cell(parameters)
            cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
        nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
        nbformat.write(nb, str(root / name))
        return name

    write.root = root
    return write


@pytest.fixture
def scheduler(kflow_home, notebook_root, tmp_path):
    server = SchedulerServer(notebook_root.root, tmp_path / "jupyter_server.log")
    yield server
    server.stop()
