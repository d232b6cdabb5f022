"""Packaging throughput: kflow's deterministic tar.gz vs Python's tarfile (mode "w:gz"), on the
same generated ~200 MB project, side by side in one run.

    python bench/bench_packaging.py [--mb 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
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

        def tarfile_pack(level):
            def run():
                with tarfile.open(out, "w:gz", compresslevel=level) as tar:
                    tar.add(root, arcname=".")
            return run

        rows = [
            ("kflow (deterministic tar.gz, zlib-rs level 6, both cores)", time_it(kflow_pack, args.repeat)),
            ("Python tarfile w:gz (default level 9)", time_it(tarfile_pack(9), args.repeat)),
            ("Python tarfile w:gz compresslevel=6", time_it(tarfile_pack(6), args.repeat)),
        ]
        mb = size / 1024 / 1024
        print(f"packaging {mb:.0f} MiB in {files} files, median of {args.repeat}")
        print(f"| tool | seconds | MiB/s |")
        print(f"|---|---:|---:|")
        for name, seconds in rows:
            print(f"| {name} | {seconds:.2f} | {mb / seconds:.0f} |")


if __name__ == "__main__":
    main()
