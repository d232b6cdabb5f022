"""Sign-in through `kflow serve` as the VS Code extension does it: the password once over the
pipe, the session kept by the editor (`secrets/*` requests answered from an in-memory stand-in
for SecretStorage), a second window signed in from it, Sign Out emptying it — and the sentinel
password in no file, no process's arguments, no secret the editor was given."""

from __future__ import annotations

import pytest

from serve_client import RpcError, ServeClient

from .auth_helpers import files_containing
from .conftest import Realm
from .test_login import USER, ArgsWatcher

NAMESPACE = "kubeflow-user-example-com"


def init(c: ServeClient, realm) -> dict:
    return c.request("initialize", {"settings": {"url": realm.url, "defaultNamespace": NAMESPACE},
                                    "secretStore": "client", "clientName": "pytest"})


def test_the_editor_keeps_the_session_and_never_the_password(realm, sandbox, sentinel):
    env = dict(sandbox["env"])
    env.pop("KUBECONFIG", None)
    secrets: dict = {}
    with ArgsWatcher() as ps:
        c = ServeClient(env=env, secrets=secrets)
        first = init(c, realm)
        assert first["secretStore"] == "editor" and first["identity"]["signed_in"] is False
        with pytest.raises(RpcError) as e:
            c.request("list", {"what": "jobs"})
        assert e.value.code == 1009 and e.value.data["kind"] == "not-signed-in" and e.value.data["fix"]
        with pytest.raises(RpcError) as e:
            c.request("login", {"username": USER, "password": sentinel + "-wrong"})
        assert e.value.data["kind"] == "validation" and "Invalid username or password." in e.value.data["problem"]
        assert sentinel not in str(e.value.data)
        with pytest.raises(RpcError) as e:
            c.request("login", {"username": "otp-user", "password": "pw-otp"})
        assert "one-time code" in e.value.data["problem"]
        who = c.request("login", {"username": USER, "password": sentinel})
        assert who["signed_in"] and who["username"] == USER and who["store"] == "editor"
        assert "pytest" in who["store_description"]
        c.next_notification("session/state", where=lambda p: p["state"] == "signed-in")
        assert secrets, "the session went to the editor's storage"
        assert all(sentinel not in v for v in secrets.values())
        assert sorted(secrets) == [f"session:{USER}@{realm.url}"]
        # The namespace through the session, no kubeconfig anywhere.
        assert c.request("list", {"what": "jobs"})["items"] == []
        assert c.request("doctor")["connection"]["via"] == "session"
        assert c.close() == 0
        # A second window signs in from what the editor kept.
        c2 = ServeClient(env=env, secrets=secrets)
        again = init(c2, realm)
        assert again["identity"]["signed_in"] and again["identity"]["username"] == USER
        assert ("secrets/get", next(iter(secrets))) in c2.secret_calls
        assert c2.request("list", {"what": "pvcs"})["items"] == []
        out = c2.request("logout")
        assert out["signed_in"] and out["username"] == USER
        gone = c2.next_notification("session/state", where=lambda p: p["state"] == "signed-out")
        assert gone["identity"]["signed_in"] is False
        assert secrets == {}, "Sign Out empties the editor's storage"
        assert c2.request("whoami")["signed_in"] is False
        c2.close()
    assert files_containing(sandbox["root"], [sentinel]) == []
    assert not [s for s in ps.samples if sentinel in s]


def test_renewals_and_the_end_of_a_session_are_pushed(tmp_path, sandbox, sentinel):
    (tmp_path / "short").mkdir()
    short = Realm(tmp_path / "short", sentinel, access_seconds=3)
    try:
        env = dict(sandbox["env"], KFLOW_CA_FILE=str(short.ca), KFLOW_API_SERVER=short.api)
        env.pop("KUBECONFIG", None)
        c = ServeClient(env=env)
        init(c, short)
        c.request("login", {"username": USER, "password": sentinel})
        refreshed = c.next_notification("session/state", timeout=30, where=lambda p: p["state"] == "refreshed")
        assert refreshed["identity"]["signed_in"] and refreshed["identity"]["expires_in_seconds"] > 0
        # The realm goes away: renewals fail, the token runs out, and the editor is told once.
        short.stop()
        expired = c.next_notification("session/state", timeout=60, where=lambda p: p["state"] == "expired")
        assert expired["identity"]["username"] == USER
        c.close()
    finally:
        short.stop()
