"""mpirun (kflow-testcluster stand-in for Open MPI's): places ranks on the hostfile's slots
and starts each through the rsh agent, as Open MPI's rsh launcher does in an MPIJob launcher:
`$OMPI_MCA_plm_rsh_agent HOST 'command'` (the v1 operator's /etc/mpi/kubexec.sh, which runs
kubectl exec), or kubectl exec on the pod named by the host's first DNS label when the agent is
ssh (mpi-operator v2 workers run no sshd here). There is no MPI wire protocol: ranks get
OMPI_COMM_WORLD_* / PMIX_RANK and talk over the network themselves (torch.distributed, ...)."""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

NAME = "mpirun"
RULE = "-" * 74

# Options taking one value that only tune placement, binding or output here.
VALUE_OPTS = {
    "-bind-to", "--bind-to", "-map-by", "--map-by", "-rank-by", "--rank-by", "--prefix",
    "-prefix", "-npernode", "--npernode", "-npersocket", "--npersocket", "-N", "-s",
    "--preload-files", "-output-filename", "--output-filename", "-report-pid",
    "--report-pid", "-report-uri", "--report-uri", "-cpus-per-proc", "--cpus-per-proc",
    "-cpus-per-rank", "--cpus-per-rank", "-cpu-set", "--cpu-set", "-am", "--am",
    "-tune", "--tune", "-stdin", "--stdin",
}
FLAG_OPTS = {
    "--allow-run-as-root", "-allow-run-as-root", "--oversubscribe", "-oversubscribe",
    "--nooversubscribe", "-nooversubscribe", "-q", "--quiet", "-v", "--verbose",
    "--report-bindings", "-report-bindings", "--display-map", "-display-map",
    "--display-allocation", "-display-allocation", "--tag-output", "-tag-output",
    "--timestamp-output", "-timestamp-output", "--merge-stderr-to-stdout",
    "-merge-stderr-to-stdout", "--noprefix", "-noprefix", "--use-hwthread-cpus",
    "-use-hwthread-cpus", "--bind-to-core", "--bind-to-socket", "--bynode", "-bynode",
    "--byslot", "-byslot", "--nolocal", "-nolocal", "--debug-daemons", "--leave-session-attached",
    "--enable-recovery", "--disable-recovery", "--continuous", "--hetero-nodes",
}


def die(message, code=1):
    sys.stderr.write(f"{RULE}\n{message}\n{RULE}\n")
    sys.stderr.flush()
    sys.exit(code)


class Options:
    def __init__(self):
        self.np = None
        self.exports = []  # (name, value or None)
        self.hostfile = None
        self.hosts = None
        self.oversubscribe = False
        self.map_by = "slot"
        self.wdir = None
        self.tag_output = False
        self.program = []


def parse(argv):
    o = Options()
    i = 0

    def value(opt):
        nonlocal i
        i += 1
        if i >= len(argv):
            die(f"{NAME}: Error: option \"{opt}\" did not have enough parameters (1)")
        return argv[i]

    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        opt, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
        take = (lambda: inline) if eq else (lambda: value(opt))
        if opt in ("-np", "--np", "-n", "--n", "-c"):
            v = take()
            if not v.isdigit():
                die(f"{NAME}: Error: the number of processes \"{v}\" is not a number")
            o.np = int(v)
        elif opt in ("-x",):
            v = take()
            name, has, val = v.partition("=")
            o.exports.append((name, val if has else None))
        elif opt in ("--hostfile", "-hostfile", "--machinefile", "-machinefile", "--default-hostfile", "-default-hostfile"):
            o.hostfile = take()
        elif opt in ("-H", "-host", "--host"):
            o.hosts = take()
        elif opt in ("-mca", "--mca", "-gmca", "--gmca"):
            key = take()
            val = value(opt)
            os.environ[f"OMPI_MCA_{key}"] = val
        elif opt in ("-wdir", "--wdir", "-wd", "--wd"):
            o.wdir = take()
        elif opt in ("--oversubscribe", "-oversubscribe"):
            o.oversubscribe = True
        elif opt in ("--tag-output", "-tag-output"):
            o.tag_output = True
        elif opt in ("-map-by", "--map-by"):
            v = take()
            o.map_by = v.split(":")[0].lower()
            if "oversubscribe" in v.lower():
                o.oversubscribe = True
        elif opt in ("--bynode", "-bynode"):
            o.map_by = "node"
        elif opt in VALUE_OPTS:
            take()
        elif opt in FLAG_OPTS:
            pass
        else:
            sys.stderr.write(f"{NAME} (kflow-testcluster stand-in): ignoring unknown option {a}\n")
        i += 1
    o.program = argv[i:]
    if not o.program:
        die(f"{NAME} could not find anything to do.\n\nIt is possible that you forgot to specify "
            "how many processes to run\nvia the \"-np\" argument.")
    return o


