"""Fixtures for the sign-in tests: a kflow-testcluster with its Keycloak-style realm, a private
Secret Service (dbus-daemon + gnome-keyring-daemon, unlocked, on a bus of our own — or the one of
a surrounding `dbus-run-session`), and an isolated environment per test (HOME, XDG dirs, TMPDIR,
kflow's state/config/cache) so the sentinel search covers every file a run could touch."""

from __future__ import annotations

import base64
import os
import pathlib
import shutil
import subprocess
import time
import uuid

import pytest
import yaml

from kflow_testsupport import TestCluster

REALM = "kubeflow"


class Realm:
    """A running test cluster with a realm; `url` is the "Kubeflow URL", `ca` its CA file."""

    def __init__(self, base: pathlib.Path, password: str, access_seconds: int = 300, extra_args=()):
        self.password = password
        cfg = {
            "realm": REALM,
            "clients": ["kflow"],
            "accessTokenSeconds": access_seconds,
            "refreshTokenSeconds": 1800,
            "users": [
                {"username": "user@example.com", "email": "user@example.com", "password": password,
                 "namespaces": ["kubeflow-user-example-com"]},
                {"username": "otp-user", "password": "pw-otp", "requiredAction": "otp", "namespaces": ["otp-ns"]},
                {"username": "new-user", "password": "pw-new", "requiredAction": "update-password"},
            ],
        }
        (base / "realm.yaml").write_text(yaml.safe_dump(cfg))
        state = base / "cluster"
        self.cluster = TestCluster(state, ["--idp-config", str(base / "realm.yaml"), "--gateway-port", "0", *extra_args])
        self.admin_kubeconfig = self.cluster.kubeconfig
        kc = yaml.safe_load(open(self.admin_kubeconfig))
        cluster = kc["clusters"][0]["cluster"]
        # The Kubeflow URL is the oauth2-proxy-style gateway (https://localhost:…); the API
        # server and the realm live on https://127.0.0.1:…, as in a real deployment.
        self.api = cluster["server"]
        gateway = state / "gateway-url"
        deadline = time.monotonic() + 30
        while not gateway.exists():
            if self.cluster.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kflow-testcluster wrote no gateway-url")
            time.sleep(0.02)
        self.url = gateway.read_text().strip()
        self.ca = base / "ca.crt"
        self.ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))

    def stop(self):
        self.cluster.stop()


@pytest.fixture(scope="module")
def sentinel() -> str:
    """A password unique to this run: finding it anywhere afterwards is a leak."""
    return f"kflow-sentinel-Pa55-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def realm(tmp_path_factory, sentinel):
    r = Realm(tmp_path_factory.mktemp("realm"), sentinel)
    yield r
    r.stop()


class SecretService:
    """A D-Bus session bus with an unlocked gnome-keyring Secret Service on it."""

    def __init__(self, base: pathlib.Path):
        self.procs: list[subprocess.Popen] = []
        self.home = base / "keyring-home"
        self.home.mkdir()
        outer = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
        if outer and os.environ.get("KFLOW_TEST_USE_OUTER_BUS") == "1":
            # Inside `dbus-run-session -- sh -c 'echo -n pw | gnome-keyring-daemon --unlock …; pytest'`.
            self.address = outer
            self.home = pathlib.Path(os.environ.get("HOME", str(self.home)))
            return
        # A bus without service activation: nothing but our daemon can become the Secret Service
        # (with activation, the first probe would start a second gnome-keyring that wins the race).
        config = base / "bus.conf"
        config.write_text(
            "<busconfig><type>session</type><listen>unix:path=%s/bus</listen><auth>EXTERNAL</auth>"
            "<policy context='default'><allow send_destination='*' eavesdrop='true'/><allow eavesdrop='true'/>"
            "<allow own='*'/></policy></busconfig>" % base
        )
        bus = subprocess.Popen(
            ["dbus-daemon", "--nofork", "--print-address=1", f"--config-file={config}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.procs.append(bus)
        self.address = bus.stdout.readline().strip()
        keyring = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=open(base / "gnome-keyring.log", "wb"),
            env=self.env({}),
        )
        keyring.stdin.write(b"test")
        keyring.stdin.close()
        self.procs.append(keyring)
        deadline = time.monotonic() + 20
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gnome-keyring did not come up: {self.last_error}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        """Stores and removes a probe item: the default collection exists and is unlocked."""
        attrs = ["service", "kflow-test-probe"]
        stored = subprocess.run(["secret-tool", "store", "--label=probe", *attrs], input=b"x", env=self.env({}), capture_output=True)
        self.last_error = stored.stderr.decode(errors="replace")
        subprocess.run(["secret-tool", "clear", *attrs], env=self.env({}), capture_output=True)
        return stored.returncode == 0

    def env(self, base: dict) -> dict:
        return dict(base, DBUS_SESSION_BUS_ADDRESS=self.address, HOME=str(self.home))

    def entries(self) -> str:
        """Every kflow entry in the keyring, with attributes and secrets (for the tests only)."""
        res = subprocess.run(["secret-tool", "search", "--all", "--unlock", "service", "kflow"],
                             env=self.env(dict(os.environ)), capture_output=True, text=True)
        return res.stdout + res.stderr

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def secret_service(tmp_path_factory):
    missing = [t for t in ("dbus-daemon", "gnome-keyring-daemon", "secret-tool") if not shutil.which(t)]
    if missing:
        pytest.skip(f"no Secret Service to test against (missing {', '.join(missing)}; apt-get install dbus gnome-keyring libsecret-tools)")
    s = SecretService(tmp_path_factory.mktemp("secret-service"))
    yield s
    s.stop()


@pytest.fixture
def sandbox(tmp_path, realm):
    """An environment in which every file kflow could write lies under `tmp_path`."""
    root = tmp_path / "sandbox"
    dirs = {name: root / name for name in ("home", "state", "config", "cache", "tmp", "xdg-config", "xdg-state", "xdg-cache", "xdg-data")}
    for d in dirs.values():
        d.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFLOW_", "DBUS_"))}
    env.update(
        HOME=str(dirs["home"]), TMPDIR=str(dirs["tmp"]),
        XDG_CONFIG_HOME=str(dirs["xdg-config"]), XDG_STATE_HOME=str(dirs["xdg-state"]),
        XDG_CACHE_HOME=str(dirs["xdg-cache"]), XDG_DATA_HOME=str(dirs["xdg-data"]),
        KFLOW_STATE_DIR=str(dirs["state"]), KFLOW_CONFIG_DIR=str(dirs["config"]), KFLOW_CACHE_DIR=str(dirs["cache"]),
        KFLOW_CA_FILE=str(realm.ca), KFLOW_API_SERVER=realm.api, PYTHONDONTWRITEBYTECODE="1",
    )
    return {"root": root, "env": env, "dirs": dirs}
