"""Signing in from the CLI and the Python API against the test cluster's realm: the session in a
real Secret Service (gnome-keyring) or, without one, in memory only; wrong password and
required-action pages; logout leaving nothing behind; and the sentinel search — the run's unique
password and the tokens kflow received must not appear in any file the run could touch, in any
captured output, or in any process's arguments."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from .auth_helpers import files_containing, kflow, python

USER = "user@example.com"


class ArgsWatcher:
    """Samples every process's arguments (`ps -eww -o args`) while a test runs."""

    def __init__(self):
        self.samples: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout)
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stored_secrets(entries: str) -> list:
    """The token values inside kflow's keyring entries (to search for them elsewhere)."""
    values = []
    for line in entries.splitlines():
        if line.startswith("secret = "):
            try:
                blob = json.loads(line[len("secret = "):])
            except ValueError:
                continue
            values += [blob.get(k) for k in ("id_token", "access_token", "refresh_token") if blob.get(k)]
            for cookie in json.loads(blob.get("cookies") or "[]"):
                value = cookie["raw_cookie"].split(";", 1)[0].split("=", 1)[1]
                if len(value) >= 12:  # session ids, not empty expired ones
                    values.append(value)
    return values


def test_cli_login_whoami_kubeconfig_logout_with_the_secret_service(realm, secret_service, sandbox, sentinel):
    env = secret_service.env(sandbox["env"])
    outputs = []
    with ArgsWatcher() as ps:
        res = kflow(["login", "--url", realm.url, "--username", USER, "--password-stdin"], env, input=sentinel + "\n")
        outputs.append(res.stdout + res.stderr)
        assert res.returncode == 0, res.stderr
        assert f"signed in to {realm.url} as {USER}" in res.stderr
        assert "OS keyring (Secret Service)" in res.stderr

        # Another process finds the session in the keyring.
        who = kflow(["whoami", "--json"], env)
        outputs.append(who.stdout + who.stderr)
        info = json.loads(who.stdout)
        assert info["signed_in"] and info["username"] == USER and info["url"] == realm.url
        assert info["store"] == "keyring" and not info["password_stored"]
        assert 0 < info["expires_in_seconds"] <= 300

        entries = secret_service.entries()
        assert f"session:{USER}@{realm.url}" in entries and "password:" not in entries
        tokens = stored_secrets(entries)
        # id, access and refresh token, the gateway's session cookie and the realm's SSO cookies.
        assert len(tokens) >= 5, len(tokens)
        assert info["web_session"] is True

        kc = kflow(["kubeconfig"], env)
        assert kc.returncode == 0, kc.stderr
        assert "live token" in kc.stderr and sentinel not in kc.stdout + kc.stderr
        assert f"server: {realm.api}" in kc.stdout and "certificate-authority-data" in kc.stdout

        out = kflow(["logout"], env)
        outputs.append(out.stdout + out.stderr)
        assert out.returncode == 0 and "signed out" in out.stderr, out.stderr
    assert "kflow" not in secret_service.entries().replace("kflow-test-probe", "")
    again = kflow(["whoami"], env)
    assert again.returncode == 1 and "not signed in" in again.stdout
    assert not (sandbox["dirs"]["state"] / "auth.json").exists()

    # The sentinel search: files, outputs (the kubeconfig's token aside: asked for), process args.
    assert files_containing(sandbox["root"], [sentinel, *tokens]) == []
    assert not [o for o in outputs if sentinel in o or any(t in o for t in tokens)]
    assert not [s for s in ps.samples if sentinel in s]
    assert len(ps.samples) > 3


def test_stored_password_is_opt_in_and_removed_on_logout(realm, secret_service, sandbox, sentinel):
    env = secret_service.env(sandbox["env"])
    res = kflow(["login", "--url", realm.url, "-u", USER, "--password-stdin", "--store-password", "--json"], env, input=sentinel)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["password_stored"] is True
    entries = secret_service.entries()
    assert f"password:{USER}@{realm.url}" in entries and sentinel in entries
    assert kflow(["logout"], env).returncode == 0
    assert f"{USER}" not in secret_service.entries()
    assert files_containing(sandbox["root"], [sentinel]) == []


