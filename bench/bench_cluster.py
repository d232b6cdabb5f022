"""The cluster backend side by side with its peers, against one kflow-testcluster started here
(loopback only): submit latency, repeated listing in one process (the reused connection),
listing 5,000 PyTorchJobs, and log throughput.

    python bench/bench_cluster.py [--jobs 5000] [--lines 200000] [--mb 10] [--repeat 3]

The test cluster is target/debug/kflow-testcluster, or $KFLOW_TESTCLUSTER_BIN.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from kflow_testsupport import TestCluster  # noqa: E402  (the tests' one: same flags, same start-up)


def interleaved(tools, repeat: int):
    """Median seconds per tool, the tools taking turns each round, so a cluster that is busier
    early (pods starting, events) weighs on all of them alike. One warm-up round first."""
    runs = {name: [] for name, _ in tools}
    for i in range(repeat + 1):
        for name, fn in tools:
            start = time.perf_counter()
            fn(i)
            if i > 0:
                runs[name].append(time.perf_counter() - start)
    return [(name, statistics.median(runs[name])) for name, _ in tools]


def generate_project(root: pathlib.Path, mb: int) -> pathlib.Path:
    """~mb MiB: source-like text in many files plus some incompressible data, and train.py."""
    rng = random.Random(3)
    root.mkdir(parents=True)
    words = "import torch model loss optimizer epoch batch tensor grad step def return self".split()
    text_target = mb * 1024 * 1024 // 2
    written = i = 0
    while written < text_target:
        body = "".join(" ".join(rng.choice(words) for _ in range(10)) + "\n" for _ in range(800))
        (root / f"module_{i}.py").write_text(body)
        written += len(body)
        i += 1
    (root / "data.bin").write_bytes(os.urandom(mb * 1024 * 1024 - written))
    (root / "train.py").write_text("print('ok')\n")
    return root / "train.py"


def train_func():
    print("ok")


# An image the test cluster cannot pull: the submitted jobs' pods wait and run nothing, so the
# runs measured do not share the two cores with the pods of the runs before them.
UNPULLABLE = "registry.invalid/none:1"


def bench_submit(kubeconfig: str, tmp: pathlib.Path, mb: int, repeat: int):
    import kflow
    from kubeflow.training import TrainingClient

    script = generate_project(tmp / "project", mb)
    size = sum(p.stat().st_size for p in script.parent.rglob("*") if p.is_file()) / 1024 / 1024

    def kflow_submit(i):
        kflow.run(str(script), name=f"bench-kflow-{i}", backend="cluster", workers=2, image=UNPULLABLE)

    tc = TrainingClient(config_file=kubeconfig, namespace="default")

    def training_client_submit(i):
        tc.create_job(name=f"bench-tc-{i}", train_func=train_func, base_image=UNPULLABLE, num_workers=2)

    def kflow_process(i):
        subprocess.run([sys.executable, "-m", "kflow", "run", "--cluster", "--detach", "--name", f"bench-cli-{i}",
                        str(script), "--workers", "2", "--image", UNPULLABLE], check=True, capture_output=True)

    # TrainingClient reads the function's source, so it must live in a file, not in `-c`.
    tc_script = tmp / "tc_submit.py"
    tc_script.write_text(
        "import sys\nfrom kubeflow.training import TrainingClient\n\n\ndef train_func():\n    print('ok')\n\n\n"
        "TrainingClient(config_file=sys.argv[1], namespace='default').create_job(name=sys.argv[2], "
        f"train_func=train_func, base_image={UNPULLABLE!r}, num_workers=2)\n"
    )

    def training_client_process(i):
        subprocess.run([sys.executable, str(tc_script), kubeconfig, f"bench-tcp-{i}"], check=True, capture_output=True)

    return interleaved([
        (f"kflow.run, {size:.0f} MiB project (package + upload + create)", kflow_submit),
        ("TrainingClient.create_job(train_func=..., base_image=...) (function source in args; no project)", training_client_submit),
        (f"`kflow run --detach`, whole process, {size:.0f} MiB project", kflow_process),
        ("TrainingClient.create_job, whole process (a script)", training_client_process),
    ], repeat)


def create_jobs(kubeconfig: str, n: int):
    """n PyTorchJobs straight through the API (16 in flight). The image is one the test cluster
    cannot pull, so their pods wait and run nothing."""
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(kubeconfig))
    pod = {"spec": {"containers": [{"name": "pytorch", "image": UNPULLABLE, "command": ["true"]}]}}

    def make(i):
        body = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": f"listed-{i:05d}"},
                "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "restartPolicy": "Never", "template": pod}}}}
        api.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", body)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(make, range(n)))


def bench_list(kubeconfig: str, n: int, repeat: int):
    import kflow
    from kubernetes import client, config

    start = time.perf_counter()
    create_jobs(kubeconfig, n)
    print(f"created {n} PyTorchJobs in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    kubectl = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or "kubectl"

    def kflow_list(_):
        kflow.jobs()

    def kubectl_list(_):
        out = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "get", "pytorchjobs", "-n", "default", "-o", "name"],
                             capture_output=True, text=True, check=True).stdout
        assert out.count("\n") >= n, out[-200:]

    def python_list(_):
        api = client.CustomObjectsApi(config.new_client_from_config(kubeconfig))
        items = api.list_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs")["items"]
        assert len(items) >= n

    os.environ["KFLOW_BACKEND"] = "cluster"
    try:
        return interleaved([
            ("kflow.jobs() (cluster listing, pages of 500)", kflow_list),
            ("kubectl get pytorchjobs -o name", kubectl_list),
            ("kubernetes client list_namespaced_custom_object", python_list),
        ], repeat)
    finally:
        del os.environ["KFLOW_BACKEND"]


REUSE_SNIPPET = """
import json, os, sys, time
from kubernetes import client, config
import kflow

