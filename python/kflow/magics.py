"""IPython magics for ordinary Python kernels: `%load_ext kflow`, then

    %kflow_run train.py --gpu 1 --pip rich -- --lr 0.1     run a project file as a job
    %%kflow_run --gpu 1 --workers 2                         the cell is the script

Logs stream into the cell while the job runs; interrupting the cell cancels the job; the
`kflow.Job` is returned (so `job = _` or the cell's value shows its status). Options are those
of `kflow.run`, as flags, spelled as the CLI and the kflow kernel spell them (one grammar in
kflow-core): --name --kind --image --gpu --cpu --memory --workers --pip --requirements --apt
--env NAME=VALUE --namespace --template --backend --project-root --code-mode, with the same
aliases (--gpus, --mem, --ns, --project); repeat --pip/--apt/--env to add more. `--detach`
returns the Job at once without streaming.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from IPython.core.magic import Magics, line_cell_magic, magics_class

@functools.lru_cache(maxsize=None)
def _grammar() -> Tuple[Dict[str, str], Dict[str, str]]:
    """kflow-core's run-option grammar, shared with the CLI and the kflow kernel:
    ({flag spelling: kflow.run argument}, {kflow.run argument: value kind})."""
    from kflow import _native

    flags: Dict[str, str] = {}
    kinds: Dict[str, str] = {}
    for option in json.loads(_native.run_options_json()):
        name = option["name"]
        kinds[name] = option["value"]
        for spelling in [name, *option["aliases"]]:
            flags[spelling] = name
            flags[spelling.replace("_", "-")] = name
    return flags, kinds


class UsageError(ValueError):
    """A `%kflow_run` line that cannot be understood."""


def parse_line(line: str, want_script: bool) -> Tuple[Optional[str], Dict[str, Any], List[str], bool]:
    """`[SCRIPT] [--flag value | --flag=value …] [--detach] [-- ARGS…]` ->
    (script, kflow.run keyword arguments, script args, detach)."""
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise UsageError(f"%kflow_run: {e}") from None
    script: Optional[str] = None
    params: Dict[str, Any] = {}
    args: List[str] = []
    detach = False
    i = 0
    while i < len(words):
        w = words[i]
        i += 1
        if w == "--":
            args.extend(words[i:])
            break
        if w == "--detach":
            detach = True
            continue
        if w.startswith("--"):
            flags, kinds = _grammar()
            flag, eq, value = w[2:].partition("=")
            if flag not in flags:
                known = sorted({n.replace("_", "-") for n in kinds})
                raise UsageError(f"%kflow_run: unknown option --{flag}; known: " + ", ".join(f"--{k}" for k in known))
            if not eq:
                if i >= len(words):
                    raise UsageError(f"%kflow_run: --{flag} needs a value")
                value = words[i]
                i += 1
            key = flags[flag]
            if kinds[key] == "list":
                params.setdefault(key, []).extend(v for v in value.replace(",", " ").split() if v)
            elif kinds[key] == "pairs":
                name, eq2, val = value.partition("=")
                if not eq2 or not name:
                    raise UsageError(f"%kflow_run: --env {value}: expected NAME=VALUE")
                params.setdefault("env", {})[name] = val
            elif kinds[key] == "number":
                try:
                    params[key] = int(value)
                except ValueError:
                    raise UsageError(f"%kflow_run: --{flag} {value}: expected a whole number") from None
            else:
                params[key] = value
        elif want_script and script is None:
            script = w
        else:
            # Words after the script go to it, like `python train.py a b`.
            args.append(w)
    if want_script and script is None:
        raise UsageError("%kflow_run needs a script: %kflow_run train.py --gpu 1 -- ARGS (or use %%kflow_run)")
    return script, params, args, detach


def _kflow():
    # Imported late so tests can substitute the API (the option grammar itself comes from the
    # native extension, see `_grammar`).
    import kflow

    return kflow


def stream(job: Any, out: Any = None, err: Any = None) -> Any:
    """Print the job's logs until it ends, then its outcome; Ctrl-C (a kernel interrupt)
    cancels the job. Returns the final status."""
    from kflow._job import stream_lines

    err = err or sys.stderr
    try:
        status = stream_lines(job, out or sys.stdout)
    except KeyboardInterrupt:
        print(f"kflow: interrupted; job {job.name} cancelled", file=err, flush=True)
        raise
    if not getattr(status, "succeeded", status.phase == "Succeeded"):
        reason = ": ".join(x for x in (status.reason, status.message) if x)
        print(f"kflow: job {job.name} {status.phase}" + (f" ({reason})" if reason else ""), file=err, flush=True)
    return status


@magics_class
class KflowMagics(Magics):
    @line_cell_magic
    def kflow_run(self, line: str, cell: Optional[str] = None) -> Any:
        """Run a script (line magic) or the cell (cell magic) as a training job; see
        `kflow.magics` for the options."""
        try:
            script, params, args, detach = parse_line(line, want_script=cell is None)
        except UsageError as e:
            print(str(e), file=sys.stderr)
            return None
        if args:
            params["args"] = args
        kflow = _kflow()
        if cell is None:
            job = kflow.run(script, wait=False, **params)
        else:
            job = self._run_cell(kflow, cell, params)
        if not detach:
            stream(job)
        return job

    @staticmethod
    def _run_cell(kflow: Any, cell: str, params: Dict[str, Any]) -> Any:
        # The cell becomes a hidden file at the project's top level (so it imports the
        # project's modules as a script there would) only while `run` packages it.
        root = Path(params.get("project_root") or os.getcwd())
        params["project_root"] = str(root)
        tag = uuid.uuid4().hex[:5]
        path = root / f".kflow-cell-{tag}.py"
        params.setdefault("name", f"cell-{tag}")
        path.write_text(cell)
        try:
            return kflow.run(str(path), wait=False, **params)
        finally:
            try:
                path.unlink()
            except OSError:
                pass


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext kflow` (through kflow/__init__.py) or `%load_ext kflow.magics`."""
    ipython.register_magics(KflowMagics)


def unload_ipython_extension(ipython: Any) -> None:  # pragma: no cover - IPython keeps magics
    pass
