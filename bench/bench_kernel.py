"""The kflow kernel vs ipykernel, side by side through jupyter_client: start -> kernel_info
reply, idle memory (RSS of the kernel process), and output throughput of a cell printing N
lines (kflow: the cell runs as a local-backend job and its log streams back; ipykernel: the
same loop in-process).

    python bench/bench_kernel.py [--repeat 5] [--lines 200000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from jupyter_client.manager import KernelManager


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start(name: str, cwd: str):
    km = KernelManager(kernel_name=name)
    t0 = time.perf_counter()
    km.start_kernel(cwd=cwd)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc, time.perf_counter() - t0


def flood(kc, lines: int) -> tuple[float, int]:
    code = f"for i in range({lines}):\n    print('line', i)\n"
    received = 0
    t0 = time.perf_counter()

    def hook(msg):
        nonlocal received
        if msg["msg_type"] == "stream":
            received += msg["content"]["text"].count("\n")

    kc.execute_interactive(code, output_hook=hook, timeout=600)
    return time.perf_counter() - t0, received


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("KFLOW_STATE_DIR", os.path.join(tmp, "state"))
        for name in ["kflow", "python3"]:
            starts, memory = [], []
            for _ in range(args.repeat):
                km, kc, seconds = start(name, tmp)
                time.sleep(0.5)
                memory.append(rss_mib(km.provisioner.process.pid))
                starts.append(seconds)
                kc.stop_channels()
                km.shutdown_kernel(now=True)
            km, kc, _ = start(name, tmp)
            seconds, received = flood(kc, args.lines)
            kc.stop_channels()
            km.shutdown_kernel(now=True)
            rows.append((name, statistics.median(starts) * 1000, statistics.median(memory), seconds, received))
    print(f"kernels through jupyter_client, median of {args.repeat} starts; a cell printing {args.lines:,} lines")
    print("| kernel | start → kernel_info (ms) | idle RSS (MiB) | flood (s) | lines received | lines/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, start_ms, rss, seconds, received in rows:
        label = "kflow (cell runs as a local job)" if name == "kflow" else "ipykernel (in-process)"
        print(f"| {label} | {start_ms:.0f} | {rss:.0f} | {seconds:.2f} | {received:,} | {received / seconds:,.0f} |")


if __name__ == "__main__":
    main()
