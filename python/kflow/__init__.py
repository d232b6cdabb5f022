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
from . import models, pipelines
from ._api import doctor, get, jobs, login, logout, manifests, run, templates, whoami, yaml
from ._job import Job, JobStatus, JobSummary, ReplicaStatus
from ._namespace import Namespace, PortForward, dashboard, namespace
from ._pages import Page
from ._types import Description, Doctor, Identity

__all__ = [
    "BackendError",
    "ConflictError",
    "Description",
    "Doctor",
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
    "TemplateError",
    "ValidationError",
    "WaitTimeoutError",
    "__version__",
    "dashboard",
    "doctor",
    "get",
    "jobs",
    "login",
    "logout",
    "manifests",
    "models",
    "namespace",
    "pipelines",
    "run",
    "templates",
    "whoami",
    "yaml",
]


def load_ipython_extension(ipython):  # pragma: no cover - exercised through IPython
    """`%load_ext kflow` registers the `%kflow_run` magic."""
    from .magics import load_ipython_extension as load

    load(ipython)
