"""jupyter-scheduler runs notebooks through kflow.

    # jupyter_server_config.py
    c.SchedulerApp.scheduler_class = "kflow.scheduler.KflowScheduler"
    c.SchedulerApp.environment_manager_class = "kflow.scheduler.KflowEnvironmentManager"

(`KflowScheduler` runs jobs with `KflowExecutionManager`; with jupyter-scheduler's own scheduler,
`c.Scheduler.execution_manager_class = "kflow.scheduler.KflowExecutionManager"` runs them
through kflow too, but its Stop then ends only the waiting process, not the kflow job.)

Each notebook job becomes a kflow job: the notebook (and its folder when the job packages it)
is packaged by kflow, executed with nbclient in the job's environment, and its outputs land in
jupyter-scheduler's staging paths under the names it expects. Stop and delete reach the kflow
job (`KflowScheduler`), not only the process that waits for it.

The environments the UI offers are "kflow" and each kflow job template (a template's
resources then apply); a job's runtime environment parameters (`image`, `gpu`, `cpu`, `memory`,
`pip`, `namespace`, `template`, `timeout_seconds`, `start_timeout_seconds`, `backend`) come
before the template, then kflow's settings. The local backend (this machine) is the default; on
a cluster (`backend: cluster`) the pod's outputs come back through exec (`Job.copy_from`).

A job definition with a schedule on the cluster becomes a Kubernetes CronJob (`kflow.schedule`),
so it runs while JupyterLab is closed; pausing, changing and deleting the definition change or
delete the CronJob. Its runs write their outputs to the CronJob's own claim; listing the jobs
imports finished runs in the background, so they appear, outputs and all, on a later look. On the local backend, definitions
fire through jupyter-scheduler's own task runner, while the server runs.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

import nbformat
from jupyter_scheduler.environments import EnvironmentManager
from jupyter_scheduler.exceptions import SchedulerError
from jupyter_scheduler.executors import ExecutionManager
from jupyter_scheduler.models import (
    CountJobsQuery,
    CreateJob,
    CreateJobDefinition,
    DescribeJob,
    DescribeJobDefinition,
    JobFeature,
    ListJobsQuery,
    RuntimeEnvironment,
    Status,
    UpdateJobDefinition,
)
from jupyter_scheduler.orm import Job as JobRecord
from jupyter_scheduler.orm import JobDefinition as DefinitionRecord
from jupyter_scheduler.scheduler import Scheduler
from jupyter_scheduler.task_runner import TaskRunner
from jupyter_scheduler.utils import find_cell_index_with_tag, get_utc_timestamp
from traitlets import default

from . import _notebook_runner

RUNNER = "_kflow_notebook_runner.py"
RESOURCE_KEYS = (
    "image", "gpu", "cpu", "memory", "pip", "namespace", "template", "backend", "timeout_seconds",
    "start_timeout_seconds",
)
# How long a cluster job may wait while the cluster says it cannot start it (an autoscaler may
# yet add the GPU node; a wrong image never comes).
DEFAULT_START_TIMEOUT = 300.0
BLOCKING_REASONS = ("Unschedulable", "ImagePullBackOff")
# Where a pod's runner writes (relative to its folder) and how long it keeps them for kflow.
CLUSTER_OUTPUT_DIR = ".kflow-outputs"
OUTPUT_HOLD_SECONDS = 900
# What nbconvert writes (`script` is the notebook's code as .py; pdf needs LaTeX where it runs).
OUTPUT_FORMATS = {
    "ipynb": "Notebook", "html": "HTML", "script": "Script", "markdown": "Markdown",
    "pdf": "PDF", "latex": "LaTeX", "rst": "reStructuredText", "asciidoc": "AsciiDoc",
}
DEFAULT_ENVIRONMENT = "kflow"
PROJECT_PREFIX = ".kflow-project-"


# A scheduled run's outputs: generic names on the claim, renamed to the job's on import.
SCHEDULED_OUTPUT = "output"
OUTPUT_DIR_ENV = "KFLOW_OUTPUT_DIR"
# How often listing the jobs looks for finished scheduled runs on the cluster.
IMPORT_INTERVAL_SECONDS = 5.0
IMPORT_TOKEN_PREFIX = "kflow-run:"


def kflow_schedule_name(job_definition_id: str) -> str:
    """The CronJob of a job definition: derived from its id, like `kflow_job_name`."""
    return "nbdef-" + job_definition_id.replace("-", "")[:12]


def kflow_job_name(job_id: str) -> str:
    """The kflow job of a jupyter-scheduler job: derived from its id, so stop and delete find it
    from the job record alone."""
    return "nb-" + job_id.replace("-", "")[:12]


class NotebookJobError(SchedulerError):
    """A notebook job that cannot run as asked: what was wrong and how to fix it."""


class NotebookJobCancelled(Exception):
    """The kflow job was cancelled from elsewhere (`kflow cancel`, the VS Code panel): the
    notebook job is STOPPED, not FAILED."""


def check_resources(params: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The kflow options of a job's runtime environment parameters; unknown keys are refused."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(RESOURCE_KEYS))
    if unknown:
        raise NotebookJobError(
            f"runtime environment parameters: {', '.join(unknown)} unknown to kflow; "
            f"use {', '.join(RESOURCE_KEYS)}"
        )
    for key in ("timeout_seconds", "start_timeout_seconds"):
        if params.get(key) in (None, ""):
            continue
        try:
            seconds = float(params[key])
        except (TypeError, ValueError):
            seconds = -1
        if not seconds > 0:
            raise NotebookJobError(f"{key}: {params[key]!r} is not a positive number of seconds")
        params[key] = seconds
    backend = params.get("backend") or "local"
    if backend not in ("local", "cluster"):
        raise NotebookJobError(f"backend: {backend!r} is not local or cluster")
    params["backend"] = backend
    return {k: v for k, v in params.items() if v not in (None, "")}


def parameter_cell_source(parameters: Dict[str, str]) -> str:
    """jupyter-scheduler's parameters as code, values as data: a value that reads as a Python
    literal (`5`, `0.1`, `'a'`, `[1, 2]`) keeps its type, anything else is a string; the source
    is built with repr, so a value never becomes code."""
    lines = []
    for key, value in parameters.items():
        if not key.isidentifier():
            raise NotebookJobError(f"parameter {key!r}: not a Python name; use letters, digits and _")
        try:
            literal = ast.literal_eval(value) if isinstance(value, str) else value
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            literal = value
        lines.append(f"{key} = {literal!r}")
    return "\n".join(lines)


def add_parameters(nb: Any, parameters: Dict[str, str]) -> Any:
    """Inserts the parameters cell where jupyter-scheduler does: in place of an
    `injected-parameters` cell, else after the `parameters` cell, else first."""
    cell = nbformat.v4.new_code_cell(source=parameter_cell_source(parameters))
    cell.metadata["tags"] = ["injected-parameters"]
    injected = find_cell_index_with_tag(nb, "injected-parameters")
    tagged = find_cell_index_with_tag(nb, "parameters")
    if injected >= 0:
        nb.cells[injected] = cell
    elif tagged >= 0:
        nb.cells.insert(tagged + 1, cell)
    else:
        nb.cells.insert(0, cell)
    return nb


def stage_project(
    model: Any, input_path: str, project: str, outputs: Dict[str, str], *, output_dir: str,
    hold_seconds: Optional[float] = None, output_dir_env: Optional[str] = None,
) -> Dict[str, Any]:
    """The folder a notebook job travels as: the parameterised notebook, the files packaged
    with it (`package_input_folder`), the runner and its plan (`outputs`: format -> file name)."""
    staging_dir = os.path.dirname(input_path)
    with open(input_path, encoding="utf-8") as f:
        nb = nbformat.read(f, as_version=4)
    if model.parameters:
        nb = add_parameters(nb, model.parameters)
    if model.package_input_folder:
        for rel in model.packaged_files or []:
            src = os.path.join(staging_dir, rel)
            if os.path.isfile(src) and not os.path.islink(src):
                os.makedirs(os.path.dirname(os.path.join(project, rel)), exist_ok=True)
                shutil.copy2(src, os.path.join(project, rel))
    notebook = os.path.basename(input_path)
    with open(os.path.join(project, notebook), "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    shutil.copyfile(_notebook_runner.__file__, os.path.join(project, RUNNER))
    plan = {
        "notebook": notebook,
        "kernel": (nb.metadata.get("kernelspec") or {}).get("name") or "python3",
        "cell_timeout": None,
        "outputs": outputs,
        "output_dir": output_dir,
        "hold_seconds": hold_seconds,
        "output_dir_env": output_dir_env,
    }
    with open(os.path.join(project, _notebook_runner.PLAN), "w", encoding="utf-8") as f:
        json.dump(plan, f)
    return plan


class KflowEnvironmentManager(EnvironmentManager):
    """The environments a notebook job can run in: kflow's defaults and each job template."""

    def list_environments(self) -> List[RuntimeEnvironment]:
        import kflow

        # The form checks every format an environment offers: only those that can be written
        # here (nbconvert's PDF needs LaTeX).
        formats = [f for f in OUTPUT_FORMATS if f != "pdf" or shutil.which("xelatex")]

        def env(name: str, label: str, description: str, template: str = "") -> RuntimeEnvironment:
            return RuntimeEnvironment(
                name=name, label=label, description=description, file_extensions=["ipynb"],
                output_formats=formats, metadata={"template": template},
                compute_types=None, default_compute_type=None, utc_only=False,
            )

        out = [env(DEFAULT_ENVIRONMENT, "kflow", "kflow's settings (local backend unless configured)")]
        for t in kflow.templates():
            out.append(env(f"kflow:{t['name']}", f"kflow template {t['name']}", f"Job template {t['name']} ({t['path']})", t["name"]))
        return out

    def manage_environments_command(self) -> str:
        return "kflow templates"

    def output_formats_mapping(self) -> Dict[str, str]:
        return dict(OUTPUT_FORMATS)


