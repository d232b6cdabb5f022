"""Kubeflow Pipelines and the Model Registry behind the test cluster's gateway, driven by the
official clients unchanged: `kfp.Client` (upload, versions, experiments, runs followed to
SUCCEEDED, parameter checks at create, namespaces) and `model_registry.ModelRegistry`
(register, find, paging, typed custom properties, updates); a deployment started with
`--without pipelines,model-registry` answers 404 where they would be."""

import base64
import html
import re
import time
import uuid

import pytest
import yaml

kfp = pytest.importorskip("kfp")
model_registry = pytest.importorskip("model_registry")
requests = pytest.importorskip("requests")

import kfp_server_api  # noqa: E402
from kfp import compiler, dsl  # noqa: E402
from model_registry.exceptions import StoreError  # noqa: E402

from kflow_testsupport import TestCluster  # noqa: E402

NS = "kubeflow-user-example-com"
USERS = [
    {"username": "user@example.com", "password": "pw-user", "namespaces": [NS]},
    {"username": "other@example.com", "password": "pw-other", "namespaces": ["other-ns"]},
]


@dsl.component(base_image="python:3.11")
def add(a: int, b: int) -> int:
    return a + b


@dsl.pipeline(name="add-numbers", description="adds two numbers")
def add_pipeline(a: int, b: int = 2, label: str = "sum"):
    add(a=a, b=b)


