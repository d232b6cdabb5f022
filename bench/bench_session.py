"""Session mode vs a local ipykernel, side by side through jupyter_client: the first cell
(kernel start → the result of `1+1`; for a session that includes the session's start: its job,
pod or process, and the remote ipykernel ready) and the round trip of a `1+1` cell after that
— kflow's session kernel on the local backend and on the project's test cluster (a session pod
reached through the API server's port-forward, loopback only), ipykernel in-process.

    python bench/bench_session.py [--repeat 3] [--cells 50]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

from jupyter_client.manager import KernelManager

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from kflow_testsupport import TestCluster  # noqa: E402


def one_run(name: str, cwd: str, env: dict, cells: int) -> tuple[float, float, float]:
    km = KernelManager(kernel_name=name)
    t0 = time.perf_counter()
    km.start_kernel(cwd=cwd, env={**os.environ, **env})
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    started = time.perf_counter() - t0
    reply = kc.execute_interactive("1+1", timeout=300, output_hook=lambda m: None)
    assert reply["content"]["status"] == "ok", reply["content"]
    first = time.perf_counter() - t0
    trips = []
    for _ in range(cells):
        t = time.perf_counter()
        kc.execute_interactive("1+1", timeout=60, output_hook=lambda m: None)
        trips.append(time.perf_counter() - t)
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    return started, first, statistics.median(trips)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cells", type=int, default=50)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ("state", "cache", "config"):
            os.environ[f"KFLOW_{sub.upper()}_DIR"] = os.path.join(tmp, sub)
        project = os.path.join(tmp, "notebooks")
        os.mkdir(project)
        cluster = TestCluster(pathlib.Path(tmp) / "cluster", ["--image-map", f"kflow-session-bench=python:{sys.executable}"])
        try:
            on_cluster = {"KUBECONFIG": cluster.kubeconfig, "KFLOW_BACKEND": "cluster", "KFLOW_DEFAULT_IMAGE": "kflow-session-bench:1"}
            for label, name, env in [
                ("kflow session, local backend", "kflow-session", {"KFLOW_BACKEND": "local"}),
                ("kflow session, test cluster (pod + port-forward)", "kflow-session", on_cluster),
                ("ipykernel (local, in-process)", "python3", {}),
            ]:
                runs = [one_run(name, project, env, args.cells) for _ in range(args.repeat)]
                rows.append((label, *(statistics.median(r[i] for r in runs) for i in range(3))))
        finally:
            cluster.stop()
    print(f"median of {args.repeat} kernels; round trip: median of {args.cells} `1+1` cells each")
    print("| kernel | start → kernel_info (ms) | first cell incl. session start (ms) | `1+1` round trip (ms) |")
    print("|---|---:|---:|---:|")
    for label, started, first, trip in rows:
        print(f"| {label} | {started * 1000:.0f} | {first * 1000:.0f} | {trip * 1000:.1f} |")
    ipy = rows[-1]
    for label, _, first, trip in rows[:-1]:
        print(f"{label}: first cell {first / ipy[2]:.2f}x ipykernel's, round trip {trip / ipy[3]:.2f}x")


if __name__ == "__main__":
    main()
