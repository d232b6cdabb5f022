"""The Keycloak-style realm, driven with `requests` the way a browser-less client does it:
login page, wrong password, OTP and update-password pages, code + PKCE, refresh, logout, and the
API server accepting the realm's tokens (its own namespaces only)."""

import base64
import hashlib
import html
import json
import re
import secrets
import time
import urllib.parse

import pytest
import yaml

requests = pytest.importorskip("requests")

from kflow_testsupport import TestCluster  # noqa: E402

REDIRECT = "http://127.0.0.1:9/callback"
REALM_CONFIG = {
    "realm": "kubeflow",
    "clients": ["kflow"],
    "accessTokenSeconds": 3,
    "refreshTokenSeconds": 60,
    "users": [
        {"username": "user@example.com", "email": "user@example.com", "password": "12341234",
         "namespaces": ["kubeflow-user-example-com"]},
        {"username": "otp-user", "password": "pw", "requiredAction": "otp", "otp": "424242",
         "namespaces": ["otp-ns"]},
        {"username": "new-user", "password": "first", "requiredAction": "update-password"},
    ],
}


NS = "kubeflow-user-example-com"
WEB_FIXTURE = {
    "pipelines": [{"pipeline_id": f"p{i}", "display_name": f"pipeline {i}", "namespace": NS} for i in range(3)]
                 + [{"pipeline_id": "shared", "display_name": "shared pipeline"}],
    "experiments": [{"experiment_id": "e1", "display_name": "exp", "namespace": NS},
                    {"experiment_id": "e2", "display_name": "other", "namespace": "someone-else"}],
    "runs": [{"run_id": "r1", "display_name": "run 1", "experiment_id": "e1", "namespace": NS, "state": "SUCCEEDED"}],
    "registeredModels": [{"id": "1", "name": "mnist", "state": "LIVE"}],
    "modelVersions": [{"id": "10", "name": "v1", "registeredModelId": "1"}, {"id": "11", "name": "v2", "registeredModelId": "1"}],
}


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    base = tmp_path_factory.mktemp("idp")
    cfg = base / "realm.yaml"
    cfg.write_text(yaml.safe_dump(REALM_CONFIG))
    web = base / "web.yaml"
    web.write_text(yaml.safe_dump(WEB_FIXTURE))
    cluster = TestCluster(base / "state", extra_args=["--idp-config", str(cfg), "--gateway-port", "0", "--web-fixture", str(web)])
    kc = yaml.safe_load(open(cluster.kubeconfig))
    server = kc["clusters"][0]["cluster"]["server"]
    ca = base / "ca.crt"
    ca.write_bytes(base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"]))
    gateway = (base / "state" / "gateway-url").read_text()
    yield {"server": server, "issuer": f"{server}/realms/kubeflow", "ca": str(ca), "cluster": cluster, "gateway": gateway}
    cluster.stop()


def browser(realm):
    """A cookie-keeping session trusting the cluster CA (trust_env off: a REQUESTS_CA_BUNDLE in
    the environment would otherwise override a session's `verify`)."""
    s = requests.Session()
    s.trust_env = False
    s.verify = realm["ca"]
    return s


def form_action(page, form_id):
    m = re.search(rf'<form id="{form_id}"[^>]*action="([^"]+)"', page)
    assert m, page
    return html.unescape(m.group(1))


def start_login(realm, session):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    r = session.get(f"{realm['issuer']}/protocol/openid-connect/auth", allow_redirects=False, params={
        "client_id": "kflow", "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
        "state": "st-1", "nonce": "n-1", "code_challenge": challenge, "code_challenge_method": "S256"})
    return r, verifier


def code_from(r):
    assert r.status_code == 302, r.text
    loc = urllib.parse.urlparse(r.headers["location"])
    assert loc.geturl().startswith(REDIRECT)
    q = dict(urllib.parse.parse_qsl(loc.query))
    assert q["state"] == "st-1"
    return q["code"]


def exchange(realm, code, verifier):
    return requests.post(f"{realm['issuer']}/protocol/openid-connect/token", verify=realm["ca"], data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": "kflow", "code_verifier": verifier})


def api_get(realm, path, token):
    return requests.get(realm["server"] + path, verify=realm["ca"], headers={"Authorization": f"Bearer {token}"})


def test_discovery_and_jwks(realm):
    d = requests.get(f"{realm['issuer']}/.well-known/openid-configuration", verify=realm["ca"]).json()
    assert d["issuer"] == realm["issuer"]
    assert "S256" in d["code_challenge_methods_supported"]
    keys = requests.get(d["jwks_uri"], verify=realm["ca"]).json()["keys"]
    assert keys[0]["kty"] == "EC" and keys[0]["crv"] == "P-256"


def test_login_wrong_password_then_code_pkce_refresh_and_api(realm):
    s = browser(realm)
    r, verifier = start_login(realm, s)
    assert r.status_code == 200 and 'id="kc-form-login"' in r.text
    assert "AUTH_SESSION_ID" in s.cookies and "KC_RESTART" in s.cookies
    action = form_action(r.text, "kc-form-login")
    for part in ("/login-actions/authenticate?", "session_code=", "execution=", "client_id=kflow", "tab_id="):
        assert part in action
    assert 'name="username"' in r.text and 'name="password"' in r.text

    bad = s.post(action, data={"username": "user@example.com", "password": "nope", "credentialId": ""}, allow_redirects=False)
    assert bad.status_code == 200
    assert 'id="kc-form-login"' in bad.text and 'id="input-error"' in bad.text
    assert "Invalid username or password." in bad.text

    ok = s.post(form_action(bad.text, "kc-form-login"), data={"username": "user@example.com", "password": "12341234"}, allow_redirects=False)
    code = code_from(ok)
    assert "KEYCLOAK_IDENTITY" in s.cookies

    wrong_verifier = exchange(realm, code, "x" * 50)
    assert wrong_verifier.status_code == 400 and wrong_verifier.json()["error"] == "invalid_grant"
    # the code was spent by the failed attempt, as Keycloak does: log in again silently
    r, verifier = start_login(realm, s)
    code = code_from(r)  # SSO cookie: straight back with a code
    tokens = exchange(realm, code, verifier).json()
    for k in ("access_token", "refresh_token", "id_token", "expires_in", "refresh_expires_in"):
        assert k in tokens
    claims = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
    assert claims["nonce"] == "n-1" and claims["aud"] == "kflow" and claims["iss"] == realm["issuer"]

    refreshed = requests.post(f"{realm['issuer']}/protocol/openid-connect/token", verify=realm["ca"], data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "kflow"})
    assert refreshed.status_code == 200 and refreshed.json()["access_token"]
    # A fresh access token for the API checks: the realm's tokens live only 3 s, and a loaded CI
    # machine can take that long between the exchange above and the calls below.
    access = refreshed.json()["access_token"]
    own = api_get(realm, "/api/v1/namespaces/kubeflow-user-example-com/pods", access)
    assert own.status_code == 200, own.text
    other = api_get(realm, "/api/v1/namespaces/default/pods", access)
    assert other.status_code == 403 and other.json()["reason"] == "Forbidden"
    assert 'User "user@example.com" cannot list resource "pods"' in other.json()["message"]

    exp = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))["exp"]
    time.sleep(max(0.0, exp + 1 - time.time()))
    assert api_get(realm, "/api/v1/namespaces/kubeflow-user-example-com/pods", access).status_code == 401

    s.get(f"{realm['issuer']}/protocol/openid-connect/logout")
    after = requests.post(f"{realm['issuer']}/protocol/openid-connect/token", verify=realm["ca"], data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "kflow"})
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


