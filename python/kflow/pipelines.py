"""Kubeflow Pipelines as the signed-in user (`kflow.login()` or `kflow login`).

    import kflow
    kflow.pipelines.upload("pipeline.yaml", name="train")
    run = kflow.pipelines.run("train", parameters={"epochs": 3})
    run.wait()["state"]   # "SUCCEEDED"

Pipelines, versions and experiments are named by name or id. `namespace` defaults to
`defaultNamespace` of kflow's config, else the user's first Kubeflow profile namespace.
Listings return a `Page`: pass its `next` back as `cursor=` for the next one.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional

from . import _native
from ._options import PathLike, _fail, _path
from ._pages import Page, _cursor, _limit, _optional_text


def list(namespace: Optional[str] = None, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page:
    """The pipelines of the namespace and the shared ones (dicts: id, name, description,
    namespace — None when shared —, created_at)."""
    return Page._from_json(_native.pipelines_list_json(_optional_text("namespace", namespace), _limit(limit),
                                            _cursor(cursor)))


def versions(pipeline: str, namespace: Optional[str] = None, limit: Optional[int] = None,
             cursor: Optional[str] = None) -> Page:
    """The versions of a pipeline (by name or id), newest first."""
    if not isinstance(pipeline, str):
        raise _fail("pipeline", pipeline, "the pipeline's name or id")
    return Page._from_json(_native.pipelines_versions_json(pipeline, _optional_text("namespace", namespace), _limit(limit),
                                                _cursor(cursor)))


def experiments(namespace: Optional[str] = None, limit: Optional[int] = None,
                cursor: Optional[str] = None) -> Page:
    """The experiments of the namespace."""
    return Page._from_json(_native.pipelines_experiments_json(_optional_text("namespace", namespace), _limit(limit),
                                                   _cursor(cursor)))


def runs(namespace: Optional[str] = None, experiment: Optional[str] = None, limit: Optional[int] = None,
         cursor: Optional[str] = None) -> Page:
    """Runs with their `state`, newest first: of the namespace, or of one experiment (name or id)."""
    return Page._from_json(_native.pipelines_runs_json(_optional_text("namespace", namespace), _optional_text("experiment", experiment),
                                            _limit(limit), _cursor(cursor)))


def upload(path: PathLike, name: Optional[str] = None, *, description: Optional[str] = None,
           version: Optional[str] = None, namespace: Optional[str] = None, shared: bool = False) -> Dict[str, Any]:
    """Uploads a compiled pipeline (the YAML `kfp.compiler.Compiler().compile` writes) as a new
    pipeline `name` (default: its pipelineInfo.name), or with `version=` as a new version of the
    existing pipeline `name`. `shared=True` makes it visible to every user. Returns
    `{"pipeline": {...}, "version": {...}}`."""
    if not isinstance(shared, bool):
        raise _fail("shared", shared, "True or False")
    request = {"path": _path("path", path), "name": _optional_text("name", name),
               "description": _optional_text("description", description), "version": _optional_text("version", version),
               "namespace": _optional_text("namespace", namespace), "shared": shared}
    return json.loads(_native.pipelines_upload_json(json.dumps(request)))


class PipelineRun:
    """A pipeline run: `id`, `name`, and the run as it was last seen (`info`)."""

    def __init__(self, info: Dict[str, Any]):
        self.info = info

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def state(self) -> str:
        """The state last seen: PENDING, RUNNING, SUCCEEDED, FAILED, … (`status()` refreshes it)."""
        return self.info["state"]

    def status(self) -> Dict[str, Any]:
        """The run now: id, name, state, created_at, finished_at, parameters, error, history."""
        self.info = json.loads(_native.pipelines_get_run_json(self.id))
        return self.info

    def wait(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits until the run ends and returns it (`["state"]` says how it ended); raises
        `WaitTimeoutError` after `timeout` seconds (the run goes on). Ctrl-C stops waiting."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise _fail("timeout", timeout, "a number of seconds or None")
        self.info = json.loads(_native.pipelines_wait_json(self.id, None if timeout is None else float(timeout)))
        return self.info

    def __repr__(self) -> str:
        return f"PipelineRun(id={self.id!r}, name={self.name!r}, state={self.state!r})"


def _parameters(value: Any) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _fail("parameters", value, 'a dict of parameter names to values, e.g. {"epochs": 3}')
    try:
        json.dumps(dict(value))
    except (TypeError, ValueError):
        raise _fail("parameters", value, "values that are strings, numbers, booleans, lists or dicts") from None
    return dict(value)


def run(pipeline: str, parameters: Optional[Mapping[str, Any]] = None, *, version: Optional[str] = None,
        experiment: Optional[str] = None, name: Optional[str] = None, namespace: Optional[str] = None,
        wait: bool = False) -> PipelineRun:
    """Starts a run of a pipeline (by name or id; `version` by name or id, default the newest)
    in `experiment` (by name or id, created when the name is new; default "Default"). Text
    values of `parameters` are typed as the pipeline declares them ("3" for an integer). With
    `wait=True` returns once the run has ended."""
    if not isinstance(pipeline, str):
        raise _fail("pipeline", pipeline, "the pipeline's name or id")
    if not isinstance(wait, bool):
        raise _fail("wait", wait, "True or False")
    request = {"pipeline": pipeline, "parameters": _parameters(parameters), "version": _optional_text("version", version),
               "experiment": _optional_text("experiment", experiment), "name": _optional_text("name", name),
               "namespace": _optional_text("namespace", namespace)}
    started = PipelineRun(json.loads(_native.pipelines_run_json(json.dumps(request))))
    if wait:
        started.wait()
    return started


def get_run(run_id: str) -> PipelineRun:
    """The run with this id, as it is now."""
    if not isinstance(run_id, str):
        raise _fail("run_id", run_id, "a run id (a string)")
    return PipelineRun(json.loads(_native.pipelines_get_run_json(run_id)))


__all__ = ["PipelineRun", "experiments", "get_run", "list", "run", "runs", "upload", "versions"]
