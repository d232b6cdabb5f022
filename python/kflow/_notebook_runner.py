"""Runs one scheduled notebook inside a kflow job: execute it with nbclient, write the executed
notebook and every requested format. It travels in the job's project folder and runs with the
job's interpreter, so it imports nothing of kflow (the pod's image need not have kflow).

Its plan is a JSON file beside it (data, never code):
  {"notebook": "in.ipynb", "kernel": "python3", "cell_timeout": null,
   "outputs": {"ipynb": "out.ipynb", "html": "out.html"}, "output_dir": "/abs/dir",
   "hold_seconds": null, "output_dir_env": null}
`output_dir` may be relative to the runner's folder; with `output_dir_env` (a scheduled run,
whose folder on the outputs claim is named after the run) that variable names it instead. With `hold_seconds` (a pod, whose files
vanish with it), the runner prints OUTPUTS_READY once the outputs are written and waits, at
most that long, for kflow to copy them out and write RELEASE beside it.
Exit status: 0 when every cell ran, 1 when a cell failed (the outputs are written either way),
2 when the plan or the notebook cannot be read.
"""

import json
import os
import sys

PLAN = "_kflow_notebook_plan.json"
ERROR_FILE = "_kflow_notebook_error.json"
OUTPUTS_READY = "kflow: notebook outputs ready"
RELEASE = ".kflow-outputs-released"
CANNOT_START = "kflow: cannot start the notebook"


def main() -> int:
    # jsonschema (under nbformat) builds rfc3987_syntax's Lark grammar on import when it is
    # installed, seconds of a run's start, for an "iri" format notebooks never use; jsonschema
    # treats the module as optional, so the runner tells it the module is absent.
    sys.modules.setdefault("rfc3987_syntax", None)
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        with open(os.path.join(here, PLAN), encoding="utf-8") as f:
            plan = json.load(f)
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError

        with open(os.path.join(here, plan["notebook"]), encoding="utf-8") as f:
            nb = nbformat.read(f, as_version=4)
    except Exception as e:  # the job's environment or the plan is wrong: say which
        print(f"{CANNOT_START}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 2
    out_dir = os.path.join(here, plan["output_dir"])
    if plan.get("output_dir_env"):
        out_dir = os.environ.get(plan["output_dir_env"], "")
        if not out_dir:
            print(f"{CANNOT_START}: {plan['output_dir_env']} is not set", file=sys.stderr, flush=True)
            return 2
    os.makedirs(out_dir, exist_ok=True)
    client = NotebookClient(
        nb,
        kernel_name=plan.get("kernel") or "python3",
        timeout=plan.get("cell_timeout"),
        resources={"metadata": {"path": here}},
        store_widget_state=True,
    )
    before = _files(here, out_dir)
    failure = None
    print(f"kflow: executing {plan['notebook']} ({len(nb.cells)} cells)", flush=True)
    try:
        client.execute()
    except CellExecutionError as e:
        failure = {"ename": getattr(e, "ename", "CellExecutionError"), "evalue": getattr(e, "evalue", str(e)),
                   "message": _short(str(e))}
    except CellTimeoutError as e:
        failure = {"ename": "CellTimeoutError", "evalue": str(e), "message": _short(str(e))}
    except Exception as e:  # a dead kernel, a missing kernelspec
        failure = {"ename": type(e).__name__, "evalue": str(e), "message": _short(f"{type(e).__name__}: {e}")}
    write_outputs(nb, plan["outputs"], out_dir)
    copy_side_files(here, before, out_dir, skip={PLAN, os.path.basename(__file__), plan["notebook"], *plan["outputs"].values()})
    if failure:
        with open(os.path.join(out_dir, ERROR_FILE), "w", encoding="utf-8") as f:
            json.dump(failure, f)
        print(f"kflow: the notebook failed: {failure['ename']}: {failure['evalue']}", file=sys.stderr, flush=True)
    else:
        print("kflow: the notebook ran to the end", flush=True)
    if plan.get("hold_seconds"):
        hold(here, float(plan["hold_seconds"]))
    return 1 if failure else 0


def hold(here, seconds) -> None:
    """Keeps the pod (and with it the outputs) until kflow has copied them, or `seconds`."""
    import time

    print(OUTPUTS_READY, flush=True)
    deadline = time.monotonic() + seconds
    while not os.path.exists(os.path.join(here, RELEASE)):
        if time.monotonic() > deadline:
            print(f"kflow: no one collected the outputs in {seconds:g} s; ending", file=sys.stderr, flush=True)
            return
        time.sleep(0.1)


def write_outputs(nb, outputs, out_dir) -> None:
    import nbconvert
    import nbformat

    for fmt, filename in outputs.items():
        target = os.path.join(out_dir, filename)
        try:
            if fmt == "ipynb":
                with open(target, "w", encoding="utf-8") as f:
                    nbformat.write(nb, f)
                continue
            body, _ = nbconvert.get_exporter(fmt)().from_notebook_node(nb)
            mode, data = ("wb", body) if isinstance(body, bytes) else ("w", body)
            with open(target, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
                f.write(data)
        except Exception as e:  # pdf without LaTeX: the other formats still arrive
            print(f"kflow: could not write the {fmt} output: {type(e).__name__}: {e}", file=sys.stderr, flush=True)


def _files(root, out_dir):
    out = {}
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(top, d) != out_dir]
        for name in names:
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return out


def copy_side_files(here, before, out_dir, skip) -> None:
    """Files the notebook wrote or changed beside itself join the outputs, under the same
    relative paths (what jupyter-scheduler's own executor lists as the job's side files)."""
    import shutil

    for rel, stamp in _files(here, out_dir).items():
        if rel in skip or before.get(rel) == stamp or "__pycache__" in rel.split(os.sep):
            continue
        src = os.path.join(here, rel)
        if os.path.islink(src) or not os.path.isfile(src):
            continue
        dst = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)


def _short(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
