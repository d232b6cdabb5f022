"""The job handle and its status, as plain typed Python objects over the native handle."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from . import _native
from ._types import Description


def _known_fields(cls: Any, data: Dict[str, Any]) -> Dict[str, Any]:
    """The fields `cls` declares: a newer kflow-core may send more, which older code ignores."""
    known = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in known}


@dataclass(frozen=True)
class ReplicaStatus:
    name: str
    phase: str
    exit_code: Optional[int] = None


@dataclass(frozen=True)
class JobStatus:
    """Where a job is: `phase` is Pending, Running, Succeeded or Failed."""

    phase: str
    reason: Optional[str] = None
    message: Optional[str] = None
    replicas: List[ReplicaStatus] = field(default_factory=list)
    started_at: Optional[str] = None
    finished_at: Optional[str] = None

    @property
    def done(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"

    @classmethod
    def _from_json(cls, text: str) -> "JobStatus":
        data = json.loads(text)
        data["replicas"] = [ReplicaStatus(**_known_fields(ReplicaStatus, r)) for r in data.get("replicas", [])]
        return cls(**_known_fields(cls, data))

    def __str__(self) -> str:
        detail = f" ({self.reason}: {self.message})" if self.phase == "Failed" and self.message else ""
        return f"{self.phase}{detail}"


@dataclass(frozen=True)
class JobSummary:
    name: str
    kind: str
    backend: str
    phase: str
    reason: Optional[str]
    script: str
    created_at: str
    stale: bool = False
    """The phase is the last one seen: the cluster could not be asked."""

    @classmethod
    def _from_json(cls, data: Dict[str, Any]) -> "JobSummary":
        return cls(**_known_fields(cls, data))


@dataclass(frozen=True)
class ExecResult:
    """What `Job.exec` gave: the exit code and the output, as text."""

    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class CopiedFiles:
    """What `Job.copy_from` wrote: files relative to the destination, their total size, and
    entries skipped as "path (why)"."""

    files: List[str]
    bytes: int
    skipped: List[str] = field(default_factory=list)


def stream_lines(job: Any, out: Any) -> Any:
    """Prints `job`'s log lines to `out` as they come and returns its final status; Ctrl-C
    cancels the job and is raised again. `job` is a `Job`, or anything with its `logs`, `wait`
    and `cancel` (the IPython magic's tests pass their own)."""
    try:
        for line in job.logs(follow=True):
            print(line.rstrip("\n"), file=out, flush=True)
        return job.wait()
    except KeyboardInterrupt:
        job.cancel()
        raise


class Job:
    """A training job. Returned by `kflow.run` and `kflow.get`."""

    def __init__(self, native: "_native.NativeJob") -> None:
        self._native = native

    @property
    def name(self) -> str:
        return self._native.name

    @property
    def status(self) -> JobStatus:
        return JobStatus._from_json(self._native.status_json())

    @property
    def spec(self) -> Dict[str, Any]:
        """The resolved run parameters, as stored for restarts."""
        return json.loads(self._native.spec_json())

    @property
    def replicas(self) -> List[str]:
        return list(self._native.replicas())

    def logs(self, follow: bool = False) -> Iterator[str]:
        """The replicas' log lines, prefixed `[worker-1]` when there are several. With
        `follow=True`, keeps yielding until the job ends."""
        prefixed = len(self.replicas) > 1
        for replica, text in self._native.logs(follow):
            yield f"[{replica}] {text}" if prefixed else text

    def wait(self, timeout: Optional[float] = None) -> JobStatus:
        """Blocks until the job ends; raises `WaitTimeoutError` after `timeout` seconds."""
        return JobStatus._from_json(self._native.wait(timeout))

    def stream(self, file: Any = None) -> JobStatus:
        """Prints the logs as they come and returns the final status. Ctrl-C cancels the job."""
        return stream_lines(self, file or sys.stdout)

    def cancel(self) -> JobStatus:
        return JobStatus._from_json(self._native.cancel())

    def delete(self) -> None:
        """Cancels the job if it runs and removes its record, logs and code."""
        self._native.delete()

    def exec(self, argv: List[str], replica: Optional[str] = None) -> ExecResult:
        """Runs a program (`argv`: the program and its arguments, never through a shell) in a
        running replica (default: the first, e.g. `master-0`) in its working directory, as
        `kubectl exec` does. Raises `ConflictError` when the replica is not running."""
        return ExecResult(**_known_fields(ExecResult, json.loads(self._native.exec(list(argv), replica))))

    def copy_from(self, path: str, dest: str, replica: Optional[str] = None) -> CopiedFiles:
        """Copies the folder `path` of a running replica (relative to its working directory)
        into the local folder `dest`, streamed as `kubectl cp` does; links and special files
        are skipped and listed."""
        data = json.loads(self._native.copy_from(path, os.fspath(dest), replica))
        return CopiedFiles(**_known_fields(CopiedFiles, data))

    def restart(self) -> "Job":
        """Runs the job again with the same stored spec and code, under the same name."""
        return Job(self._native.restart())

    def describe(self) -> Description:
        """Everything that explains this job: spec, status, conditions, each pod (phase,
        container state and reason, exit code, restarts, node), the job's and pods' events, and
        the last 20 log lines of each replica (local jobs: spec, status and lines)."""
        return json.loads(_native.describe_json(self.name))

    def manifest(self) -> str:
        """The Kubernetes manifests of this run, as YAML (read-only preview)."""
        return self._native.manifest_yaml()

    def __repr__(self) -> str:
        return f"<kflow.Job {self.name} {self.status.phase}>"

    def _repr_html_(self) -> str:
        status = self.status
        colors = {"Succeeded": "#1a7f37", "Failed": "#cf222e", "Running": "#0969da", "Pending": "#9a6700"}
        rows = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td>{html.escape(r.phase)}</td>"
            f"<td>{'' if r.exit_code is None else r.exit_code}</td></tr>"
            for r in status.replicas
        )
        message = f"<div>{html.escape(status.message)}</div>" if status.message else ""
        return (
            f"<div><b>{html.escape(self.name)}</b> "
            f"<span style='color:{colors.get(status.phase, '#57606a')}'>{html.escape(status.phase)}</span>"
            f"{message}<table><tr><th>replica</th><th>phase</th><th>exit code</th></tr>{rows}</table></div>"
        )
