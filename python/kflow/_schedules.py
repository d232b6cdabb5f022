"""Schedules: a run's pod on a cron schedule, as a Kubernetes CronJob on the cluster, so it runs
while this machine is off. The CronJob owns its code and an outputs claim; each run writes to
`$KFLOW_OUTPUT_DIR` on that claim, and `Schedule.collect` brings those files here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _native
from ._job import CopiedFiles, _known_fields
from ._options import PathLike, _fail, _path, to_json

_KEEP = object()


@dataclass(frozen=True)
class ScheduledRun:
    """One run of a schedule: `phase` is Pending, Running, Succeeded or Failed; `reason` says
    why it failed (`OOMKilled`, `Error`, `DeadlineExceeded`)."""

    name: str
    phase: str
    reason: Optional[str] = None
    message: Optional[str] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    manual: bool = False

    @property
    def done(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


class Schedule:
    """A schedule on the cluster (a CronJob kflow made): change it, pause it, start a run now,
    list its runs, collect their outputs, delete it with everything it owns."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self._info: Dict[str, Any] = json.loads(native.info_json())

    name = property(lambda self: self._info["name"])
    namespace = property(lambda self: self._info["namespace"])
    cron = property(lambda self: self._info["cron"], doc="The cron expression.")
    timezone = property(lambda self: self._info.get("timezone"))
    suspended = property(lambda self: bool(self._info.get("suspended")))
    last_schedule_time = property(lambda self: self._info.get("last_schedule_time"))
    script = property(lambda self: self._info.get("script"))
    image = property(lambda self: self._info.get("image"))

    def refresh(self) -> "Schedule":
        self._info = json.loads(self._native.refresh_json())
        return self

    def update(self, *, cron: Optional[str] = None, timezone: Any = _KEEP, suspend: Optional[bool] = None) -> "Schedule":
        """Changes the cron expression, the time zone (`None` goes back to the cluster's) or
        pauses (`suspend=True`) and resumes it."""
        if cron is not None and not isinstance(cron, str):
            raise _fail("cron", cron, 'a cron expression such as "0 6 * * *"')
        if suspend is not None and not isinstance(suspend, bool):
            raise _fail("suspend", suspend, "True or False")
        if timezone is not _KEEP and timezone is not None and not isinstance(timezone, str):
            raise _fail("timezone", timezone, 'a time zone name such as "Europe/Berlin", or None')
        self._info = json.loads(self._native.update_json(
            cron=cron, timezone=None if timezone is _KEEP else timezone,
            clear_timezone=timezone is None, suspend=suspend,
        ))
        return self

    def pause(self) -> "Schedule":
        return self.update(suspend=True)

    def resume(self) -> "Schedule":
        return self.update(suspend=False)

    def trigger(self) -> str:
        """Starts a run now (as `kubectl create job --from=cronjob/NAME`); returns its name."""
        return self._native.trigger()

    def runs(self) -> List[ScheduledRun]:
        """The runs the cluster keeps, oldest first."""
        return [ScheduledRun(**_known_fields(ScheduledRun, r)) for r in json.loads(self._native.runs_json())]

    def collect(self, runs: Union[str, Sequence[str]], dest: PathLike) -> Dict[str, CopiedFiles]:
        """Moves the outputs of `runs` off the schedule's claim into `dest/<run>/` (through one
        short-lived reader pod); a run that wrote nothing gives an empty copy."""
        names = [runs] if isinstance(runs, str) else list(runs)
        if not all(isinstance(r, str) for r in names):
            raise _fail("runs", runs, "a run name or a list of run names")
        collected = json.loads(self._native.collect_json(names, _path("dest", dest)))
        return {c["run"]: CopiedFiles(**_known_fields(CopiedFiles, c["copied"])) for c in collected}

    def delete_run(self, run: str) -> None:
        """Removes a run (its Job and pod) from the cluster."""
        self._native.delete_run(run)

    def delete(self, wait: bool = False) -> None:
        """Deletes the schedule, its runs, its code and its outputs claim; with `wait=True`,
        returns once they are gone (a schedule of the same name can then be made again)."""
        if not isinstance(wait, bool):
            raise _fail("wait", wait, "True or False")
        self._native.delete(wait)

    def __repr__(self) -> str:
        state = "paused" if self.suspended else "active"
        return f"<kflow.Schedule {self.name} {self.cron!r} {state}>"


