"""The Dex front in front of the realm (Kubeflow's wiring): connector choice page, Dex's own
password form, the OIDC connector through the realm's login, approval, Dex tokens on the API,
and the gateway logging in through Dex."""

import base64
import hashlib
import re
import secrets
import urllib.parse

import pytest
import yaml

requests = pytest.importorskip("requests")

from kflow_testsupport import TestCluster  # noqa: E402
from test_identity import REDIRECT, browser, form_action  # noqa: E402

CONFIG = {
    "realm": "kubeflow",
    "clients": ["kflow"],
    "users": [{"username": "user@example.com", "email": "user@example.com", "password": "12341234",
               "namespaces": ["kubeflow-user-example-com"]}],
    "dex": {"connectors": ["keycloak", "local"], "approval": True},
}


@pytest.fixture(scope="module")
def dex(tmp_path_factory):
    base = tmp_path_factory.mktemp("dex")
    cfg = base / "realm.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    cluster = TestCluster(base / "state", extra_args=["--idp-config", str(cfg), "--gateway-port", "0"])
    kc = yaml.safe_load(open(cluster.kubeconfig))
    server = kc["clusters"][0]["cluster"]["server"]
    ca = base / "ca.crt"
    ca.write_bytes(base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"]))
    yield {"server": server, "dex": f"{server}/dex", "issuer": f"{server}/realms/kubeflow", "ca": str(ca),
           "gateway": (base / "state" / "gateway-url").read_text()}
    cluster.stop()


def links(page):
    return {m.group(2): m.group(1) for m in re.finditer(r'<a href="([^"]+)"[^>]*>.*?<span class="dex-btn-text">Log in with ([^<]+)</span>', page, re.S)}


def test_local_connector_approval_and_token(dex):
    s = browser(dex)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    choice = s.get(f"{dex['dex']}/auth", params={"client_id": "kflow", "redirect_uri": REDIRECT, "response_type": "code",
                                                 "scope": "openid email", "state": "s1", "code_challenge": challenge,
                                                 "code_challenge_method": "S256"})
    found = links(choice.text)
    assert set(found) == {"Keycloak", "Email"}, choice.text
    form = s.get(dex["server"] + found["Email"])
    assert 'name="login"' in form.text and 'name="password"' in form.text
    action = dex["server"] + re.search(r'<form method="post" action="([^"]+)"', form.text).group(1).replace("&amp;", "&")
    bad = s.post(action, data={"login": "user@example.com", "password": "wrong"}, allow_redirects=False)
    assert bad.status_code == 200 and 'id="login-error"' in bad.text
    ok = s.post(action, data={"login": "user@example.com", "password": "12341234"}, allow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"].startswith("/dex/approval?req=")
    approval = s.get(dex["server"] + ok.headers["location"])
    req = re.search(r'name="req" value="([^"]+)"', approval.text).group(1)
    granted = s.post(dex["server"] + ok.headers["location"], data={"req": req, "approval": "approve"}, allow_redirects=False)
    assert granted.status_code == 303
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(granted.headers["location"]).query))
    assert q["state"] == "s1"
    tokens = requests.post(f"{dex['dex']}/token", verify=dex["ca"], data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT, "client_id": "kflow",
        "code_verifier": verifier}).json()
    claims = yaml.safe_load(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "==").decode())
    assert claims["iss"] == dex["dex"]
    r = requests.get(f"{dex['server']}/api/v1/namespaces/kubeflow-user-example-com/pods", verify=dex["ca"],
                     headers={"Authorization": "Bearer " + tokens["id_token"]})
    assert r.status_code == 200, r.text


def test_gateway_through_dex_and_keycloak(dex):
    s = browser(dex)
    choice = s.get(f"{dex['gateway']}/oauth2/start", params={"rd": "/api/workgroup/env-info"})
    assert choice.url.startswith(dex["dex"] + "/auth"), choice.url
    login = s.get(dex["server"] + links(choice.text)["Keycloak"])
    assert login.url.startswith(dex["issuer"]) and 'id="kc-form-login"' in login.text
    back = s.post(form_action(login.text, "kc-form-login"), data={"username": "user@example.com", "password": "12341234"})
    assert "Grant Access" in back.text, back.text
    req = re.search(r'name="req" value="([^"]+)"', back.text).group(1)
    env = s.post(back.url, data={"req": req, "approval": "approve"})
    assert env.status_code == 200 and env.json()["user"] == "user@example.com", env.text
