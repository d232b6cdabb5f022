"""`import kflow` vs `import kubeflow.training` (kubeflow-training from PyPI): wall time of a
fresh interpreter importing each, side by side, median of N.

    python bench/bench_import.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def import_time(module: str, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rows = [("interpreter start alone (`import sys`)", import_time("sys", args.repeat)), ("import kflow", import_time("kflow", args.repeat))]
    try:
        rows.append(("import kubeflow.training", import_time("kubeflow.training", args.repeat)))
    except subprocess.CalledProcessError:
        print("kubeflow-training is not installed: pip install kubeflow-training", file=sys.stderr)
    print(f"import time, median of {args.repeat} fresh interpreters")
    print("| import | ms |")
    print("|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.0f} |")


if __name__ == "__main__":
    main()
