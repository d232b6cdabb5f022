"""Kubeflow Pipelines and the Model Registry from kflow's CLI and Python API, signed in with
`kflow login` (session in gnome-keyring), side by side with the official clients on the same
test cluster: what kflow uploads or registers the `kfp` and `model-registry` clients see and the
other way round, a run started with kflow is followed to SUCCEEDED, bad input is a kflow error
with an event id, and a deployment without the apps (or no sign-in) says so."""

import json
import uuid

import pytest
import yaml

from .auth_helpers import kflow, python
from .conftest import Realm
from .test_login import USER

kfp = pytest.importorskip("kfp")
model_registry = pytest.importorskip("model_registry")

from kfp import compiler, dsl  # noqa: E402

NS = "kubeflow-user-example-com"


# No `from __future__ import annotations` here: the KFP compiler reads the real annotations.
@dsl.component(base_image="python:3.11")
def add(a: int, b: int) -> int:
    return a + b


@dsl.pipeline(name="add-numbers")
def add_pipeline(a: int, b: int = 2):
    add(a=a, b=b)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "add.yaml"
    compiler.Compiler().compile(add_pipeline, str(path))
    return path


@pytest.fixture
def signed_in(realm, secret_service, sandbox, sentinel):
    """The environment of a user signed in with `kflow login`, and that session's token (what
    `kflow kubeconfig` shows) for the official clients."""
    env = secret_service.env(sandbox["env"])
    res = kflow(["login", "--url", realm.url, "--username", USER, "--password-stdin"], env, input=sentinel + "\n")
    assert res.returncode == 0, res.stderr
    token = yaml.safe_load(kflow(["kubeconfig"], env).stdout)["users"][0]["user"]["token"]
    yield env, token
    kflow(["logout"], env)


def kfp_client(realm, token):
    return kfp.Client(host=f"{realm.url}/pipeline", existing_token=token, ssl_ca_cert=str(realm.ca), namespace=NS)


def registry_client(realm, token):
    port = int(realm.url.rsplit(":", 1)[1])
    return model_registry.ModelRegistry(server_address=realm.url, port=port, author="sdk", is_secure=False,
                                        user_token=token)


def ok_json(res):
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_pipelines_uploaded_with_kflow_are_seen_by_kfp_and_the_other_way(realm, signed_in, package):
    env, token = signed_in
    client = kfp_client(realm, token)
    name = unique("kflow-up")
    uploaded = ok_json(kflow(["pipelines", "upload", str(package), "--name", name, "--description", "from kflow", "--json"], env))
    assert uploaded["pipeline"]["namespace"] == NS and uploaded["version"]["name"] == name
    seen = client.get_pipeline(client.get_pipeline_id(name))
    assert seen.pipeline_id == uploaded["pipeline"]["id"] and seen.description == "from kflow"
    again = kflow(["pipelines", "upload", str(package), "--name", name], env)
    assert again.returncode == 2 and "already has a pipeline" in again.stderr and "--version" in again.stderr
    assert ok_json(kflow(["pipelines", "upload", str(package), "--name", name, "--version", "v2", "--json"], env))["version"]["name"] == "v2"
    assert [v.display_name for v in client.list_pipeline_versions(seen.pipeline_id, sort_by="created_at desc").pipeline_versions] == ["v2", name]

    from_sdk = client.upload_pipeline(str(package), pipeline_name=unique("sdk-up"), namespace=NS)
    listed = ok_json(kflow(["pipelines", "list", "--limit", "200", "--json"], env))
    assert {uploaded["pipeline"]["id"], from_sdk.pipeline_id} <= {p["id"] for p in listed["items"]}
    table = kflow(["pipelines", "list", "--limit", "200"], env)
    assert table.returncode == 0 and from_sdk.display_name in table.stdout and "NAMESPACE" in table.stdout
    code = (
        "import json, kflow\n"
        f"page = kflow.pipelines.list(limit=1)\n"
        "rest = kflow.pipelines.list(limit=200, cursor=page.next)\n"
        f"print(json.dumps({{'first': page, 'next': page.next, 'rest': rest, 'versions': kflow.pipelines.versions({from_sdk.display_name!r})}}))\n"
    )
    res = python(code, env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["first"]) == 1 and out["next"]
    ids = [p["id"] for p in out["first"] + out["rest"]]
    assert from_sdk.pipeline_id in ids and len(ids) == len(set(ids))
    assert [v["name"] for v in out["versions"]] == [from_sdk.display_name]