def timed(call, n):
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out

n = int(sys.argv[1])
api = client.CustomObjectsApi(config.new_client_from_config(os.environ["KUBECONFIG"]))
list_jobs = lambda: api.list_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs")
print(json.dumps({"kflow": timed(kflow.jobs, n), "kubernetes": timed(list_jobs, n)}))
"""


def bench_reuse(repeat: int):
    """One Python process calling kflow.jobs() again and again: the first call connects
    (kubeconfig, TLS, discovery); the next ones reuse that connection. Beside it, the
    kubernetes client with one ApiClient made up front, listing the same PyTorchJobs."""
    rows = {"kflow": [], "kubernetes": []}
    os.environ["KFLOW_BACKEND"] = "cluster"
    try:
        for _ in range(repeat):
            out = subprocess.run([sys.executable, "-c", REUSE_SNIPPET, "6"], capture_output=True, text=True, check=True).stdout
            for tool, times in json.loads(out).items():
                rows[tool].append(times)
    finally:
        del os.environ["KFLOW_BACKEND"]
    median = statistics.median
    return [
        ("kflow.jobs(), first call in a process (connects)", median(t[0] for t in rows["kflow"])),
        ("kflow.jobs(), later calls (one reused connection)", median(x for t in rows["kflow"] for x in t[1:])),
        ("kubernetes client list, first call (ApiClient made before)", median(t[0] for t in rows["kubernetes"])),
        ("kubernetes client list, later calls (same ApiClient)", median(x for t in rows["kubernetes"] for x in t[1:])),
    ]


def bench_logs(kubeconfig: str, tmp: pathlib.Path, lines: int, repeat: int):
    import kflow

    project = tmp / "logs-project"
    project.mkdir()
    script = project / "chatty.py"
    script.write_text(f"import sys\nw = sys.stdout.write\nfor i in range({lines}):\n    w(f'line {{i}} of the training log\\n')\n")
    job = kflow.run(str(script), name="bench-logs", backend="cluster")
    assert job.wait(timeout=300).phase == "Succeeded"
    pod = "bench-logs-master-0"
    kubectl = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or "kubectl"

    def kflow_follow(_):
        got = sum(1 for _ in kflow.get("bench-logs").logs(follow=True))
        assert got == lines, got

    def kubectl_follow(_):
        out = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "logs", "-f", pod, "-n", "default"],
                             capture_output=True, text=True, check=True).stdout
        assert out.count("\n") == lines, out.count("\n")

    def kflow_cli_follow(_):
        out = subprocess.run([sys.executable, "-m", "kflow", "logs", "bench-logs", "-f"], capture_output=True, text=True, check=True).stdout
        assert out.count("\n") == lines, out.count("\n")

    return interleaved([
        ("kflow Job.logs(follow=True) (Python iterator, a str per line)", kflow_follow),
        ("kflow logs -f (CLI)", kflow_cli_follow),
        ("kubectl logs -f", kubectl_follow),
    ], repeat)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--mb", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="submit,logs,reuse,list", help="comma-separated: submit, logs, reuse, list")
    args = parser.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for var, sub in [("KFLOW_STATE_DIR", "state"), ("KFLOW_CACHE_DIR", "cache"), ("KFLOW_CONFIG_DIR", "config")]:
            os.environ[var] = str(tmp / "kflow" / sub)
        cluster = TestCluster(tmp / "cluster", ["--watch-history", "20000"])
        os.environ["KUBECONFIG"] = cluster.kubeconfig
        submit, logs, listing, reuse = [], [], [], []
        try:
            if "submit" in only:
                submit = bench_submit(cluster.kubeconfig, tmp, args.mb, args.repeat)
            if "logs" in only:
                logs = bench_logs(cluster.kubeconfig, tmp, args.lines, args.repeat)
            if "reuse" in only:
                reuse = bench_reuse(args.repeat)
            if "list" in only:
                listing = bench_list(cluster.kubeconfig, args.jobs, args.repeat)
        finally:
            cluster.stop()
    print(f"cluster backend vs peers on kflow-testcluster (loopback), median of {args.repeat} after a warm-up, tools taking turns")
    print("| what | tool | seconds | rate |")
    print("|---|---|---:|---:|")
    for name, s in submit:
        print(f"| submit | {name} | {s:.3f} | |")
    for name, s in reuse:
        print(f"| repeated listing in one process | {name} | {s:.4f} | |")
    for name, s in listing:
        print(f"| list {args.jobs} PyTorchJobs | {name} | {s:.3f} | {args.jobs / s:,.0f} jobs/s |")
    for name, s in logs:
        print(f"| follow a {args.lines:,}-line log | {name} | {s:.3f} | {args.lines / s:,.0f} lines/s |")


if __name__ == "__main__":
    main()