def schedule(
    script: PathLike,
    cron: str,
    *,
    timezone: Optional[str] = None,
    suspend: bool = False,
    outputs_size: Optional[str] = None,
    timeout_seconds: Optional[int] = None,
    name: Optional[str] = None,
    image: Optional[str] = None,
    gpu: Optional[int] = None,
    cpu: Union[str, int, float, None] = None,
    mem: Union[str, int, None] = None,
    memory: Union[str, int, None] = None,
    pip: Union[str, Sequence[str], None] = None,
    requirements: Optional[PathLike] = None,
    apt: Union[str, Sequence[str], None] = None,
    env: Optional[Mapping[str, Any]] = None,
    args: Union[str, Sequence[str], None] = None,
    namespace: Optional[str] = None,
    template: Optional[str] = None,
    project_root: Optional[PathLike] = None,
    code_mode: Optional[str] = None,
    pip_cache: Optional[bool] = None,
    pip_cache_size: Optional[str] = None,
) -> Schedule:
    """Packages the script's folder and runs it on the cluster at each time `cron` names (five
    fields, e.g. "0 6 * * 1-5", or "@daily"), as a CronJob: it runs while this machine is off.
    The run options are `run`'s; a scheduled run is one pod, ended after `timeout_seconds`.
    Nothing is created when any value is wrong."""
    if not isinstance(cron, str):
        raise _fail("cron", cron, 'a cron expression such as "0 6 * * *"')
    if timezone is not None and not isinstance(timezone, str):
        raise _fail("timezone", timezone, 'a time zone name such as "Europe/Berlin"')
    if not isinstance(suspend, bool):
        raise _fail("suspend", suspend, "True or False")
    if outputs_size is not None and not isinstance(outputs_size, str):
        raise _fail("outputs_size", outputs_size, 'a quantity such as "1Gi"')
    if timeout_seconds is not None and (isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int) or timeout_seconds <= 0):
        raise _fail("timeout_seconds", timeout_seconds, "a positive whole number of seconds")
    options = to_json(
        script, name=name, image=image, gpu=gpu, cpu=cpu, mem=mem, memory=memory, pip=pip,
        requirements=requirements, apt=apt, env=env, args=args, namespace=namespace, template=template,
        project_root=project_root, code_mode=code_mode, pip_cache=pip_cache, pip_cache_size=pip_cache_size,
    )
    native = _native.schedule(options, cron, timezone, suspend, outputs_size, timeout_seconds)
    for warning in native.warnings():
        import warnings

        warnings.warn(warning, UserWarning, stacklevel=2)
    return Schedule(native)


def get_schedule(name: str, namespace: Optional[str] = None) -> Schedule:
    """The schedule kflow made with this name (in `namespace`, default the connection's);
    raises `JobNotFoundError` when there is none."""
    if not isinstance(name, str):
        raise _fail("name", name, "a schedule name")
    if namespace is not None and not isinstance(namespace, str):
        raise _fail("namespace", namespace, "a namespace name")
    return Schedule(_native.get_schedule(name, namespace))


def schedules(namespace: Optional[str] = None) -> List[Dict[str, Any]]:
    """The schedules kflow made in `namespace` (default the connection's), by name."""
    if namespace is not None and not isinstance(namespace, str):
        raise _fail("namespace", namespace, "a namespace name")
    return json.loads(_native.schedules_json(namespace))