class Deployment:
    """A test cluster with a realm and the gateway; `gateway` is the Kubeflow URL."""

    def __init__(self, base, extra=()):
        cfg = base / "realm.yaml"
        cfg.write_text(yaml.safe_dump({"realm": "kubeflow", "clients": ["kflow"], "directAccessGrants": True, "users": USERS}))
        self.cluster = TestCluster(base / "state", ["--idp-config", str(cfg), "--gateway-port", "0", *extra])
        kc = yaml.safe_load(open(self.cluster.kubeconfig))
        server = kc["clusters"][0]["cluster"]["server"]
        self.issuer = f"{server}/realms/kubeflow"
        self.ca = str(base / "ca.crt")
        (base / "ca.crt").write_bytes(base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"]))
        gateway = base / "state" / "gateway-url"
        deadline = time.monotonic() + 30
        while not gateway.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.gateway = gateway.read_text().strip()

    def token(self, user=USERS[0]):
        r = requests.post(f"{self.issuer}/protocol/openid-connect/token", verify=self.ca, data={
            "grant_type": "password", "client_id": "kflow", "username": user["username"], "password": user["password"],
            "scope": "openid"})
        r.raise_for_status()
        return r.json()["access_token"]

    def cookie(self, user=USERS[0]):
        """The gateway's session cookie after a browser-style sign-in (oauth2-proxy's flow)."""
        s = requests.Session()
        s.trust_env = False
        s.verify = self.ca
        login = s.get(f"{self.gateway}/oauth2/start", params={"rd": "/"})
        action = html.unescape(re.search(r'<form id="kc-form-login"[^>]*action="([^"]+)"', login.text).group(1))
        back = s.post(action, data={"username": user["username"], "password": user["password"]}, allow_redirects=False)
        s.get(back.headers["location"], allow_redirects=False)
        return next(c.value for c in s.cookies if c.name == "oauth2_proxy_kubeflow")

    def kfp(self, user=USERS[0], namespace=NS):
        return kfp.Client(host=f"{self.gateway}/pipeline", existing_token=self.token(user), ssl_ca_cert=self.ca,
                          namespace=namespace)

    def registry(self, user=USERS[0]):
        port = int(self.gateway.rsplit(":", 1)[1])
        return model_registry.ModelRegistry(server_address=self.gateway, port=port, author=user["username"],
                                            is_secure=False, user_token=self.token(user))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    d = Deployment(tmp_path_factory.mktemp("apps"))
    yield d
    d.cluster.stop()


@pytest.fixture(autouse=True)
def kfp_home(tmp_path, monkeypatch):
    """The kfp client keeps a context file under ~/.config/kfp: not the user's."""
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "add.yaml"
    compiler.Compiler().compile(add_pipeline, str(path))
    return str(path)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_upload_versions_and_a_run_followed_to_success(deployment, package):
    client = deployment.kfp()
    name = unique("add")
    pipeline = client.upload_pipeline(package, pipeline_name=name, description="first", namespace=NS)
    assert pipeline.display_name == name and pipeline.namespace == NS
    assert client.get_pipeline_id(name) == pipeline.pipeline_id
    listed = client.list_pipelines(namespace=NS, page_size=200)
    assert pipeline.pipeline_id in [p.pipeline_id for p in listed.pipelines]
    second = client.upload_pipeline_version(package, "v2", pipeline_id=pipeline.pipeline_id, description="second")
    versions = client.list_pipeline_versions(pipeline.pipeline_id, sort_by="created_at desc").pipeline_versions
    assert [v.display_name for v in versions] == ["v2", name]
    fetched = client.get_pipeline_version(pipeline.pipeline_id, second.pipeline_version_id)
    assert fetched.pipeline_spec["pipelineInfo"]["name"] == "add-numbers"
    assert "a" in fetched.pipeline_spec["root"]["inputDefinitions"]["parameters"]
    with pytest.raises(kfp_server_api.ApiException) as taken:
        client.upload_pipeline(package, pipeline_name=name, namespace=NS)
    assert taken.value.status == 409

    experiment = client.create_experiment(unique("exp"), namespace=NS)
    assert client.create_experiment(experiment.display_name, namespace=NS).experiment_id == experiment.experiment_id
    run = client.run_pipeline(experiment.experiment_id, "adds", pipeline_id=pipeline.pipeline_id,
                              version_id=second.pipeline_version_id, params={"a": 3, "b": 4})
    assert run.state in ("PENDING", "RUNNING")
    done = client.wait_for_run_completion(run.run_id, timeout=30, sleep_duration=0.2)
    assert done.state == "SUCCEEDED"
    assert [h.state for h in done.state_history] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert done.finished_at >= done.created_at
    assert done.runtime_config.parameters == {"a": 3, "b": 4}
    assert done.pipeline_version_reference.pipeline_version_id == second.pipeline_version_id
    runs = client.list_runs(experiment_id=experiment.experiment_id).runs
    assert [r.run_id for r in runs] == [run.run_id]


def test_a_run_from_a_package_goes_to_the_default_experiment(deployment, package):
    client = deployment.kfp()
    result = client.create_run_from_pipeline_package(package, arguments={"a": 1}, namespace=NS)
    run = client.wait_for_run_completion(result.run_id, timeout=30, sleep_duration=0.2)
    assert run.state == "SUCCEEDED" and run.pipeline_spec["pipelineInfo"]["name"] == "add-numbers"
    default = client.get_experiment(experiment_name="Default", namespace=NS)
    assert run.experiment_id == default.experiment_id


@pytest.mark.parametrize("params, message", [
    ({"a": "three"}, "input parameter a requires type double or integer"),
    ({"a": 1, "label": 5}, "input parameter label requires type string"),
    ({"b": 1}, "parameter a is not optional"),
    ({"a": 1, "c": 1}, "parameter(s) provided are not required by pipeline: c"),
])
def test_parameters_are_checked_at_create(deployment, package, params, message):
    client = deployment.kfp()
    experiment = client.create_experiment("Default", namespace=NS)
    with pytest.raises(kfp_server_api.ApiException) as refused:
        client.run_pipeline(experiment.experiment_id, "bad", pipeline_package_path=package, params=params)
    assert refused.value.status == 400 and message in refused.value.body


def test_namespaces_are_the_users_profiles(deployment, package):
    mine = deployment.kfp()
    pipeline = mine.upload_pipeline(package, pipeline_name=unique("private"), namespace=NS)
    other = deployment.kfp(USERS[1], namespace="other-ns")
    with pytest.raises(kfp_server_api.ApiException) as denied:
        other.get_pipeline(pipeline.pipeline_id)
    assert denied.value.status == 403
    with pytest.raises(kfp_server_api.ApiException) as denied:
        other.list_experiments(namespace=NS)
    assert denied.value.status == 403
    shared = mine.upload_pipeline(package, pipeline_name=unique("shared"))
    assert other.get_pipeline(shared.pipeline_id).display_name == shared.display_name
    assert other.list_pipelines(namespace="other-ns").total_size >= 1


def test_the_gateway_cookie_works_as_the_token_does(deployment, package):
    cookie = deployment.cookie()
    client = kfp.Client(host=f"{deployment.gateway}/pipeline", cookies=f"oauth2_proxy_kubeflow={cookie}",
                        ssl_ca_cert=deployment.ca, namespace=NS)
    pipeline = client.upload_pipeline(package, pipeline_name=unique("cookie"), namespace=NS)
    assert deployment.kfp().get_pipeline(pipeline.pipeline_id).display_name == pipeline.display_name
    assert client.get_kfp_healthz().multi_user is True


def test_paging_and_filters(deployment, package):
    client = deployment.kfp()
    prefix = unique("page")
    for i in range(3):
        client.upload_pipeline(package, pipeline_name=f"{prefix}-{i}", namespace=NS)
    substring = '{"predicates": [{"operation": "IS_SUBSTRING", "key": "display_name", "string_value": "%s"}]}' % prefix
    first = client.list_pipelines(namespace=NS, page_size=2, filter=substring)
    assert first.total_size == 3 and len(first.pipelines) == 2 and first.next_page_token
    rest = client.list_pipelines(namespace=NS, page_size=2, filter=substring, page_token=first.next_page_token)
    assert [p.display_name for p in rest.pipelines] == [f"{prefix}-2"] and not rest.next_page_token


def test_register_and_find_models(deployment):
    registry = deployment.registry()
    name = unique("mnist")
    metadata = {"accuracy": 0.93, "epochs": 3, "framework": "pytorch", "final": True}
    model = registry.register_model(name, "s3://models/mnist/1", model_format_name="onnx", model_format_version="1",
                                    version="v1", version_description="first", metadata=metadata)
    assert registry.get_registered_model(name).id == model.id
    version = registry.get_model_version(name, "v1")
    assert version.custom_properties == metadata and version.author == USERS[0]["username"]
    artifact = registry.get_model_artifact(name, "v1")
    assert artifact.uri == "s3://models/mnist/1" and artifact.model_format_name == "onnx"
    with pytest.raises(StoreError, match="already exists"):
        registry.register_model(name, "s3://x", model_format_name="onnx", model_format_version="1", version="v1")
    registry.register_model(name, "s3://models/mnist/2", model_format_name="onnx", model_format_version="1", version="v2")
    assert [v.name for v in registry.get_model_versions(name)] == ["v1", "v2"]
    version.description = "updated"
    assert registry.update(version).description == "updated"
    assert registry.get_model_version(name, "v1").custom_properties == metadata
    assert registry.get_registered_model(unique("missing")) is None


def test_registry_paging(deployment):
    registry = deployment.registry()
    names = {unique("paged") for _ in range(3)}
    for n in names:
        registry.register_model(n, f"s3://{n}", model_format_name="onnx", model_format_version="1", version="v1")
    seen = [m.name for m in registry.get_registered_models().page_size(1)]
    assert names <= set(seen) and len(seen) == len(set(seen))


def test_registry_refuses_untyped_properties(deployment):
    token = deployment.token()
    url = f"{deployment.gateway}/api/model_registry/v1/registered_models"
    bad = requests.post(url, verify=deployment.ca, headers={"Authorization": f"Bearer {token}"},
                        json={"name": unique("bad"), "customProperties": {"n": {"int_value": 3, "metadataType": "MetadataIntValue"}}})
    assert bad.status_code == 400 and bad.json()["code"] == "Bad Request"
    old_api = requests.get(url.replace("/v1/", "/v1alpha3/"), verify=deployment.ca, headers={"Authorization": f"Bearer {token}"})
    assert old_api.status_code == 200 and "items" in old_api.json()


def test_a_deployment_without_them_answers_404(tmp_path):
    d = Deployment(tmp_path, ["--without", "pipelines,model-registry"])
    try:
        h = {"Authorization": f"Bearer {d.token()}"}
        for path in ("/pipeline/apis/v2beta1/healthz", "/api/model_registry/v1/registered_models",
                     "/api/model_registry/v1alpha3/registered_models"):
            assert requests.get(d.gateway + path, headers=h, verify=d.ca).status_code == 404, path
        assert requests.get(f"{d.gateway}/api/workgroup/env-info", headers=h, verify=d.ca).status_code == 200
    finally:
        d.cluster.stop()
