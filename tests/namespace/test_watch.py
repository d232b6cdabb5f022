"""Listings kept live: a watch gives every current row, then each change made by another tool,
from Python and from `kflow ls --watch`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import kflow


def test_python_watch_sees_changes_made_with_the_kubernetes_client(cluster, kube):
    core, custom = kube
    core.create_namespaced_config_map("default", {"metadata": {"name": "before"}, "data": {"k": "v"}})
    changes = kflow.namespace().watch("configmaps", timeout=20)
    seen = []
    for change in changes:
        seen.append(change)
        if change["change"] == "upsert" and change["row"]["name"] == "before":
            break
    core.create_namespaced_config_map("default", {"metadata": {"name": "after"}, "data": {"k": "vvv"}})
    for change in changes:
        if change["change"] == "upsert" and change["row"]["name"] == "after":
            assert change["row"]["keys"] == [{"key": "k", "bytes": 3}]
            break
    core.delete_namespaced_config_map("after", "default")
    for change in changes:
        if change == {"change": "delete", "name": "after", "kind": None}:
            break
    else:
        raise AssertionError("no delete seen")


def test_cli_watch_prints_a_line_per_change(cluster, kube):
    core, _ = kube
    proc = subprocess.Popen([sys.executable, "-m", "kflow", "ls", "pvcs", "--watch", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        core.create_namespaced_persistent_volume_claim("default", {
            "metadata": {"name": "watched"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        while True:
            line = json.loads(proc.stdout.readline())
            if line["change"] == "upsert" and line["row"]["name"] == "watched":
                break
        core.delete_namespaced_persistent_volume_claim("watched", "default")
        while True:
            line = json.loads(proc.stdout.readline())
            if line["change"] == "delete" and line["name"] == "watched":
                break
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
