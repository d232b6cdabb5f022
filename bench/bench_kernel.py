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
import sys
import tempfile
import time

import subprocess

import zmq
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session


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


def direct_start(name: str, cwd: str) -> float:
    """Process start → first kernel_info reply on the shell socket, without jupyter_client's
    manager in between (its polling and its own start-up are not the kernel's)."""
    fname, info = write_connection_file(os.path.join(cwd, f"direct-{name}.json"), ip="127.0.0.1")
    argv = [a.replace("{connection_file}", fname) for a in KernelSpecManager().get_kernel_spec(name).argv]
    if argv[0] in ("python", "python3"):  # as jupyter_client does: this interpreter
        argv[0] = sys.executable
    session = Session(key=info["key"].encode() if isinstance(info["key"], str) else info["key"])
    ctx = zmq.Context.instance()
    shell = ctx.socket(zmq.DEALER)
    # Reconnect at once: the kernel binds after the first try (libzmq's default waits 100 ms).
    shell.setsockopt(zmq.RECONNECT_IVL, 1)
    shell.setsockopt(zmq.LINGER, 0)
    shell.connect(f"tcp://127.0.0.1:{info['shell_port']}")
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        session.send(shell, "kernel_info_request", {})
        if not shell.poll(60_000):
            raise SystemExit(f"{name}: no kernel_info reply within 60 s")
        session.recv(shell)
        return time.perf_counter() - t0
    finally:
        shell.close()
        proc.terminate()
        proc.wait(10)
        os.remove(fname)


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
            starts, memory, direct = [], [], []
            for _ in range(args.repeat):
                direct.append(direct_start(name, tmp))
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
            rows.append((name, statistics.median(direct) * 1000, statistics.median(starts) * 1000, statistics.median(memory), seconds, received))
    print(f"kernels through jupyter_client, median of {args.repeat} starts; a cell printing {args.lines:,} lines")
    print("| kernel | process start → kernel_info, direct (ms) | through KernelManager (ms) | idle RSS (MiB) | flood (s) | lines received | lines/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, direct_ms, start_ms, rss, seconds, received in rows:
        label = "kflow (cell runs as a local job)" if name == "kflow" else "ipykernel (in-process)"
        print(f"| {label} | {direct_ms:.0f} | {start_ms:.0f} | {rss:.1f} | {seconds:.2f} | {received:,} | {received / seconds:,.0f} |")
    (k_direct, _, k_rss, *_), (i_direct, _, i_rss, *_) = [r[1:] for r in rows]
    print(f"\nkflow/ipykernel: direct start {k_direct / i_direct:.2f}x, idle RSS {k_rss / i_rss:.3f}x")


if __name__ == "__main__":
    main()