def test_a_run_started_with_kflow_is_followed_to_succeeded(realm, signed_in, package):
    env, token = signed_in
    client = kfp_client(realm, token)
    name = unique("runs")
    ok_json(kflow(["pipelines", "upload", str(package), "--name", name, "--json"], env))
    followed = kflow(["pipelines", "run", name, "--param", "a=3", "--experiment", "kflow-tests", "--name", "cli-run"], env, timeout=60)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert 'run "cli-run": SUCCEEDED' in followed.stderr
    runs = ok_json(kflow(["pipelines", "runs", "--experiment", "kflow-tests", "--json"], env))["items"]
    assert [r["name"] for r in runs] == ["cli-run"] and runs[0]["state"] == "SUCCEEDED"
    sdk_view = client.get_run(runs[0]["id"])
    assert sdk_view.state == "SUCCEEDED" and sdk_view.runtime_config.parameters == {"a": 3}

    detached = kflow(["pipelines", "run", name, "--param", "a=1", "-d"], env)
    assert detached.returncode == 0, detached.stderr
    again = kflow(["pipelines", "follow", detached.stdout.strip(), "--json"], env, timeout=60)
    assert ok_json(again)["state"] == "SUCCEEDED"

    code = (
        "import json, kflow\n"
        f"run = kflow.pipelines.run({name!r}, parameters={{'a': 2, 'b': '5'}})\n"
        "first = run.state\n"
        "done = run.wait(timeout=60)\n"
        "print(json.dumps({'first': first, 'done': done, 'status': run.status()['state'], 'id': run.id}))\n"
    )
    res = python(code, env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["first"] in ("PENDING", "RUNNING") and out["done"]["state"] == "SUCCEEDED" and out["status"] == "SUCCEEDED"
    assert [h["state"] for h in out["done"]["history"]] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert client.get_run(out["id"]).runtime_config.parameters == {"a": 2, "b": 5}
    assert client.wait_for_run_completion(out["id"], timeout=10, sleep_duration=0.2).state == "SUCCEEDED"


def test_bad_run_input_is_a_kflow_error_with_an_event_id(realm, signed_in, package):
    env, _ = signed_in
    name = unique("bad")
    ok_json(kflow(["pipelines", "upload", str(package), "--name", name, "--json"], env))
    text = kflow(["pipelines", "run", name, "--param", "a=three"], env)
    assert text.returncode == 2 and "error[KF-" in text.stderr
    assert f"pipeline {name} declares a as NUMBER_INTEGER" in text.stderr
    assert "Traceback" not in text.stderr
    missing = kflow(["pipelines", "run", unique("nope")], env)
    assert missing.returncode == 2 and "kflow pipelines list" in missing.stderr
    code = (
        "import json, kflow\n"
        "try:\n"
        f"    kflow.pipelines.run({name!r}, parameters={{'a': [1]}})\n"
        "except kflow.ValidationError as e:\n"
        "    print(json.dumps({'problem': e.problem, 'fix': e.fix, 'event': e.event_id}))\n"
        "try:\n"
        "    kflow.pipelines.run(42)\n"
        "except kflow.ValidationError as e:\n"
        "    print(json.dumps({'problem': e.problem, 'fix': e.fix, 'event': e.event_id}))\n"
    )
    res = python(code, env)
    assert res.returncode == 0, res.stderr
    refused, typed = [json.loads(line) for line in res.stdout.splitlines()]
    assert "input parameter a requires type double or integer" in refused["problem"]
    assert refused["event"].startswith("KF-") and refused["fix"]
    assert "invalid pipeline=42" in typed["problem"] and typed["event"].startswith("KF-")
    not_yaml = package.parent / "not-a-pipeline.yaml"
    not_yaml.write_text("steps: [train]\n")
    bad_file = kflow(["pipelines", "upload", str(not_yaml)], env)
    assert bad_file.returncode == 2 and "is not a compiled Kubeflow pipeline" in bad_file.stderr


def test_models_registered_with_kflow_are_seen_by_the_registry_client_and_the_other_way(realm, signed_in):
    env, token = signed_in
    registry = registry_client(realm, token)
    model = unique("mnist")
    registered = ok_json(kflow(["models", "register", model, "--version", "v1", "--uri", "s3://models/mnist/1",
                                "--format", "onnx", "--format-version", "1", "--metadata", "accuracy=0.93",
                                "--metadata", "epochs=3", "--metadata", "framework=pytorch", "--json"], env))
    assert registered["model_created"] and registered["version"]["author"] == USER
    version = registry.get_model_version(model, "v1")
    assert version.custom_properties == {"accuracy": 0.93, "epochs": 3, "framework": "pytorch"}
    assert registry.get_model_artifact(model, "v1").uri == "s3://models/mnist/1"
    taken = kflow(["models", "register", model, "--version", "v1", "--uri", "s3://x", "--format", "onnx"], env)
    assert taken.returncode == 2 and "already has a model version" in taken.stderr

    registry.register_model(model, "s3://models/mnist/2", model_format_name="onnx", model_format_version="1",
                            version="v2", metadata={"accuracy": 0.95})
    versions = ok_json(kflow(["models", "versions", model, "--json"], env))["items"]
    assert [v["name"] for v in versions] == ["v1", "v2"] and versions[1]["metadata"] == {"accuracy": 0.95}
    artifacts = kflow(["models", "artifacts", model, "v2"], env)
    assert artifacts.returncode == 0 and "s3://models/mnist/2" in artifacts.stdout
    code = (
        "import json, kflow\n"
        f"made = kflow.models.register({model!r}, version='v3', uri='pvc://models/3', format='pytorch',\n"
        "                            metadata={'final': True, 'loss': 0.1})\n"
        f"print(json.dumps({{'made': made, 'models': [m['name'] for m in kflow.models.list(limit=500)],\n"
        f"                  'versions': [v['name'] for v in kflow.models.versions({model!r})]}}))\n"
    )
    res = python(code, env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert not out["made"]["model_created"] and model in out["models"] and out["versions"] == ["v1", "v2", "v3"]
    assert registry.get_model_version(model, "v3").custom_properties == {"final": True, "loss": 0.1}


def test_not_signed_in_and_not_installed(tmp_path, secret_service, sandbox, sentinel):
    env = secret_service.env(sandbox["env"])
    for command in (["pipelines", "list"], ["models", "list"]):
        res = kflow(command, env)
        assert res.returncode == 2 and "not signed in to Kubeflow" in res.stderr and "kflow login" in res.stderr
    (tmp_path / "bare").mkdir()
    bare = Realm(tmp_path / "bare", sentinel, extra_args=["--without", "pipelines,model-registry"])
    try:
        env = dict(env, KFLOW_CA_FILE=str(bare.ca), KFLOW_API_SERVER=bare.api)
        res = kflow(["login", "--url", bare.url, "--username", USER, "--password-stdin"], env, input=sentinel + "\n")
        assert res.returncode == 0, res.stderr
        kfp_res = kflow(["pipelines", "runs"], env)
        assert kfp_res.returncode == 1 and "error[KF-" in kfp_res.stderr
        assert "Kubeflow Pipelines is not installed in this deployment" in kfp_res.stderr and "administrator" in kfp_res.stderr
        mr_res = kflow(["models", "register", "m", "--version", "v1", "--uri", "s3://m", "--format", "onnx"], env)
        assert mr_res.returncode == 1 and "the Kubeflow Model Registry is not installed in this deployment" in mr_res.stderr
        code = (
            "import json, kflow\n"
            "try:\n"
            "    kflow.pipelines.list()\n"
            "except kflow.BackendError as e:\n"
            "    print(json.dumps({'problem': e.problem, 'fix': e.fix, 'event': e.event_id}))\n"
        )
        res = python(code, env)
        assert res.returncode == 0, res.stderr
        err = json.loads(res.stdout)
        assert err["problem"].startswith("Kubeflow Pipelines is not installed in this deployment")
        assert err["event"].startswith("KF-") and "install" in err["fix"]
        kflow(["logout"], env)
    finally:
        bare.stop()