def test_otp_required_action(realm):
    s = browser(realm)
    r, verifier = start_login(realm, s)
    otp_page = s.post(form_action(r.text, "kc-form-login"), data={"username": "otp-user", "password": "pw"}, allow_redirects=False)
    assert otp_page.status_code == 200 and 'id="kc-otp-login-form"' in otp_page.text and 'name="otp"' in otp_page.text
    wrong = s.post(form_action(otp_page.text, "kc-otp-login-form"), data={"otp": "000000"}, allow_redirects=False)
    assert "Invalid authenticator code." in wrong.text
    ok = s.post(form_action(wrong.text, "kc-otp-login-form"), data={"otp": "424242"}, allow_redirects=False)
    assert exchange(realm, code_from(ok), verifier).status_code == 200


def test_update_password_required_action(realm):
    s = browser(realm)
    r, _ = start_login(realm, s)
    page = s.post(form_action(r.text, "kc-form-login"), data={"username": "new-user", "password": "first"}, allow_redirects=False)
    assert 'id="kc-passwd-update-form"' in page.text
    mismatch = s.post(form_action(page.text, "kc-passwd-update-form"), data={"password-new": "a", "password-confirm": "b"}, allow_redirects=False)
    assert "Passwords don&#39;t match." in mismatch.text or "Passwords don't match." in mismatch.text
    done = s.post(form_action(mismatch.text, "kc-passwd-update-form"), data={"password-new": "second", "password-confirm": "second"}, allow_redirects=False)
    code_from(done)


