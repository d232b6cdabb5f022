"""MPIJob end to end: kflow's launcher runs `mpirun`, which starts every rank in the worker pods
through the operator's kubexec.sh (kubectl exec), as the MPI operator v1 does; the ranks'
output arrives in the launcher's log, which is the job's log. A cluster serving mpi-operator's
v2beta1 MPIJob instead gets that manifest, and the job runs there too."""

from __future__ import annotations

import pytest

import kflow
from kflow_testsupport import TestCluster

RANKS = """\
import os, sys
print('rank', os.environ['OMPI_COMM_WORLD_RANK'], 'of', os.environ['OMPI_COMM_WORLD_SIZE'], 'args', sys.argv[1:], flush=True)
if os.environ.get('FAIL_RANK') == os.environ['OMPI_COMM_WORLD_RANK']:
    sys.exit(7)
"""


def test_an_mpijob_runs_every_rank_on_the_workers(cluster, project):
    script = project("ranks.py", RANKS)
    job = kflow.run(str(script), name="mpi-ok", kind="mpi", workers=2, args=["--lr", "0.1", "it's $(id)"], backend="cluster")
    status = job.wait(timeout=120)
    assert status.phase == "Succeeded", status
    lines = [l.split("] ", 1)[-1] for l in job.logs()]
    for rank in ("0", "1"):
        assert f"rank {rank} of 2 args ['--lr', '0.1', \"it's $(id)\"]" in lines, lines


def test_a_failing_rank_fails_the_mpijob(cluster, project):
    script = project("ranks.py", RANKS)
    job = kflow.run(str(script), name="mpi-bad", kind="mpi", workers=2, env={"FAIL_RANK": "1"}, backend="cluster")
    status = job.wait(timeout=120)
    assert status.phase == "Failed", status
    assert "launcher" in status.message, status.message


@pytest.fixture
def v2beta1_cluster(tmp_path, wheels, kflow_home, monkeypatch):
    c = TestCluster(tmp_path / "mpi-v2", ["--wheel-dir", str(wheels), "--mpi-v2beta1"])
    monkeypatch.setenv("KUBECONFIG", c.kubeconfig)
    yield c
    c.stop()


def test_an_mpijob_runs_where_only_v2beta1_is_served(v2beta1_cluster, project):
    script = project("ranks.py", RANKS)
    job = kflow.run(str(script), name="mpi-v2", kind="mpi", workers=2, backend="cluster")
    assert "apiVersion: kubeflow.org/v2beta1" in job.manifest()
    status = job.wait(timeout=120)
    assert status.phase == "Succeeded", status
    lines = [l.split("] ", 1)[-1] for l in job.logs()]
    assert {"rank 0 of 2 args []", "rank 1 of 2 args []"} <= set(lines), lines
