"""`Job.exec` and `Job.copy_from` (and `kflow exec`, `kflow copy-from`) on a cluster job:
through the API server's pods/exec, the copy a tar stream unpacked as it arrives."""

from __future__ import annotations

import sys

import kflow
from kflow_testsupport import HOLDING_SCRIPT, exercise_exec_and_copy


def test_a_running_replica_runs_commands_and_gives_its_files(cluster, project, tmp_path):
    job = kflow.run(str(project("hold.py", HOLDING_SCRIPT)), name="pt-files", backend="cluster")
    exercise_exec_and_copy(job, tmp_path / "fetched", [sys.executable, "-m", "kflow"])
    assert list(job.logs())[-1] == "released"