def test_unknown_client_and_cookie_checks(realm):
    r = requests.get(f"{realm['issuer']}/protocol/openid-connect/auth", verify=realm["ca"], allow_redirects=False,
                     params={"client_id": "nope", "redirect_uri": REDIRECT, "response_type": "code"})
    assert r.status_code == 400 and "Client not found." in r.text
    s = browser(realm)
    page, _ = start_login(realm, s)
    # the same form posted without the AUTH_SESSION_ID cookie
    r = requests.post(form_action(page.text, "kc-form-login"), verify=realm["ca"], data={"username": "user@example.com", "password": "12341234"}, allow_redirects=False)
    assert r.status_code == 400 and "Cookie not found" in r.text


def test_gateway_redirects_logs_in_and_serves_web_apis(realm):
    gw = realm["gateway"]
    s = browser(realm)
    api = s.get(f"{gw}/api/workgroup/env-info", allow_redirects=False)
    assert api.status_code == 401, "oauth2-proxy answers API routes with 401, not a redirect"
    page = s.get(f"{gw}/", allow_redirects=False)
    assert page.status_code == 302 and page.headers["location"].startswith("/oauth2/start?rd=")
    login = s.get(f"{gw}/oauth2/start", params={"rd": "/jupyter/api/namespaces/kubeflow-user-example-com/notebooks"})
    assert login.url.startswith(realm["issuer"]) and 'id="kc-form-login"' in login.text
    back = s.post(form_action(login.text, "kc-form-login"), data={"username": "user@example.com", "password": "12341234"}, allow_redirects=False)
    assert back.status_code == 302 and back.headers["location"].startswith(f"{gw}/oauth2/callback?")
    done = s.get(back.headers["location"], allow_redirects=False)
    assert done.status_code == 302 and done.headers["location"] == "/jupyter/api/namespaces/kubeflow-user-example-com/notebooks"
    assert any(c.name == "oauth2_proxy_kubeflow" for c in s.cookies)
    nbs = s.get(gw + done.headers["location"])
    assert nbs.status_code == 200 and nbs.json()["success"] is True
    env = s.get(f"{gw}/api/workgroup/env-info").json()
    assert env["user"] == "user@example.com"
    assert env["namespaces"][0]["namespace"] == "kubeflow-user-example-com"
    assert s.get(f"{gw}/jupyter/api/namespaces/default/notebooks").status_code == 403
    s.get(f"{gw}/oauth2/sign_out", allow_redirects=False)
    assert s.get(f"{gw}/api/workgroup/env-info", allow_redirects=False).status_code == 401


def test_web_apis_behind_gateway_with_bearer(realm):
    s = browser(realm)
    r, verifier = start_login(realm, s)
    ok = s.post(form_action(r.text, "kc-form-login"), data={"username": "user@example.com", "password": "12341234"}, allow_redirects=False)
    token = exchange(realm, code_from(ok), verifier).json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    gw = realm["gateway"]

    def get(path, **params):
        return requests.get(gw + path, params=params, headers=h, verify=realm["ca"])

    first = get("/pipeline/apis/v2beta1/pipelines", namespace=NS, page_size=2).json()
    assert first["total_size"] == 4 and len(first["pipelines"]) == 2 and first["next_page_token"]
    rest = get("/pipeline/apis/v2beta1/pipelines", namespace=NS, page_size=2, page_token=first["next_page_token"]).json()
    assert [p["pipeline_id"] for p in rest["pipelines"]] == ["p2", "shared"] and "next_page_token" not in rest  # proto JSON leaves out empty fields
    assert [e["experiment_id"] for e in get("/pipeline/apis/v2beta1/experiments").json()["experiments"]] == ["e1"]
    assert get("/pipeline/apis/v2beta1/runs", namespace=NS, experiment_id="e1").json()["runs"][0]["state"] == "SUCCEEDED"
    assert get("/pipeline/apis/v2beta1/runs", namespace="someone-else").status_code == 403
    assert get("/pipeline/apis/v2beta1/runs/nope").status_code == 404
    models = get("/api/model_registry/v1alpha3/registered_models").json()
    assert models["items"][0]["name"] == "mnist"
    versions = get("/api/model_registry/v1alpha3/registered_models/1/versions").json()
    assert [v["name"] for v in versions["items"]] == ["v1", "v2"]
    assert get(f"/volumes/api/namespaces/{NS}/pvcs").json()["success"] is True
    assert get("/volumes/api/namespaces/default/pvcs").status_code == 403