def read_hostfile(path):
    """[(host, slots)] in file order; a host listed twice gets both lines' slots."""
    try:
        text = open(path).read()
    except OSError as e:
        die(f"Open RTE was unable to open the hostfile:\n    {path}\nCheck to make sure the path "
            f"and filename are correct.\n({e.strerror})")
    hosts = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        slots = 1
        for w in words[1:]:
            key, _, val = w.partition("=")
            if key in ("slots", "cpu") and val.isdigit():
                slots = int(val)
        hosts[words[0]] = hosts.get(words[0], 0) + slots
    return list(hosts.items())


def host_list(o):
    if o.hosts:
        out = {}
        for h in o.hosts.split(","):
            name, _, n = h.partition(":")
            out[name] = out.get(name, 0) + (int(n) if n.isdigit() else 1)
        return list(out.items())
    path = o.hostfile or os.environ.get("OMPI_MCA_orte_default_hostfile")
    if not path and os.path.exists("/etc/mpi/hostfile"):
        path = "/etc/mpi/hostfile"
    if path:
        return read_hostfile(path)
    return [("localhost", os.cpu_count() or 1)]


def place(o, hosts):
    """[(rank, host)] by slot (fill each host in turn) or by node (round robin)."""
    total = sum(s for _, s in hosts)
    np = o.np if o.np is not None else total
    if np > total and not o.oversubscribe:
        die(f"There are not enough slots available in the system to satisfy the {np}\nslots that "
            f"were requested by the application:\n\n  {o.program[0]}\n\nEither request fewer slots "
            "for your application, or make more slots available\nfor use.")
    order = []
    if o.map_by == "node":
        while len(order) < np:
            for h, s in hosts:
                if order.count(h) < s or np > total:
                    order.append(h)
    else:
        for h, s in hosts:
            order.extend([h] * s)
        i = 0
        while len(order) < np:  # oversubscribed: wrap around
            order.append(hosts[i % len(hosts)][0])
            i += 1
    return list(enumerate(order[:np]))


def is_local(host):
    return host in ("localhost", "127.0.0.1", os.uname().nodename)


def kubectl():
    for k in ("/opt/kube/kubectl", shutil.which("kubectl")):
        if k and os.access(k, os.X_OK):
            return k
    die(f"{NAME}: no rsh agent: OMPI_MCA_plm_rsh_agent is ssh, no sshd runs in this test cluster, "
        "and no kubectl was found at /opt/kube/kubectl or on PATH")


def agent_argv(host, command):
    """The argv that runs `command` on `host`: a local shell, the rsh agent, or kubectl exec."""
    if is_local(host):
        return ["/bin/sh", "-c", command]
    configured = os.environ.get("OMPI_MCA_plm_rsh_agent", "ssh : rsh")
    for choice in configured.split(":"):
        words = shlex.split(choice)
        if not words or os.path.basename(words[0]) in ("ssh", "rsh"):
            continue
        if shutil.which(words[0]) or os.access(words[0], os.X_OK):
            return words + [host, command]
    # mpi-operator v2 hosts are <pod>.<service>.<namespace>.svc.
    labels = host.split(".")
    argv = [kubectl(), "exec", labels[0]]
    if len(labels) >= 3:
        argv += ["-n", labels[2]]
    return argv + ["--", "/bin/sh", "-c", command]


