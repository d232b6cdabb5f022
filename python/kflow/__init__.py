"""kflow: run and watch Kubeflow training jobs from Python, Jupyter and VS Code.

    import kflow
    job = kflow.run("train.py", gpu=1, pip=["torchvision"])
    for line in job.logs(follow=True):
        print(line)
    job.wait()

With no cluster configured, jobs run on the local backend: this machine, with the same
packaging, startup chain and operator environment variables as on Kubeflow.

Signed in (`kflow.login()`), `kflow.pipelines` and `kflow.models` reach Kubeflow Pipelines and
the Model Registry.
"""

# Not `typing.TYPE_CHECKING`: importing typing alone costs more than the rest of this module.
TYPE_CHECKING = False

# `import kflow` loads nothing more than this module (the kernel and the CLI start with it):
# each name is imported where it lives on first use.
_HOMES = {
    "._native": ("BackendError", "ConflictError", "JobNotFoundError", "KflowError", "NotInstalledError",
                 "PackagingError", "TemplateError", "ValidationError", "WaitTimeoutError", "__version__"),
    "._api": ("doctor", "get", "jobs", "login", "logout", "manifests", "run", "templates", "whoami", "yaml"),
    "._job": ("CopiedFiles", "ExecResult", "Job", "JobStatus", "JobSummary", "ReplicaStatus"),
    "._namespace": ("Namespace", "PortForward", "dashboard", "namespace"),
    "._pages": ("Page",),
    "._schedules": ("Schedule", "ScheduledRun", "get_schedule", "schedule", "schedules"),
    "._types": ("Description", "Doctor", "Identity"),
}
_HOME_OF = {name: home for home, names in _HOMES.items() for name in names}
_SUBMODULES = ("models", "pipelines")

if TYPE_CHECKING:
    from . import models, pipelines
    from ._api import doctor, get, jobs, login, logout, manifests, run, templates, whoami, yaml
    from ._job import CopiedFiles, ExecResult, Job, JobStatus, JobSummary, ReplicaStatus
    from ._namespace import Namespace, PortForward, dashboard, namespace
    from ._native import (
        BackendError,
        ConflictError,
        JobNotFoundError,
        KflowError,
        NotInstalledError,
        PackagingError,
        TemplateError,
        ValidationError,
        WaitTimeoutError,
        __version__,
    )
    from ._pages import Page
    from ._schedules import Schedule, ScheduledRun, get_schedule, schedule, schedules
    from ._types import Description, Doctor, Identity


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        value = __import__(f"{__name__}.{name}", fromlist=["_"])
    elif name in _HOME_OF:
        value = getattr(__import__(f"{__name__}{_HOME_OF[name]}", fromlist=[name]), name)
    else:
        raise AttributeError(f"module 'kflow' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_HOME_OF) | set(_SUBMODULES))


__all__ = [
    "BackendError",
    "ConflictError",
    "CopiedFiles",
    "Description",
    "Doctor",
    "ExecResult",
    "Identity",
    "Job",
    "JobNotFoundError",
    "JobStatus",
    "JobSummary",
    "KflowError",
    "Namespace",
    "NotInstalledError",
    "PackagingError",
    "Page",
    "PortForward",
    "ReplicaStatus",
    "Schedule",
    "ScheduledRun",
    "TemplateError",
    "ValidationError",
    "WaitTimeoutError",
    "__version__",
    "dashboard",
    "doctor",
    "get",
    "get_schedule",
    "jobs",
    "login",
    "logout",
    "manifests",
    "models",
    "namespace",
    "pipelines",
    "run",
    "schedule",
    "schedules",
    "templates",
    "whoami",
    "yaml",
]


def load_ipython_extension(ipython):  # pragma: no cover - exercised through IPython
    """`%load_ext kflow` registers the `%kflow_run` magic."""
    from .magics import load_ipython_extension as load

    load(ipython)
