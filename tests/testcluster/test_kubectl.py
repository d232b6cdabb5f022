"""The real kubectl against kflow-testcluster: discovery, apply/get/delete, watch, logs, jobs."""

import json
import subprocess
import time


def wait_phase(tc, pod, phases, timeout=30):
    deadline = time.monotonic() + timeout
    phase = None
    while time.monotonic() < deadline:
        phase = tc.kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}").stdout
        if phase in phases:
            return phase
        time.sleep(0.1)
    status = tc.kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses}", check=False).stdout
    raise AssertionError(f"pod {pod} never reached {phases}; last phase {phase}, containers {status}")


def test_api_resources(testcluster):
    out = testcluster.kubectl("api-resources").stdout
    for name in ("pods", "configmaps", "persistentvolumeclaims", "pytorchjobs", "tfjobs", "mpijobs"):
        assert name in out
    assert "kubeflow.org/v1" in out
    crds = testcluster.kubectl("get", "crd", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/pytorchjobs.kubeflow.org" in crds


def test_apply_get_delete(testcluster, unique):
    manifest = f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: {unique}
  labels: {{app: demo}}
data:
  a: "1"
"""
    assert "created" in testcluster.kubectl("apply", "-f", "-", input=manifest).stdout
    assert "unchanged" in testcluster.kubectl("apply", "-f", "-", input=manifest).stdout
    changed = manifest.replace('a: "1"', 'a: "2"')
    assert "configured" in testcluster.kubectl("apply", "-f", "-", input=changed).stdout
    got = json.loads(testcluster.kubectl("get", "configmap", unique, "-o", "json").stdout)
    assert got["data"] == {"a": "2"}
    assert unique in testcluster.kubectl("get", "cm", "-l", "app=demo").stdout
    ssa = testcluster.kubectl("apply", "--server-side", "-f", "-", input=changed.replace(unique, unique + "-ssa"))
    assert "serverside-applied" in ssa.stdout
    testcluster.kubectl("delete", "configmap", unique, unique + "-ssa")
    res = testcluster.kubectl("get", "configmap", unique, check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr


def test_invalid_and_duplicate_names(testcluster, unique):
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"
    res = testcluster.kubectl("create", "-f", "-", input=cm.format("Bad_Name"), check=False)
    assert res.returncode != 0 and "is invalid" in res.stderr and "RFC 1123" in res.stderr
    testcluster.kubectl("create", "-f", "-", input=cm.format(unique))
    res = testcluster.kubectl("create", "-f", "-", input=cm.format(unique), check=False)
    assert "AlreadyExists" in res.stderr


def test_get_watch_sees_pod_complete(testcluster, unique, tmp_path):
    import os, shutil
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    env = dict(os.environ, KUBECONFIG=testcluster.kubeconfig)
    out = tmp_path / "watch.txt"
    with open(out, "w") as f:
        watcher = subprocess.Popen([kubectl, "get", "pods", "-w", "-l", f"run={unique}"], stdout=f, stderr=subprocess.STDOUT, env=env)
        try:
            time.sleep(0.5)
            testcluster.kubectl("run", unique, "--image=busybox", "--restart=Never", "--", "sh", "-c", "sleep 0.5; echo done")
            deadline = time.monotonic() + 30
            while "Completed" not in out.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            watcher.terminate()
            watcher.wait()
    text = out.read_text()
    assert "Completed" in text, text
    assert "Running" in text or "ContainerCreating" in text, text


def test_logs_follow(testcluster, unique):
    script = "import time\nfor i in range(4):\n    print('tick', i, flush=True)\n    time.sleep(0.3)"
    testcluster.kubectl("run", unique, "--image=python:3.12", "--restart=Never", "--command", "--", "python", "-c", script)
    wait_phase(testcluster, unique, {"Running", "Succeeded"})
    out = testcluster.kubectl("logs", "-f", unique).stdout
    assert out == "tick 0\ntick 1\ntick 2\ntick 3\n"
    stamped = testcluster.kubectl("logs", unique, "--timestamps", "--tail=1").stdout
    assert stamped.split(" ", 1)[1] == "tick 3\n"


PYTORCHJOB = """
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: {name}
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: {policy}
      template:
        spec:
          containers:
          - name: pytorch
            image: docker.io/kubeflow/pytorch-mnist:latest
            command: ["python", "-c", "{cmd}"]
    Worker:
      replicas: 1
      restartPolicy: {policy}
      template:
        spec:
          containers:
          - name: pytorch
            image: docker.io/kubeflow/pytorch-mnist:latest
            command: ["python", "-c", "{cmd}"]
"""


def test_pytorchjob_two_replicas_succeeds(testcluster, unique):
    cmd = "import os;print(os.environ['RANK'])"
    testcluster.kubectl("apply", "-f", "-", input=PYTORCHJOB.format(name=unique, policy="OnFailure", cmd=cmd))
    testcluster.kubectl("wait", f"pytorchjob/{unique}", "--for=condition=Succeeded", "--timeout=60s", timeout=90)
    wait_phase(testcluster, f"{unique}-worker-0", {"Succeeded"})
    assert testcluster.kubectl("logs", f"{unique}-master-0").stdout == "0\n"
    assert testcluster.kubectl("logs", f"{unique}-worker-0").stdout == "1\n"
    pods = testcluster.kubectl("get", "pods", "-l", f"training.kubeflow.org/job-name={unique}", "-o", "name").stdout.split()
    assert sorted(pods) == [f"pod/{unique}-master-0", f"pod/{unique}-worker-0"]
    testcluster.kubectl("delete", "pytorchjob", unique)
    assert testcluster.kubectl("get", "pods", "-l", f"training.kubeflow.org/job-name={unique}", "-o", "name").stdout == ""


def test_failing_pytorchjob_fails(testcluster, unique):
    cmd = "import sys;sys.exit(3)"
    testcluster.kubectl("apply", "-f", "-", input=PYTORCHJOB.format(name=unique, policy="Never", cmd=cmd))
    testcluster.kubectl("wait", f"pytorchjob/{unique}", "--for=condition=Failed", "--timeout=60s", timeout=90)
    job = json.loads(testcluster.kubectl("get", "pytorchjob", unique, "-o", "json").stdout)
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"][0]
    assert failed["reason"] == "PyTorchJobFailed"
    assert "exit code 3" in failed["message"]


def test_pytorchjob_admission_rejects(testcluster, unique):
    bad = PYTORCHJOB.format(name=unique, policy="Never", cmd="pass").replace("name: pytorch", "name: main")
    res = testcluster.kubectl("apply", "-f", "-", input=bad, check=False)
    assert res.returncode != 0
    assert "must have at least one container with name pytorch" in res.stderr


def test_bad_image_and_failing_command(testcluster, unique):
    testcluster.kubectl("run", unique + "-img", "--image=registry.invalid/nothing:1", "--restart=Never")
    testcluster.kubectl("wait", f"pod/{unique}-img", "--for=jsonpath={.status.containerStatuses[0].state.waiting.reason}=ImagePullBackOff", "--timeout=30s")
    res = testcluster.kubectl("logs", unique + "-img", check=False)
    assert "waiting to start" in res.stderr
    testcluster.kubectl("run", unique + "-fail", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo bye >&2; exit 4")
    testcluster.kubectl("wait", f"pod/{unique}-fail", "--for=jsonpath={.status.phase}=Failed", "--timeout=30s")
    code = testcluster.kubectl("get", "pod", unique + "-fail", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}").stdout
    assert code == "4"
    assert testcluster.kubectl("logs", unique + "-fail").stdout == "bye\n"
    assert "Error" in testcluster.kubectl("get", "pod", unique + "-fail").stdout


def test_create_with_typed_clients(testcluster, unique):
    """`kubectl create configmap|secret|namespace` send protobuf bodies, not JSON."""
    testcluster.kubectl("create", "configmap", unique, "--from-literal=a=1")
    assert json.loads(testcluster.kubectl("get", "cm", unique, "-o", "jsonpath={.data}").stdout) == {"a": "1"}
    testcluster.kubectl("create", "secret", "generic", unique, "--from-literal=tok=abc")
    assert testcluster.kubectl("get", "secret", unique, "-o", "jsonpath={.data.tok}").stdout == "YWJj"
    testcluster.kubectl("create", "namespace", unique)
    assert "Active" in testcluster.kubectl("get", "ns", unique).stdout
    res = testcluster.kubectl("create", "configmap", "Bad_Name", check=False)
    assert res.returncode != 0 and "is invalid" in res.stderr
    testcluster.kubectl("delete", "namespace", unique)


def test_exec_and_cp(testcluster, unique, tmp_path):
    testcluster.kubectl("run", unique, "--image=python:3.12", "--command", "--",
                        "python", "-c", "import time; open('/tmp/mark', 'w').write('from-pod'); time.sleep(120)")
    wait_phase(testcluster, unique, {"Running"})
    out = testcluster.kubectl("exec", unique, "--", "cat", "/tmp/mark").stdout
    assert out == "from-pod", "exec sees the container's /tmp"
    res = testcluster.kubectl("exec", unique, "--", "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert res.returncode == 3 and "oops" in res.stderr
    piped = testcluster.kubectl("exec", "-i", unique, "--", "sh", "-c", "tr a-z A-Z", input="shout\n").stdout
    assert piped == "SHOUT\n"
    src = tmp_path / "up.txt"
    src.write_text("uploaded")
    testcluster.kubectl("cp", str(src), f"{unique}:/tmp/up.txt")
    assert testcluster.kubectl("exec", unique, "--", "cat", "/tmp/up.txt").stdout == "uploaded"
    testcluster.kubectl("cp", f"{unique}:/tmp/mark", str(tmp_path / "down.txt"))
    assert (tmp_path / "down.txt").read_text() == "from-pod"
    testcluster.kubectl("delete", "pod", unique)


def test_cronjobs_and_their_runs_the_kubectl_way(testcluster, unique):
    """`kubectl create cronjob` and a manual run with `kubectl create job --from=cronjob/…` (both
    typed, protobuf bodies), a manifest the API server refuses, a scheduled run once due,
    `kubectl wait` and `kubectl logs job/…` on the runs, and the runs going with the CronJob."""
    made = testcluster.kubectl("create", "cronjob", unique, "--image=python:3.11", "--schedule=0 3 * * *",
                               "--restart=Never", "--", "python", "-c", "print('nightly report')")
    assert f"cronjob.batch/{unique} created" in made.stdout
    cron = json.loads(testcluster.kubectl("get", "cronjob", unique, "-o", "json").stdout)
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["command"]) == ("python:3.11", ["python", "-c", "print('nightly report')"])
    bad = ("apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {}\nspec:\n  schedule: soon\n"
           "  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n"
           "          containers: [{{name: main, image: 'python:3.11'}}]\n").format(unique + "-bad")
    refused = testcluster.kubectl("create", "-f", "-", input=bad, check=False)
    assert refused.returncode != 0 and "spec.schedule" in refused.stderr, refused.stderr
    assert unique in testcluster.kubectl("get", "cronjobs").stdout

    # The manual trigger: kubectl builds the Job from the template, owned by the CronJob.
    testcluster.kubectl("create", "job", f"{unique}-manual", f"--from=cronjob/{unique}")
    testcluster.kubectl("wait", f"job/{unique}-manual", "--for=condition=Complete", "--timeout=60s")
    job = json.loads(testcluster.kubectl("get", "job", f"{unique}-manual", "-o", "json").stdout)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert testcluster.kubectl("logs", f"job/{unique}-manual").stdout == "nightly report\n"

    # A schedule last run long ago is due now (kubectl writes the status subresource).
    testcluster.kubectl("patch", "cronjob", unique, "--type=merge", "-p", json.dumps({"spec": {"schedule": "* * * * *"}}))
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 180))
    testcluster.kubectl("patch", "cronjob", unique, "--subresource=status", "--type=merge",
                        "-p", json.dumps({"status": {"lastScheduleTime": past}}))
    deadline = time.monotonic() + 15
    while True:
        jobs = json.loads(testcluster.kubectl("get", "jobs", "-o", "json").stdout)["items"]
        scheduled = [j for j in jobs if j["metadata"]["ownerReferences"][0]["name"] == unique
                     and "batch.kubernetes.io/cronjob-scheduled-timestamp" in j["metadata"].get("annotations", {})]
        if scheduled:
            break
        assert time.monotonic() < deadline, "the CronJob never ran"
        time.sleep(0.2)
    name = scheduled[0]["metadata"]["name"]
    testcluster.kubectl("wait", f"job/{name}", "--for=condition=Complete", "--timeout=60s")
    assert "Complete" in testcluster.kubectl("get", "job", name).stdout
    testcluster.kubectl("delete", "cronjob", unique)
    deadline = time.monotonic() + 10
    while any(testcluster.kubectl("get", "job", n, check=False).returncode == 0 for n in (name, f"{unique}-manual")):
        assert time.monotonic() < deadline, "the CronJob's runs outlived it"
        time.sleep(0.2)
