"""`Job.exec` and `Job.copy_from` (and their CLI commands) on the local backend: the same
behaviour as on a cluster, in the run's workspace."""

from __future__ import annotations

import sys

import kflow
from kflow_testsupport import HOLDING_SCRIPT, exercise_exec_and_copy


def test_a_running_local_job_runs_commands_and_gives_its_files(kflow_home, project, tmp_path):
    job = kflow.run(str(project("hold.py", HOLDING_SCRIPT)), name="local-files")
    exercise_exec_and_copy(job, tmp_path / "fetched", [sys.executable, "-m", "kflow"])
    assert list(job.logs())[-1] == "released"