def template_of(environment: Optional[str]) -> Optional[str]:
    """The kflow template a runtime environment name selects (`kflow:<template>`)."""
    if environment and environment.startswith("kflow:"):
        return environment[len("kflow:"):]
    return None


class KflowExecutionManager(ExecutionManager):
    """Runs a jupyter-scheduler job as a kflow job and waits for it (watched, not polled)."""

    def execute(self) -> None:
        import kflow

        job = self.model
        options = check_resources(job.runtime_environment_parameters)
        timeout = options.pop("timeout_seconds", None)
        start_timeout = options.pop("start_timeout_seconds", DEFAULT_START_TIMEOUT)
        on_cluster = options["backend"] == "cluster"
        template = template_of(job.runtime_environment_name)
        if template and "template" not in options:
            options["template"] = template
        staging_dir = os.path.dirname(self.staging_paths["input"])
        marks = [time.perf_counter()]
        # Inside the staging folder: a Stop kills this process before it can clean up, and
        # jupyter-scheduler deletes the folder with the job.
        with tempfile.TemporaryDirectory(prefix=PROJECT_PREFIX, dir=staging_dir) as project:
            outputs = {fmt: os.path.basename(path) for fmt, path in self.staging_paths.items() if fmt != "input"}
            # A pod writes beside itself and holds its outputs for `_collect`; this machine
            # writes straight into the staging folder.
            plan = stage_project(
                job, self.staging_paths["input"], project, outputs,
                output_dir=CLUSTER_OUTPUT_DIR if on_cluster else staging_dir,
                hold_seconds=OUTPUT_HOLD_SECONDS if on_cluster else None,
            )
            marks.append(time.perf_counter())
            kjob = kflow.run(
                os.path.join(project, RUNNER),
                name=kflow_job_name(job.job_id),
                project_root=project,
                env={"PYTHONUNBUFFERED": "1"},
                # The local backend runs in this environment, which has what the runner needs
                # (jupyter-scheduler brings nbclient and nbconvert); on a cluster the image must.
                **options,
            )
            marks.append(time.perf_counter())
            deadline = None if timeout is None else time.monotonic() + timeout
            copying = self._collect(kjob, staging_dir, deadline, start_timeout) if on_cluster else 0.0
            status = self._wait(kjob, deadline, timeout)
            marks.append(time.perf_counter())
        self._record_side_files(staging_dir, plan)
        marks.append(time.perf_counter())
        stage, submit, run, record = (round((b - a) * 1000) for a, b in zip(marks, marks[1:]))
        # One line per job in the server's log: where a notebook job's time went.
        print(f"kflow: notebook job {kjob.name} {status.phase}: staged {stage} ms, packaged and submitted "
              f"{submit} ms, ran {run} ms (copying the outputs out {round(copying * 1000)} ms), "
              f"outputs recorded {record} ms", file=sys.stderr, flush=True)
        if status.reason == "Cancelled":
            raise NotebookJobCancelled(f"the kflow job {kjob.name} was cancelled")
        if not status.succeeded:
            raise NotebookJobError(self._failure(staging_dir, status, kjob))

    def _collect(self, kjob: Any, staging_dir: str, deadline: Optional[float], start_timeout: float) -> float:
        """A pod's outputs: the runner says when they are written and keeps the pod until
        kflow has copied its output folder (tar through the API server's exec, streamed, so
        any size arrives) and released it. A pod the cluster cannot start (Unschedulable,
        ImagePullBackOff) fails the job after `start_timeout_seconds`."""
        import kflow

        ready = threading.Event()

        def watch_logs() -> None:
            try:
                for line in kjob.logs(follow=True):
                    if line.startswith(_notebook_runner.OUTPUTS_READY):
                        ready.set()
                        return
            except Exception:  # the status loop below sees why the job ended
                pass

        threading.Thread(target=watch_logs, name=f"kflow-logs-{kjob.name}", daemon=True).start()
        blocked_since = None
        shown = None
        while not ready.wait(0.25):
            status = kjob.status
            if status.done:
                return 0.0
            now = time.monotonic()
            if deadline is not None and now > deadline:
                return 0.0  # `_wait` cancels and says so
            if status.phase == "Pending" and status.reason in BLOCKING_REASONS:
                blocked_since = blocked_since or now
                if (status.reason, status.message) != shown:
                    shown = (status.reason, status.message)
                    self._set_status_message(f"{status.reason}: {status.message}")
                if now - blocked_since > start_timeout:
                    kjob.cancel()
                    raise NotebookJobError(
                        f"{status.reason}: {status.message} (the kflow job {kjob.name} waited "
                        f"{start_timeout:g} s and was cancelled)"
                    )
            else:
                blocked_since = None
        start = time.perf_counter()
        try:
            kjob.copy_from(CLUSTER_OUTPUT_DIR, staging_dir)
        except kflow.KflowError as e:
            raise NotebookJobError(f"collecting the outputs from the kflow job {kjob.name}: {e}") from None
        finally:
            copying = time.perf_counter() - start
            try:
                kjob.exec(["touch", _notebook_runner.RELEASE])
            except kflow.KflowError:
                pass  # the pod ended already; the runner's hold ends it otherwise
        if shown:
            self._set_status_message("")
        return copying

    def _set_status_message(self, message: str) -> None:
        with self.db_session() as session:
            session.query(JobRecord).filter(JobRecord.job_id == self.job_id).update({"status_message": message})
            session.commit()

    def on_failure(self, e: Exception) -> None:
        if not isinstance(e, NotebookJobCancelled):
            return super().on_failure(e)
        with self.db_session() as session:
            session.query(JobRecord).filter(JobRecord.job_id == self.job_id).update(
                {"status": Status.STOPPED, "status_message": str(e), "end_time": get_utc_timestamp()}
            )
            session.commit()

    def _wait(self, kjob: Any, deadline: Optional[float], timeout: Optional[float]) -> Any:
        import kflow

        try:
            return kjob.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except kflow.WaitTimeoutError:
            kjob.cancel()
            raise NotebookJobError(f"timed out after {timeout:g} s (timeout_seconds); the kflow job {kjob.name} was cancelled")

    def _failure(self, staging_dir: str, status: Any, kjob: Any) -> str:
        error_file = os.path.join(staging_dir, _notebook_runner.ERROR_FILE)
        if os.path.exists(error_file):
            return take_cell_error(error_file)
        # The runner could not start the notebook (the image lacks nbclient, say): its words.
        said = [line for line in kjob.logs() if line.startswith(_notebook_runner.CANNOT_START)]
        if said:
            return said[-1]
        reason = f"{status.reason}: {status.message}" if status.message else (status.reason or status.phase)
        return f"the kflow job failed ({reason})"

    def _record_side_files(self, staging_dir: str, plan: Dict[str, Any]) -> None:
        """Files the notebook wrote beside itself are the job's too, as with the default
        executor (they are in the job's staging folder only on the local backend)."""
        known = set(plan["outputs"].values()) | {plan["notebook"], _notebook_runner.ERROR_FILE}
        found: List[str] = []
        for root, dirs, files in os.walk(staging_dir):
            dirs[:] = [d for d in dirs if not d.startswith(PROJECT_PREFIX)]
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), staging_dir)
                if rel not in known:
                    found.append(rel)
        if not found:
            return
        with self.db_session() as session:
            current = set(session.query(JobRecord.packaged_files).filter(JobRecord.job_id == self.job_id).scalar() or [])
            session.query(JobRecord).filter(JobRecord.job_id == self.job_id).update(
                {"packaged_files": sorted(current | set(found))}
            )
            session.commit()

    # jupyter-scheduler calls these on the class with the class as first argument.
    def supported_features(cls) -> Dict[JobFeature, bool]:
        return {
            JobFeature.job_name: True,
            JobFeature.parameters: True,
            JobFeature.output_formats: True,
            JobFeature.timeout_seconds: True,
            JobFeature.stop_job: True,
            JobFeature.delete_job: True,
            JobFeature.job_definition: True,
            JobFeature.idempotency_token: False,
            JobFeature.tags: False,
            JobFeature.email_notifications: False,
            JobFeature.retry_on_timeout: False,
            JobFeature.max_retries: False,
            JobFeature.min_retry_interval_millis: False,
            JobFeature.output_filename_template: False,
        }

    def validate(cls, input_path: str) -> bool:
        try:
            with open(input_path, encoding="utf-8") as f:
                nbformat.read(f, as_version=4)
        except Exception:
            return False
        return True