def test_python_api_login_is_seen_by_other_processes(realm, secret_service, sandbox, sentinel):
    env = secret_service.env(sandbox["env"])
    code = (
        "import json, sys, kflow\n"
        f"who = kflow.login(url={realm.url!r}, username={USER!r}, password=sys.stdin.readline().strip())\n"
        "print(json.dumps(who))\n"
    )
    with ArgsWatcher() as ps:
        res = subprocess.run([sys.executable, "-c", code], input=sentinel + "\n",
                             env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["store"] == "keyring"
    later = python("import json, kflow; print(json.dumps(kflow.whoami()))", env)
    assert json.loads(later.stdout)["username"] == USER, later.stderr
    gone = python("import json, kflow; print(json.dumps(kflow.logout())); print(json.dumps(kflow.whoami()))", env)
    was, now = [json.loads(line) for line in gone.stdout.splitlines()]
    assert was["signed_in"] and not now["signed_in"]
    assert USER not in secret_service.entries()
    assert not [s for s in ps.samples if sentinel in s]
    assert sentinel not in res.stdout + res.stderr + later.stdout + later.stderr + gone.stdout + gone.stderr
    assert files_containing(sandbox["root"], [sentinel]) == []


def test_wrong_password_is_a_clear_error_with_an_event_id(realm, sandbox, sentinel):
    wrong = sentinel + "-wrong"
    res = kflow(["login", "--url", realm.url, "--username", USER, "--password-stdin"], sandbox["env"], input=wrong)
    assert res.returncode == 2
    assert "rejected the username or password" in res.stderr and "Invalid username or password." in res.stderr
    assert "error[KF-" in res.stderr and "Traceback" not in res.stderr
    assert wrong not in res.stdout + res.stderr
    log = (sandbox["dirs"]["state"] / "kflow.log").read_text()
    assert "rejected the username or password" in log
    assert files_containing(sandbox["root"], [wrong, sentinel]) == []


@pytest.mark.parametrize("user,password,what", [("otp-user", "pw-otp", "one-time code"),
                                                ("new-user", "pw-new", "update-password")])
def test_required_action_page_is_reported_not_filled(realm, sandbox, user, password, what):
    code = (
        "import sys, kflow\n"
        "try:\n"
        f"    kflow.login(url={realm.url!r}, username={user!r}, password=sys.stdin.readline().strip())\n"
        "except kflow.ValidationError as e:\n"
        "    print(type(e).__name__, e, e.event_id)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], input=password + "\n", env=sandbox["env"],
                         capture_output=True, text=True, timeout=60)
    assert "ValidationError" in res.stdout, res.stdout + res.stderr
    assert what in res.stdout and "sign in once in a browser" in res.stdout
    assert password not in res.stdout + res.stderr


def test_without_a_keyring_the_session_lives_in_memory_and_the_user_is_told(realm, sandbox, sentinel):
    # No DBUS_SESSION_BUS_ADDRESS (no Secret Service) and the kernel keyring ruled out, as on a
    # machine whose seccomp profile forbids keyctl.
    env = dict(sandbox["env"], KFLOW_KEYRING="none")
    code = (
        "import json, sys, warnings, kflow\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    who = kflow.login(url={realm.url!r}, username={USER!r}, password=sys.stdin.readline().strip())\n"
        "    again = kflow.whoami()\n"
        "print(json.dumps({'login': who, 'whoami': again, 'warnings': [str(w.message) for w in caught]}))\n"
        "print(json.dumps(kflow.logout()))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], input=sentinel + "\n", env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    first, logout = [json.loads(line) for line in res.stdout.splitlines()]
    assert first["login"]["store"] == "memory" and first["whoami"]["signed_in"]
    assert len(first["warnings"]) == 1 and "no OS keyring" in first["warnings"][0]
    assert logout["signed_in"]
    # Nothing on disk: another process is not signed in.
    other = kflow(["whoami", "--json"], env)
    assert json.loads(other.stdout)["signed_in"] is False and other.returncode == 1
    assert not (sandbox["dirs"]["state"] / "auth.json").exists()
    assert files_containing(sandbox["root"], [sentinel]) == []
    assert sentinel not in res.stdout + res.stderr


def test_without_a_secret_service_the_kernel_keyring_is_next(realm, sandbox, sentinel):
    env = dict(sandbox["env"])  # no DBUS_SESSION_BUS_ADDRESS: no Secret Service
    probe = subprocess.run(["sh", "-c", "cat /proc/keys >/dev/null"], capture_output=True)
    res = kflow(["login", "--url", realm.url, "-u", USER, "--password-stdin", "--json"], env, input=sentinel)
    assert res.returncode == 0, res.stderr
    store = json.loads(res.stdout)["store"]
    if store == "memory":
        pytest.skip(f"the kernel keyring is not usable here ({probe.returncode})")
    assert store == "kernel-keyring"
    # Another process of this login session finds it; nothing is on disk.
    who = json.loads(kflow(["whoami", "--json"], env).stdout)
    assert who["signed_in"] and who["store"] == "kernel-keyring"
    assert files_containing(sandbox["root"], [sentinel]) == []
    assert kflow(["logout"], env).returncode == 0
    assert json.loads(kflow(["whoami", "--json"], env).stdout)["signed_in"] is False


def test_forced_memory_store(realm, secret_service, sandbox, sentinel):
    env = dict(secret_service.env(sandbox["env"]), KFLOW_KEYRING="none")
    res = kflow(["login", "--url", realm.url, "-u", USER, "--password-stdin", "--json"], env, input=sentinel)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["store"] == "memory" and "no OS keyring" in res.stderr
    assert USER not in secret_service.entries()


def test_interactive_prompt_does_not_echo_the_password(realm, sandbox, sentinel):
    """`kflow login` on a terminal asks for the username and the password; the password is not
    echoed (what a shoulder-surfer or a terminal recording would see)."""
    import os
    import pty
    import time

    env = dict(sandbox["env"], KFLOW_URL=realm.url)
    pid, fd = pty.fork()
    if pid == 0:  # the child: kflow on the pty
        os.execve(sys.executable, [sys.executable, "-m", "kflow", "login"], env)
    seen = b""

    def read_until(marker: bytes, timeout: float = 30):
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
        return marker in seen

    assert read_until(b"Username: "), seen
    os.write(fd, USER.encode() + b"\n")
    assert read_until(b"Password: "), seen
    os.write(fd, sentinel.encode() + b"\n")
    read_until(b"signed in to ")
    read_until(b"\n", timeout=2)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    assert b"signed in to " in seen and sentinel.encode() not in seen


def test_without_a_terminal_nothing_is_prompted(realm, sandbox):
    """Scripts get a clear error instead of a hanging prompt (and never a password in argv)."""
    res = kflow(["login", "--url", realm.url, "--username", USER], sandbox["env"], input="")
    assert res.returncode == 2 and "--password-stdin" in res.stderr, res.stderr
    res = python(f"import kflow\ntry:\n    kflow.login(url={realm.url!r}, username={USER!r})\nexcept ValueError as e:\n    print(e)\n",
                 sandbox["env"])
    assert "pass password=" in res.stdout, res.stdout + res.stderr
    helptext = kflow(["login", "--help"], sandbox["env"]).stdout
    assert "--password-stdin" in helptext and "--password " not in helptext


def test_signed_in_session_runs_cluster_jobs_without_a_kubeconfig(realm, secret_service, sandbox, sentinel, tmp_path):
    """Zero kubectl, zero kubeconfig: after `kflow login`, `kflow run --cluster` connects through
    the session (its token, refreshed in place) to the user's profile namespace."""
    env = secret_service.env(sandbox["env"])
    env.pop("KUBECONFIG", None)
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("import os\nprint('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'])\n")
    assert kflow(["login", "--url", realm.url, "--username", USER, "--password-stdin"], env, input=sentinel + "\n").returncode == 0
    run = kflow(["run", "--cluster", "--workers", "2", str(project / "train.py")], env)
    assert run.returncode == 0, run.stderr
    assert "[master-0] rank 0 of 2" in run.stdout and "[worker-0] rank 1 of 2" in run.stdout
    jobs = json.loads(kflow(["jobs", "--json"], env).stdout)
    assert jobs[0]["backend"] == "cluster" and jobs[0]["phase"] == "Succeeded"
    assert sentinel not in run.stdout + run.stderr
    kflow(["logout"], env)
