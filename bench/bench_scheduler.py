"""One notebook run end to end through jupyter-scheduler's REST API, side by side: its own
default execution manager vs kflow's (`KflowScheduler`) on the local backend and on the
project's test cluster (loopback), on a real jupyter_server each. Create → COMPLETED wall time,
median of N, and where kflow's time went (from the line KflowExecutionManager writes per job:
staging, packaging and submission, the run, of it the copy of the outputs out of the pod,
output recording).

    python bench/bench_scheduler.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.kflow_testsupport import TestCluster  # noqa: E402
from tests.scheduler.server import KFLOW_CONFIG, SchedulerServer  # noqa: E402

# The test cluster runs this image with this environment's Python (nbclient, nbconvert, ipykernel).
CLUSTER_IMAGE = "kflow-notebook-bench:1"
PARTS = re.compile(r"staged (\d+) ms, packaged and submitted (\d+) ms, ran (\d+) ms "
                   r"\(copying the outputs out (\d+) ms\), outputs recorded (\d+) ms")

CELLS = [
    "import math\nrows = [math.sin(i) for i in range(200_000)]",
    "total = sum(rows)\nprint(f'n={n} total={total:.3f}')",
    "import json\nopen('summary.json', 'w').write(json.dumps({'n': n, 'total': total}))",
]


def notebook(root: Path) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in CELLS]
    nbformat.write(nb, str(root / "report.ipynb"))
    return "report.ipynb"


def measure(label: str, config: str, environment: str, repeat: int, work: Path, params=None):
    root = work / label / "notebooks"
    root.mkdir(parents=True)
    nb = notebook(root)
    log = work / label / "server.log"
    server = SchedulerServer(root, log, config)
    times = []
    try:
        for i in range(repeat):
            start = time.perf_counter()
            job_id = server.create(nb, name=f"bench-{i}", environment=environment, output_formats=["ipynb", "html"],
                                   parameters={"n": str(i)}, runtime_environment_parameters=params or {})
            job = server.wait(job_id, timeout=300)
            times.append(time.perf_counter() - start)
            if job["status"] != "COMPLETED":
                raise SystemExit(f"{label}: job {i} {job['status']}: {job['status_message']}")
    finally:
        server.stop()
    return times, log.read_text(errors="replace")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kflow-bench-scheduler-") as tmp:
        work = Path(tmp)
        for var, sub in [("KFLOW_STATE_DIR", "state"), ("KFLOW_CACHE_DIR", "cache"), ("KFLOW_CONFIG_DIR", "config")]:
            os.environ[var] = str(work / "kflow-home" / sub)
        default, _ = measure("default", "", "python3", args.repeat, work)
        local, local_log = measure("kflow", KFLOW_CONFIG, "kflow", args.repeat, work)
        cluster = TestCluster(work / "cluster", ["--image-map", f"kflow-notebook-bench=python:{sys.executable}"])
        os.environ["KUBECONFIG"] = cluster.kubeconfig
        try:
            remote, remote_log = measure("kflow-cluster", KFLOW_CONFIG, "kflow", args.repeat, work,
                                         {"backend": "cluster", "image": CLUSTER_IMAGE})
        finally:
            cluster.stop()
    med = statistics.median
    print(f"jupyter-scheduler, one notebook (4 cells, ipynb + html), create -> COMPLETED, median of {args.repeat}")
    print("| execution manager | seconds | ratio |")
    print("|---|---:|---:|")
    print(f"| jupyter-scheduler DefaultExecutionManager | {med(default):.2f} | 1.00 |")
    print(f"| kflow KflowExecutionManager, local backend | {med(local):.2f} | {med(local) / med(default):.2f} |")
    print(f"| kflow KflowExecutionManager, test cluster | {med(remote):.2f} | {med(remote) / med(default):.2f} |")
    names = ["staging", "packaging + submission", "the run (job start to end)", "of it copying the outputs out",
             "output recording"]
    for label, log in (("local backend", local_log), ("test cluster", remote_log)):
        parts = [tuple(int(x) for x in m) for m in PARTS.findall(log)]
        if parts:
            print(f"kflow's part on the {label}, median ms: "
                  + ", ".join(f"{n} {med(p[i] for p in parts):.0f}" for i, n in enumerate(names)))
    print("(samples: " + "; ".join(f"{label} " + ", ".join(f"{t:.2f}" for t in times)
                                   for label, times in (("default", default), ("local", local), ("cluster", remote))) + ")")


if __name__ == "__main__":
    main()