def rank_command(o, rank, size, local_rank, local_size):
    env = {
        "OMPI_COMM_WORLD_RANK": rank, "OMPI_COMM_WORLD_SIZE": size,
        "OMPI_COMM_WORLD_LOCAL_RANK": local_rank, "OMPI_COMM_WORLD_LOCAL_SIZE": local_size,
        "OMPI_COMM_WORLD_NODE_RANK": local_rank, "OMPI_UNIVERSE_SIZE": size, "PMIX_RANK": rank,
    }
    for name, val in o.exports:
        if val is None:
            val = os.environ.get(name)
            if val is None:
                continue
        env[name] = val
    exports = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
    if o.wdir:
        cd = f"cd {shlex.quote(o.wdir)} || exit 1"
    else:  # as orted: mpirun's directory when the node has it, else HOME
        cd = f"cd {shlex.quote(os.getcwd())} 2>/dev/null || cd \"$HOME\""
    return f"{cd}; export {exports}; exec {shlex.join(o.program)}"


def wait_for_hosts(hosts):
    """Wait until every remote host accepts commands: on a real cluster the v1 launcher's
    kubectl-delivery init container waits for the workers, and ssh retries (v2)."""
    deadline = time.monotonic() + float(os.environ.get("KFLOW_MPIRUN_WAIT_SECONDS", "120"))
    for host in [h for h, _ in hosts if not is_local(h)]:
        while True:
            probe = subprocess.run(agent_argv(host, "true"), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                die("ORTE was unable to reliably start one or more daemons.\nThis usually is "
                    f"caused by:\n\n* the remote host {host} not being reachable: its pod is not "
                    "running, or the rsh agent\n  (OMPI_MCA_plm_rsh_agent) failed.")
            time.sleep(0.5)


def forward(pipe, out, lock, prefix):
    for line in iter(pipe.readline, b""):
        with lock:
            out.write(prefix + line)
            out.flush()
    pipe.close()


def main(argv):
    o = parse(argv)
    hosts = host_list(o)
    placement = place(o, hosts)
    size = len(placement)
    wait_for_hosts([h for h in hosts if any(p == h[0] for _, p in placement)])
    procs = []
    threads = []
    lock = threading.Lock()
    for rank, host in placement:
        on_host = [r for r, h in placement if h == host]
        cmd = rank_command(o, rank, size, on_host.index(rank), len(on_host))
        p = subprocess.Popen(agent_argv(host, cmd), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        procs.append((rank, p))
        for pipe, out, tag in ((p.stdout, sys.stdout.buffer, "stdout"), (p.stderr, sys.stderr.buffer, "stderr")):
            prefix = f"[1,{rank}]<{tag}>:".encode() if o.tag_output else b""
            t = threading.Thread(target=forward, args=(pipe, out, lock, prefix), daemon=True)
            t.start()
            threads.append(t)

    def stop_all(*_):
        for _, p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def on_signal(signum, _frame):
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    first_failure = None
    pending = dict(procs)
    while pending:
        for rank, p in list(pending.items()):
            code = p.poll()
            if code is None:
                continue
            del pending[rank]
            if code != 0 and first_failure is None:
                first_failure = (rank, code if code > 0 else 128 - code)
                stop_all()
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=5)
    if first_failure:
        rank, code = first_failure
        jobid = os.getpid() % 65536
        sys.stderr.write(
            "-------------------------------------------------------\n"
            "Primary job  terminated normally, but 1 process returned\n"
            "a non-zero exit code. Per user-direction, the job has been aborted.\n"
            "-------------------------------------------------------\n"
            f"{RULE}\nmpirun detected that one or more processes exited with non-zero status, "
            "thus causing\nthe job to be terminated. The first process to do so was:\n\n"
            f"  Process name: [[{jobid},1],{rank}]\n  Exit code:    {code}\n{RULE}\n")
        sys.stderr.flush()
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
