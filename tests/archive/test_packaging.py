"""The archive kflow makes opens with the tools a pod has: GNU tar and Python's tarfile."""

from __future__ import annotations

import subprocess
import tarfile

from kflow import _native


def test_archive_opens_with_gnu_tar_and_tarfile(tmp_path, project):
    project("train.py", "print(1)\n")
    project("pkg/data.txt", "x" * 3_000_000)  # several compression blocks
    out = tmp_path / "code.tar.gz"
    sha, size, files = _native.package(str(project.root), str(out))
    assert files == 2 and size == out.stat().st_size and len(sha) == 64
    with tarfile.open(out, "r:gz") as tar:
        assert sorted(tar.getnames()) == ["pkg", "pkg/data.txt", "train.py"]
        assert tar.extractfile("pkg/data.txt").read() == b"x" * 3_000_000
    dest = tmp_path / "gnu"
    dest.mkdir()
    subprocess.run(["tar", "-xzf", str(out), "-C", str(dest)], check=True)
    assert (dest / "train.py").read_text() == "print(1)\n"
    again = tmp_path / "again.tar.gz"
    assert _native.package(str(project.root), str(again))[0] == sha
