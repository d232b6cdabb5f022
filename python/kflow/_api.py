"""The functions of the public API."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _native
from ._job import Job, JobSummary
from ._options import PathLike, _fail, to_json
from ._types import Doctor, Identity


def run(
    script: PathLike,
    *,
    name: Optional[str] = None,
    kind: Optional[str] = None,
    image: Optional[str] = None,
    gpu: Optional[int] = None,
    cpu: Union[str, int, float, None] = None,
    mem: Union[str, int, None] = None,
    memory: Union[str, int, None] = None,
    workers: Optional[int] = None,
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
    backend: Optional[str] = None,
    wait: bool = False,
) -> Job:
    """Packages the script's folder and runs it as a training job.

    Returns at once with a `Job`; with `wait=True`, streams the logs to stdout and returns when
    the job has ended (Ctrl-C cancels it). `kind` is "pytorch" (default), "tf" or "mpi";
    `workers` counts all replicas. Explicit arguments override the template, which overrides
    the config file and the KFLOW_* environment.
    """
    options = to_json(
        script, name=name, kind=kind, image=image, gpu=gpu, cpu=cpu, mem=mem, memory=memory, workers=workers,
        pip=pip, requirements=requirements, apt=apt, env=env, args=args, namespace=namespace, template=template, project_root=project_root,
        code_mode=code_mode, pip_cache=pip_cache, pip_cache_size=pip_cache_size, backend=backend,
    )
    native = _native.submit(options)
    for warning in native.warnings():
        import warnings

        warnings.warn(warning, UserWarning, stacklevel=2)
    job = Job(native)
    if wait:
        job.stream()
    return job


def _preview(script: PathLike, with_code: bool = False, **params: Any):
    if not isinstance(with_code, bool):
        raise _fail("with_code", with_code, "True or False")
    return _native.preview(to_json(script, **params), with_code)


def yaml(script: PathLike, with_code: bool = False, **params: Any) -> str:
    """The manifests `run` would create, as YAML; nothing is created. Comment lines first say
    what travels. With `with_code=True` the code ConfigMaps carry the packaged project, so
    `kubectl apply -f` of the output creates a job that runs."""
    return _preview(script, with_code, **params)[1]


def manifests(script: PathLike, with_code: bool = False, **params: Any) -> List[Dict[str, Any]]:
    """The manifests `run` would create, as dicts; nothing is created."""
    return json.loads(_preview(script, with_code, **params)[2])


def get(name: str) -> Job:
    """The job with this name; raises `JobNotFoundError` if kflow does not know it."""
    return Job(_native.get(name))


def jobs() -> List[JobSummary]:
    """The jobs kflow knows, newest first. When a configured cluster cannot be listed, a
    `RuntimeWarning` says why and its jobs carry `stale=True` (their last known phase)."""
    listing = json.loads(_native.jobs_json())
    if listing.get("cluster_problem"):
        import warnings

        warnings.warn(listing["cluster_problem"], RuntimeWarning, stacklevel=2)
    return [JobSummary._from_json(j) for j in listing["jobs"]]


def doctor() -> Doctor:
    """Which cluster connection kflow uses (session, kubeconfig + context, or in-cluster), the
    API server, the user, the namespace and the Kubeflow kinds served; with no cluster
    configured, says that runs use the local backend. Never holds a token."""
    return json.loads(_native.doctor_json())


def templates(project_root: Optional[PathLike] = None) -> List[Dict[str, str]]:
    """The job templates of the project (default: current folder) and of the user."""
    root = None if project_root is None else str(project_root)
    return json.loads(_native.templates_json(root))


def _identity(payload: str) -> Identity:
    who = json.loads(payload)
    notice = who.pop("notice", None)
    if notice:
        import warnings

        warnings.warn(notice, RuntimeWarning, stacklevel=3)
    return who


def _can_prompt() -> bool:
    """A terminal, or a Jupyter (IPython) kernel whose front end answers `input`/`getpass`."""
    import sys

    if sys.stdin is not None and sys.stdin.isatty():
        return True
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
    except Exception:  # pragma: no cover - defensive: an odd IPython
        return False
    return getattr(shell, "kernel", None) is not None


def login(
    url: Optional[str] = None,
    username: Optional[str] = None,
    password: Optional[str] = None,
    store_password: bool = False,
    api_server: Optional[str] = None,
) -> Identity:
    """Signs in to Kubeflow with a username and password (Keycloak or Dex behind Kubeflow's
    gateway) and keeps the session — refresh token and cookies, never the password unless
    `store_password=True` — in the OS keyring (in memory when there is none; a warning says so).

    What is not given is asked for when running interactively (the password with `getpass`).
    `url` defaults to the configured one (`KFLOW_URL`, config.toml) or the last one used.
    `api_server` is the Kubernetes API server when it is not the Kubeflow URL (also
    `apiServer` in config.toml or KFLOW_API_SERVER).
    Returns who is signed in (`kflow.whoami()`); nothing secret is in it.
    """
    interactive = _can_prompt()
    if url is None:
        url = _native.auth_default_url()
        if url is None and interactive:
            url = input("Kubeflow URL: ").strip()
    if username is None:
        if not interactive:
            raise ValueError("kflow.login: pass username=... (no terminal or notebook to ask on)")
        username = input("Username: ").strip()
    if password is None:
        if not interactive:
            raise ValueError("kflow.login: pass password=... (no terminal or notebook to ask on)")
        import getpass

        password = getpass.getpass("Password: ")
    return _identity(_native.auth_login(username, password, url, store_password, api_server))


def logout() -> Identity:
    """Signs out: ends the session and removes every secret kflow stored. Returns who was
    signed in (`signed_in` is False when nobody was)."""
    return _identity(_native.auth_logout())


def whoami() -> Identity:
    """Who is signed in: `signed_in`, `url`, `username`, `expires_at`, `store` ("keyring" or
    "memory") and `store_description`. No network; nothing secret."""
    return _identity(_native.auth_whoami())
