"""Following a job whose replica cannot start: one `kflow: waiting for …` line per change of
what it waits for, as a line of that replica (cluster backend only)."""

from __future__ import annotations

import subprocess
import sys

import kflow


def test_pending_replica_says_what_it_waits_for_once_per_change(cluster, project):
    script = project("ok.py", "print('never runs')\n")
    job = kflow.run(str(script), name="pt-wait", image="registry.invalid/nope:1", backend="cluster")
    seen = []
    for line in job.logs(follow=True):
        seen.append(line)
        if line == "kflow: waiting for master-0: ImagePullBackOff":
            break
    assert seen[-1] == "kflow: waiting for master-0: ImagePullBackOff", seen
    assert all(l.startswith("kflow: waiting for master-0: ") for l in seen), seen
    assert all(a != b for a, b in zip(seen, seen[1:])), f"one line per change: {seen}"
    # Not the job's output: the local copy of the logs stays empty.
    assert list(kflow.get("pt-wait").logs()) == []
    job.delete()


def test_cli_logs_follow_shows_waiting_lines_and_local_runs_have_none(cluster, project):
    script = project("ok.py", "print('done')\n")
    cli = [sys.executable, "-m", "kflow"]
    submitted = subprocess.run([*cli, "run", "--cluster", "-d", "--image", "registry.invalid/nope:1", "--name", "pt-cli-wait", str(script)],
                               capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    follow = subprocess.Popen([*cli, "logs", "pt-cli-wait", "-f"], stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in follow.stdout:
            lines.append(line.rstrip("\n"))
            if lines[-1].endswith("ImagePullBackOff"):
                break
    finally:
        follow.kill()
        follow.wait()
    assert lines[-1] == "kflow: waiting for master-0: ImagePullBackOff", lines
    local = kflow.run(str(script), name="loc-wait", backend="local", wait=True)
    assert list(local.logs(follow=True)) == ["done"]
