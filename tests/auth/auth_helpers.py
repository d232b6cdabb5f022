"""Helpers shared by the sign-in tests."""

from __future__ import annotations

import pathlib
import subprocess
import sys


def kflow(args, env, input=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "kflow", *args], input=input, env=env, capture_output=True,
                          text=True, timeout=timeout)


def python(code, env, timeout=120):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


def files_containing(root: pathlib.Path, needles) -> list:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            for n in needles:
                if n and n.encode() in data:
                    hits.append((str(p), n[:24]))
    return hits
