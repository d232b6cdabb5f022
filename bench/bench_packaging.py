"""Packaging throughput: kflow's deterministic tar.gz vs pigz (GNU tar piped into pigz, level 6,
every core) and Python's tarfile (mode "w:gz"), on the same generated ~200 MB project, side by
side in one run. The whole-process rows start a new process each time, as a user's run does.

    python bench/bench_packaging.py [--mb 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import random
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from kflow import _native

WORDS = "import torch model loss optimizer epoch batch tensor grad step def return self class for in if else".split()


def generate(root: Path, total_mb: int, seed: int = 7) -> int:
    """Two thirds source-like text in many small files, one third incompressible weights."""
    rng = random.Random(seed)
    text_bytes = total_mb * 1024 * 1024 * 2 // 3
    written = 0
    i = 0
    while written < text_bytes:
        folder = root / f"pkg{i % 40}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        size = 0
        target = rng.randint(8_000, 120_000)
        while size < target:
            line = "    " * rng.randint(0, 3) + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "\n"
            lines.append(line)
            size += len(line)
        (folder / f"module_{i}.py").write_text("".join(lines))
        written += size
        i += 1
    weights = root / "weights"
    weights.mkdir(exist_ok=True)
    remaining = total_mb * 1024 * 1024 - written
    for j in range(8):
        (weights / f"shard_{j}.bin").write_bytes(os.urandom(remaining // 8))
    return i + 8


def time_it(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "project")
        files = generate(root, args.mb)
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        out = Path(tmp, "out.tar.gz")

        def kflow_pack():
            _native.package(str(root), str(out))

        def kflow_process():
            code = f"from kflow import _native; _native.package({str(root)!r}, {str(out)!r})"
            subprocess.run([sys.executable, "-c", code], check=True)

        def pigz_process():
            subprocess.run(f"tar -cf - -C '{root}' . | pigz -6 > '{out}'", shell=True, check=True)

        def tarfile_pack(level):
            def run():
                with tarfile.open(out, "w:gz", compresslevel=level) as tar:
                    tar.add(root, arcname=".")
            return run

        def measured(name, fn):
            seconds = time_it(fn, args.repeat)
            return name, seconds, out.stat().st_size

        rows = [
            measured("kflow, whole process (deterministic tar.gz, level 6, stores incompressible blocks)", kflow_process),
            measured("kflow in-process (`_native.package`)", kflow_pack),
        ]
        if shutil.which("pigz"):
            rows.append(measured("tar | pigz -6, whole process (all cores)", pigz_process))
        rows += [
            measured("Python tarfile w:gz (default level 9)", tarfile_pack(9)),
            measured("Python tarfile w:gz compresslevel=6", tarfile_pack(6)),
        ]
        mb = size / 1024 / 1024
        print(f"packaging {mb:.0f} MiB in {files} files, {os.cpu_count()} cores, median of {args.repeat}")
        print("| tool | seconds | MiB/s | output MiB |")
        print("|---|---:|---:|---:|")
        for name, seconds, out_bytes in rows:
            print(f"| {name} | {seconds:.2f} | {mb / seconds:.0f} | {out_bytes / 1024 / 1024:.1f} |")
        if shutil.which("pigz"):
            kflow_s, kflow_b = rows[0][1], rows[0][2]
            pigz_s, pigz_b = rows[2][1], rows[2][2]
            print(f"kflow vs pigz: {pigz_s / kflow_s:.2f}x the speed, output {100 * (kflow_b / pigz_b - 1):+.2f}% in size")

if __name__ == "__main__":
    main()