def _check(model: Any) -> None:
    """Refuses what kflow cannot run before jupyter-scheduler records anything."""
    check_resources(getattr(model, "runtime_environment_parameters", None))
    if getattr(model, "parameters", None):
        parameter_cell_source(model.parameters)


def take_cell_error(error_file: str) -> str:
    """The failing cell's error the runner wrote ("ValueError: bad batch size"); the file goes,
    it is not one of the job's outputs."""
    with open(error_file, encoding="utf-8") as f:
        cell = json.load(f)
    os.remove(error_file)
    return f"{cell['ename']}: {cell['evalue']}"


def on_cluster(model: Any) -> bool:
    params = getattr(model, "runtime_environment_parameters", None) or {}
    return params.get("backend") == "cluster"


def _millis(timestamp: Optional[str]) -> Optional[int]:
    if not timestamp:
        return None
    from datetime import datetime

    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


class KflowTaskRunner(TaskRunner):
    """jupyter-scheduler's task runner, leaving the definitions that run on the cluster to their
    CronJob (which fires whether or not this server runs)."""

    def create_job(self, job_definition_id: str) -> None:
        if on_cluster(self.scheduler.get_job_definition(job_definition_id)):
            return
        super().create_job(job_definition_id)


class KflowScheduler(Scheduler):
    """jupyter-scheduler's scheduler, with bad resources refused before anything is made,
    stop/delete reaching the kflow job, and definitions on the cluster kept as CronJobs."""

    @default("execution_manager_class")
    def _default_execution_manager_class(self) -> Any:
        return KflowExecutionManager

    @default("task_runner_class")
    def _default_task_runner_class(self) -> Any:
        return KflowTaskRunner

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Held while runs are imported: two imports at once would record a run twice.
        self._import_lock = threading.RLock()
        self._importing = threading.Event()
        self._imported_at = 0.0

    def create_job(self, model: CreateJob) -> str:
        _check(model)
        return super().create_job(model)

    def create_job_definition(self, model: CreateJobDefinition) -> str:
        _check(model)
        definition_id = super().create_job_definition(model)
        if on_cluster(model) and model.schedule:
            try:
                self._make_schedule(self.get_job_definition(definition_id))
            except Exception:
                # Nothing half-made: the definition goes again with its staged files.
                super().delete_job_definition(definition_id)
                raise
        return definition_id

    def update_job_definition(self, job_definition_id: str, model: UpdateJobDefinition) -> None:
        _check(model)
        before = self.get_job_definition(job_definition_id)
        schedule = self._schedule_of(before) if on_cluster(before) else None
        cron = model.schedule if model.schedule is not None else before.schedule
        if schedule is not None and cron:
            # First, so a value the cluster refuses (a time zone it does not know) leaves the
            # definition as it was.
            import kflow

            timezone = model.timezone if model.timezone is not None else before.timezone
            active = model.active if model.active is not None else before.active
            try:
                schedule.update(cron=cron, timezone=timezone or None, suspend=not active)
            except kflow.KflowError as e:
                raise NotebookJobError(f"updating the CronJob {schedule.name}: {e}") from None
        super().update_job_definition(job_definition_id, model)
        after = self.get_job_definition(job_definition_id)
        what_runs = ("input_filename", "parameters", "runtime_environment_name", "runtime_environment_parameters",
                     "output_formats", "package_input_folder", "packaged_files")
        rebuilt = any(getattr(before, k) != getattr(after, k) for k in what_runs)
        if schedule is not None and (rebuilt or not after.schedule or not on_cluster(after)):
            # The runs so far keep their outputs: they are imported before their claim goes.
            self._import_runs(before, schedule)
            schedule.delete(wait=True)
            schedule = None
        if schedule is None and on_cluster(after) and after.schedule:
            self._make_schedule(after)

    def delete_job_definition(self, job_definition_id: str) -> None:
        definition = self.get_job_definition(job_definition_id)
        schedule = self._schedule_of(definition) if on_cluster(definition) else None
        super().delete_job_definition(job_definition_id)
        if schedule is not None:
            schedule.delete()

    def list_jobs(self, query: ListJobsQuery) -> Any:
        self._import_scheduled_runs()
        return super().list_jobs(query)

    def count_jobs(self, query: CountJobsQuery) -> int:
        self._import_scheduled_runs()
        return super().count_jobs(query)

    def _make_schedule(self, definition: DescribeJobDefinition) -> Any:
        """The definition as a CronJob: its notebook, parameters and packaged files travel as
        the CronJob's code; each run writes its outputs to the CronJob's claim."""
        import kflow

        options = check_resources(definition.runtime_environment_parameters)
        options.pop("backend")
        options.pop("start_timeout_seconds", None)
        timeout = options.pop("timeout_seconds", None)
        template = template_of(definition.runtime_environment_name)
        if template and "template" not in options:
            options["template"] = template
        input_path = self.get_staging_paths(definition)["input"]
        outputs = {fmt: f"{SCHEDULED_OUTPUT}.{fmt}" for fmt in definition.output_formats or []}
        with tempfile.TemporaryDirectory(prefix=PROJECT_PREFIX) as project:
            stage_project(definition, input_path, project, outputs, output_dir=".", output_dir_env=OUTPUT_DIR_ENV)
            try:
                return kflow.schedule(
                    os.path.join(project, RUNNER),
                    definition.schedule,
                    timezone=definition.timezone or None,
                    suspend=not definition.active,
                    timeout_seconds=None if timeout is None else max(1, int(timeout)),
                    name=kflow_schedule_name(definition.job_definition_id),
                    project_root=project,
                    env={"PYTHONUNBUFFERED": "1"},
                    **options,
                )
            except kflow.KflowError as e:
                raise NotebookJobError(f"scheduling {definition.name or definition.input_filename} on the cluster: {e}") from None

    def _schedule_of(self, definition: DescribeJobDefinition) -> Any:
        import kflow

        try:
            namespace = (definition.runtime_environment_parameters or {}).get("namespace") or None
            return kflow.get_schedule(kflow_schedule_name(definition.job_definition_id), namespace)
        except kflow.JobNotFoundError:
            return None

    def _import_scheduled_runs(self) -> None:
        """Finished runs of the cluster's CronJobs become jobs of their definitions, with their
        outputs; looked for at most every IMPORT_INTERVAL_SECONDS, in a thread of its own: the
        listing answers at once (jupyter-scheduler calls it on the server's event loop, and a
        reader pod takes a moment), and the runs appear on the next look."""
        if time.monotonic() - self._imported_at < IMPORT_INTERVAL_SECONDS or self._importing.is_set():
            return
        self._importing.set()
        threading.Thread(target=self._import_in_background, name="kflow-import-scheduled-runs", daemon=True).start()

    def _import_in_background(self) -> None:
        try:
            with self.db_session() as session:
                definitions = [
                    DescribeJobDefinition.from_orm(d)
                    for d in session.query(DefinitionRecord).filter(DefinitionRecord.schedule != None).all()  # noqa: E711
                ]
            for definition in definitions:
                if on_cluster(definition):
                    schedule = self._schedule_of(definition)
                    if schedule is not None:
                        self._import_runs(definition, schedule)
        except Exception as e:  # the list still answers; the server's log says why
            self.log.warning("kflow: could not import the scheduled runs from the cluster: %s", e)
        finally:
            self._imported_at = time.monotonic()
            self._importing.clear()

    def _import_runs(self, definition: DescribeJobDefinition, schedule: Any) -> None:
        with self._import_lock:
            self._import_finished_runs(definition, schedule)

    def _import_finished_runs(self, definition: DescribeJobDefinition, schedule: Any) -> None:
        done = [r for r in schedule.runs() if r.done]
        if not done:
            return
        with self.db_session() as session:
            known = {
                t for (t,) in session.query(JobRecord.idempotency_token)
                .filter(JobRecord.job_definition_id == definition.job_definition_id).all() if t
            }
        fresh = [r for r in done if IMPORT_TOKEN_PREFIX + r.name not in known]
        with tempfile.TemporaryDirectory(prefix="kflow-scheduled-runs-") as landing:
            if fresh:
                schedule.collect([r.name for r in fresh], landing)
            for run in fresh:
                self._record_run(definition, run, os.path.join(landing, run.name))
        for run in done:
            schedule.delete_run(run.name)

    def _record_run(self, definition: DescribeJobDefinition, run: Any, landed: str) -> None:
        """One scheduled run as a job of its definition: its outputs under the names
        jupyter-scheduler expects, its side files, COMPLETED or FAILED with the reason."""
        attributes = definition.dict(
            include={"runtime_environment_name", "runtime_environment_parameters", "compute_type",
                     "input_filename", "output_formats", "name", "tags", "parameters",
                     "package_input_folder", "packaged_files"},
            exclude_none=True,
        )
        started, finished = _millis(run.started_at), _millis(run.finished_at)
        with self.db_session() as session:
            record = JobRecord(
                **attributes, job_definition_id=definition.job_definition_id,
                idempotency_token=IMPORT_TOKEN_PREFIX + run.name, status=Status.IN_PROGRESS,
                status_message=f"bringing the scheduled run {run.name}'s outputs from the cluster",
                start_time=started, create_time=started or get_utc_timestamp(),
            )
            session.add(record)
            session.commit()
            job = DescribeJob.from_orm(record)
            job_id = job.job_id
        paths = self.get_staging_paths(job)
        staging_dir = os.path.dirname(paths["input"])
        os.makedirs(staging_dir, exist_ok=True)
        definition_dir = os.path.dirname(self.get_staging_paths(definition)["input"])
        shutil.copyfile(os.path.join(definition_dir, definition.input_filename), paths["input"])
        side_files: List[str] = []
        error = None
        for root, _dirs, files in os.walk(landed):
            for name in files:
                src = os.path.join(root, name)
                rel = os.path.relpath(src, landed)
                fmt = rel[len(SCHEDULED_OUTPUT) + 1:] if rel.startswith(SCHEDULED_OUTPUT + ".") else None
                if rel == _notebook_runner.ERROR_FILE:
                    error = take_cell_error(src)
                elif fmt in paths and fmt != "input":
                    shutil.move(src, paths[fmt])
                else:
                    dst = os.path.join(staging_dir, rel)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.move(src, dst)
                    side_files.append(rel)
        if error:
            status, message = Status.FAILED, error
        elif run.phase == "Failed":
            reason = f"{run.reason}: {run.message}" if run.message else (run.reason or "Failed")
            status, message = Status.FAILED, f"the scheduled run {run.name} failed ({reason})"
        else:
            status, message = Status.COMPLETED, None
        with self.db_session() as session:
            session.query(JobRecord).filter(JobRecord.job_id == job_id).update({
                "status": status, "status_message": message, "end_time": finished or get_utc_timestamp(),
                "packaged_files": sorted(set(attributes.get("packaged_files") or []) | set(side_files)),
            })
            session.commit()

    def stop_job(self, job_id: str) -> None:
        super().stop_job(job_id)
        job = self._kflow_job(job_id)
        if job is not None and not job.status.done:
            job.cancel()
        with self.db_session() as session:
            record = session.query(JobRecord).filter(JobRecord.job_id == job_id).one()
            if Status(record.status) in (Status.IN_PROGRESS, Status.STOPPING):
                session.query(JobRecord).filter(JobRecord.job_id == job_id).update({"status": Status.STOPPED})
                session.commit()

    def delete_job(self, job_id: str) -> None:
        with self.db_session() as session:
            token = session.query(JobRecord.idempotency_token).filter(JobRecord.job_id == job_id).scalar()
        if (token or "").startswith(IMPORT_TOKEN_PREFIX):
            return super().delete_job(job_id)  # a scheduled run, imported: nothing of it is left to end
        job = self._kflow_job(job_id)
        super().delete_job(job_id)
        if job is not None:
            if not job.status.done:
                job.cancel()
            job.delete()

    def _kflow_job(self, job_id: str) -> Any:
        import kflow

        # The kflow job exists once the execution process submitted it; allow it a moment.
        deadline = time.monotonic() + 2
        while True:
            try:
                return kflow.get(kflow_job_name(job_id))
            except kflow.JobNotFoundError:
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.1)
