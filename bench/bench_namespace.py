"""Namespace listings side by side with kubectl and the `kubernetes` Python client, on one
namespace of 5,000 objects of each kind (loopback kflow-testcluster started here): the first
page (100 rows; kubectl has no pages, so it has only the full listing, a whole process) and the
full listing.

    python bench/bench_namespace.py [--objects 5000] [--repeat 5]

Each tool lists in its own warm process where it can (kflow and the client: one connection
reused), so the figures are the listing itself; kubectl is a whole process per listing, which
is what a user of it pays.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
from kflow_testsupport import TestCluster  # noqa: E402
from bench_cluster import interleaved  # noqa: E402

NS = "bench"

KINDS = [
    # (kflow listing, kubectl resource, client call)
    ("jobs", "pytorchjobs", lambda core, custom, **kw: custom.list_namespaced_custom_object(
        "kubeflow.org", "v1", NS, "pytorchjobs", **kw)),
    ("pvcs", "persistentvolumeclaims", lambda core, custom, **kw: core.list_namespaced_persistent_volume_claim(NS, **kw)),
    ("configmaps", "configmaps", lambda core, custom, **kw: core.list_namespaced_config_map(NS, **kw)),
    ("notebooks", "notebooks.v1beta1.kubeflow.org", lambda core, custom, **kw: custom.list_namespaced_custom_object(
        "kubeflow.org", "v1beta1", NS, "notebooks", **kw)),
]


def fill(core, custom, n: int):
    import concurrent.futures

    core.create_namespace({"metadata": {"name": NS}})
    pod = {"spec": {"containers": [{"name": "pytorch", "image": "registry.invalid/none:1"}]}}
    makers = [
        lambda i: custom.create_namespaced_custom_object("kubeflow.org", "v1", NS, "pytorchjobs", {
            "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": f"job-{i:05d}"},
            "spec": {"runPolicy": {"suspend": True},
                     "pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": pod}, "Worker": {"replicas": 3, "template": pod}}}}),
        lambda i: core.create_namespaced_persistent_volume_claim(NS, {
            "metadata": {"name": f"pvc-{i:05d}"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        lambda i: core.create_namespaced_config_map(NS, {"metadata": {"name": f"cm-{i:05d}"}, "data": {"config.json": "x" * 2048}}),
        lambda i: custom.create_namespaced_custom_object("kubeflow.org", "v1beta1", NS, "notebooks", {
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Notebook",
            "metadata": {"name": f"nb-{i:05d}", "annotations": {"kubeflow-resource-stopped": "2026-12-01T00:00:00Z"}},
            "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "jupyter-scipy",
                                                            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}}}}),
    ]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for make in makers:
            list(pool.map(make, range(n)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import kflow
    from kubernetes import client, config

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update({"KFLOW_STATE_DIR": f"{tmp}/state", "KFLOW_CACHE_DIR": f"{tmp}/cache",
                           "KFLOW_CONFIG_DIR": f"{tmp}/config"})
        cluster = TestCluster(pathlib.Path(tmp) / "cluster")
        os.environ["KUBECONFIG"] = cluster.kubeconfig
        try:
            api = config.new_client_from_config(cluster.kubeconfig)
            core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
            start = time.perf_counter()
            fill(core, custom, args.objects)
            print(f"filled: {4 * args.objects} objects in {time.perf_counter() - start:.1f} s", file=sys.stderr)
            kubectl = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or "kubectl"
            ns = kflow.namespace(NS)
            method = {"jobs": ns.training_jobs, "pvcs": ns.pvcs, "configmaps": ns.config_maps, "notebooks": ns.notebooks}
            rows = []
            for kind, resource, listed in KINDS:
                def kubectl_get(_, extra=()):
                    subprocess.run([kubectl, "--kubeconfig", cluster.kubeconfig, "get", resource, "-n", NS, *extra],
                                   capture_output=True, check=True)

                tools = [
                    (f"kflow.namespace().{method[kind].__name__}", lambda _: method[kind](limit=100),
                     lambda _: method[kind](all=True)),
                    (f"kubectl get {resource} (whole process)", None, kubectl_get),
                    ("kubernetes client", lambda _: listed(core, custom, limit=100),
                     lambda _: listed(core, custom)),
                ]
                first = dict(interleaved([(name, f) for name, f, _ in tools if f], args.repeat))
                full = dict(interleaved([(name, a) for name, _, a in tools], args.repeat))
                rows.append((kind, [(name, first.get(name), full[name]) for name, _, _ in tools]))
            print(f"\n| listing of {args.objects:,} objects | tool | first page (100 rows) | full listing |")
            print("|---|---|---:|---:|")
            for kind, measured in rows:
                for name, f, a in measured:
                    shown = "no pages" if f is None else f"{f * 1000:.0f} ms"
                    print(f"| {kind} | {name} | {shown} | {a * 1000:.0f} ms |")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
