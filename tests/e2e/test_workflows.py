"""TorchServe's workflow APIs against the real CLI: ``/workflows`` (register a ``.war``, list, describe, unregister)
and ``/wfpredict``, with sequential and parallel DAGs of tiny models and functions made here.

What TorchServe's own ``test/postman/workflow_api_test_collection.json`` (with ``workflow_data.json``) and
``workflow_inference_collection.json`` check, with local archives instead of downloads: register (200), list,
describe, register again (409), unregister, an archive that is not there (404), describe and unregister of an unknown
workflow (404), a malformed url (404), a workflow whose model cannot load (500), and inference through the DAG.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from tests.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

TAG_HANDLER = '''
def handle(data, context):
    """Appends ">" and its model's name to the text it is given; fails on the text "fail"."""
    if data is None:
        return None
    out = []
    for row in data:
        value = row.get("data") or row.get("body")
        text = value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
        if text.startswith("fail"):
            raise ValueError("asked to fail")
        out.append(text + ">" + context.model_name)
    return out
'''

BROKEN_HANDLER = """
def handle(data, context):
    raise RuntimeError("this model never loads")
"""

WORKFLOW_HANDLER = '''
import json


def pre(data, context):
    """The start node: the request's body (or form field "data") as it came."""
    if data is None:
        return None
    return [row.get("data") or row.get("body") for row in data]


def join(data, context):
    """Fan-in: one input per parent, named after the parent node."""
    if data is None:
        return None
    row = data[0]
    return [{name: bytes(value).decode() for name, value in sorted(row.items())}]


def shout(data, context):
    if data is None:
        return None
    return [{"shout": bytes(row["body"]).decode().upper()} for row in data]


def whisper(data, context):
    if data is None:
        return None
    return [{"whisper": bytes(row["body"]).decode().lower()} for row in data]
'''

SEQUENTIAL = """
models:
  min-workers: 1
  max-workers: 1
  batch-size: 2
  max-batch-delay: 20
  retry-attempts: 0
  a:
    url: a.mar
  b:
    url: b.mar
    batch-size: 1
dag:
  pre: [a]
  a: [b]
"""

PARALLEL = """
models:
  a:
    url: a.mar
  b:
    url: b.mar
dag:
  pre: [a, b]
  a: [join]
  b: [join]
"""

TWO_LEAVES = """
models: {}
dag:
  pre: [shout, whisper]
"""


def _mar(path: Path, name: str, handler_source: str) -> None:
    manifest = {"runtime": "python", "model": {"modelName": name, "handler": "tag.py", "modelVersion": "1.0"}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        zf.writestr("tag.py", handler_source)


def _war(path: Path, name: str | None, spec: str, handler: str = WORKFLOW_HANDLER, **manifest_extra: object) -> Path:
    """A .war as torch-workflow-archiver lays it out (``WAR-INF/MANIFEST.json``, the spec and the handler)."""
    workflow = {"specFile": "spec.yaml", "handler": "wf_handler.py"}
    if name is not None:
        workflow["workflowName"] = name
    manifest = {"createdOn": "01/01/2025 00:00:00", "workflow": workflow, "archiverVersion": "0.2.15"}
    manifest.update(manifest_extra)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("WAR-INF/MANIFEST.json", json.dumps(manifest))
        zf.writestr("spec.yaml", spec)
        zf.writestr("wf_handler.py", handler)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("workflows")
    store, wf_store = tmp / "model_store", tmp / "wf_store"
    store.mkdir()
    wf_store.mkdir()
    _mar(store / "a.mar", "a", TAG_HANDLER)
    _mar(store / "b.mar", "b", TAG_HANDLER)
    _mar(store / "broken.mar", "broken", BROKEN_HANDLER)
    _war(wf_store / "seq.war", "seq", SEQUENTIAL)
    _war(wf_store / "par.war", "par", PARALLEL)
    _war(wf_store / "leaves.war", "leaves", TWO_LEAVES)
    _war(wf_store / "twostarts.war", "twostarts", "models: {}\ndag:\n  x: [z]\n  y: [z]\n")
    _war(wf_store / "cycle.war", "cycle", "models: {}\ndag:\n  s: [x]\n  x: [y]\n  y: [x]\n")
    _war(wf_store / "selfloop.war", "selfloop", "models: {}\ndag:\n  s: [s]\n")
    _war(wf_store / "missing.war", "missing", "models:\n  m:\n    url: nowhere.mar\ndag:\n  pre: [m]\n")
    broken = "models:\n  m:\n    url: broken.mar\n  ok:\n    url: a.mar\ndag:\n  m: [ok]\n"
    _war(wf_store / "broken.war", "broken", broken)
    _war(wf_store / "noname.war", None, SEQUENTIAL)
    _war(wf_store / "badyaml.war", "badyaml", "models: [unclosed\n")
    (wf_store / "notazip.war").write_bytes(b"this is not a zip file")
    running = start_server(tmp, {}, properties={"load_models": ""}, cli=["--workflow-store", str(wf_store)])
    yield running
    assert running.stop() == 0


def _register(server: RunningServer, query: str) -> requests.Response:
    return requests.post(f"{server.management}/workflows?{query}", timeout=120)


def _error(response: requests.Response, status: int, kind: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"code": status, "type": kind, "message": message}


def test_a_sequential_workflow_registers_its_models_and_answers_through_its_dag(server: RunningServer) -> None:
    response = _register(server, "url=seq.war")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Workflow seq has been registered and scaled successfully."}
    answer = requests.post(f"{server.inference}/wfpredict/seq", data=b"hello", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"  # TorchServe's, whatever the leaf answered
    assert answer.content == b"hello>seq__a>seq__b"
    assert "x-request-id" in answer.headers
    # a form field "data" reaches the start node as TorchServe's handlers read it
    form = requests.post(f"{server.inference}/wfpredict/seq", files={"data": (None, "form")}, timeout=30)
    assert form.content == b"form>seq__a>seq__b"
    # any method, and a further path is ignored, as in TorchServe
    assert requests.put(f"{server.inference}/wfpredict/seq/x/y", data=b"put", timeout=30).content.startswith(b"put>")


def test_the_models_of_a_workflow_are_models_named_workflow__node(server: RunningServer) -> None:
    _register(server, "url=seq.war")
    names = [m["modelName"] for m in requests.get(f"{server.management}/models", timeout=10).json()["models"]]
    assert {"seq__a", "seq__b"} <= set(names)
    assert "seq__pre" not in names  # a function node has no url: TorchServe leaves it out of the list
    a, b = server.describe("seq__a")[0], server.describe("seq__b")[0]
    settings = (a["modelUrl"], a["batchSize"], a["maxBatchDelay"], a["minWorkers"], a["maxWorkers"])
    assert settings == ("a.mar", 2, 20, 1, 1)
    assert b["batchSize"] == 1  # a model's own setting wins over the workflow's
    pre = server.describe("seq__pre")[0]
    assert pre["modelVersion"] == "1.0" and pre["batchSize"] == 1 and pre["workers"][0]["status"] == "READY"
    # and each answers on its own
    assert requests.post(f"{server.inference}/predictions/seq__a", data=b"x", timeout=30).text == "x>seq__a"


def test_a_parallel_dag_fans_out_and_the_join_gets_one_input_per_parent(server: RunningServer) -> None:
    assert _register(server, "url=par.war").status_code == 200
    answer = requests.post(f"{server.inference}/wfpredict/par", data=b"hi", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"a": "hi>par__a", "b": "hi>par__b"}


def test_several_leaves_answer_one_json_object_by_node_name(server: RunningServer) -> None:
    assert _register(server, "url=leaves.war").status_code == 200
    answer = requests.post(f"{server.inference}/wfpredict/leaves", data=b"MiXed", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"shout": {"shout": "MIXED"}, "whisper": {"whisper": "mixed"}}
    assert answer.headers["Content-Type"] == "application/json"


def test_describe_and_list(server: RunningServer) -> None:
    _register(server, "url=seq.war")
    _register(server, "url=par.war")
    described = requests.get(f"{server.management}/workflows/seq", timeout=10).json()
    assert described == [
        {
            "workflowName": "seq",
            "workflowUrl": "seq.war",
            "minWorkers": 1,
            "maxWorkers": 1,
            "batchSize": 2,
            "maxBatchDelay": 20,
            "workflowDag": "{pre=[a], a=[b]}",
        }
    ]
    listed = requests.get(f"{server.management}/workflows", timeout=10).json()
    assert {"workflowName": "seq", "workflowUrl": "seq.war"} in listed["workflows"]
    page = requests.get(f"{server.management}/workflows?limit=1", timeout=10).json()
    assert page["nextPageToken"] == "1" and len(page["workflows"]) == 1
    names = [w["workflowName"] for w in listed["workflows"]]
    assert names == sorted(names)


def test_registering_a_workflow_again_is_a_conflict(server: RunningServer) -> None:
    _register(server, "url=seq.war")
    _error(_register(server, "url=seq.war"), 409, "ConflictStatusException", "Workflow seq is already registered.")


def test_unregister_removes_the_workflow_and_its_models(server: RunningServer) -> None:
    assert _register(server, "url=seq.war&workflow_name=gone").status_code == 200
    assert server.describe("gone__a")[0]["modelName"] == "gone__a"
    response = requests.delete(f"{server.management}/workflows/gone", timeout=60)
    assert response.status_code == 200
    assert response.json() == {"status": 'Workflow "gone" unregistered'}
    models = requests.get(f"{server.management}/models", timeout=10).json()["models"]
    assert not [m for m in models if m["modelName"].startswith("gone__")]
    assert requests.get(f"{server.management}/models/gone__pre", timeout=10).status_code == 404
    _error(
        requests.post(f"{server.inference}/wfpredict/gone", data=b"x", timeout=10),
        404,
        "WorkflowNotFoundException",
        "Workflow not found: gone",
    )


def test_a_json_body_registers_too(server: RunningServer) -> None:
    body = {"url": "seq.war", "workflow_name": "viajson", "response_timeout": 30}
    response = requests.post(f"{server.management}/workflows", json=body, timeout=120)
    assert response.json() == {"status": "Workflow viajson has been registered and scaled successfully."}
    assert server.describe("viajson__a")[0]["responseTimeout"] == 30


def test_unknown_workflows_answer_404(server: RunningServer) -> None:
    for response in (
        requests.get(f"{server.management}/workflows/does_not_exist", timeout=10),
        requests.delete(f"{server.management}/workflows/does_not_exist", timeout=10),
        requests.post(f"{server.inference}/wfpredict/does_not_exist", data=b"x", timeout=10),
    ):
        _error(response, 404, "WorkflowNotFoundException", "Workflow not found: does_not_exist")


def test_archives_that_are_not_there(server: RunningServer) -> None:
    _error(_register(server, ""), 400, "BadRequestException", "Parameter url is required.")
    _error(
        _register(server, "url=does_not_exist.war"),
        404,
        "WorkflowNotFoundException",
        "Workflow not found in workflow store: does_not_exist.war",
    )
    malformed = requests.post(f"{server.management}/workflows", params={"url": "malformed_url,?"}, timeout=10)
    assert malformed.status_code == 404  # workflow_data.json's "Malformed URL"


def test_invalid_archives_and_specifications(server: RunningServer) -> None:
    _error(_register(server, "url=notazip.war"), 500, "InvalidWorkflowException", "Workflow name is not defined.")
    _error(_register(server, "url=badyaml.war"), 500, "InvalidWorkflowException", "Failed to parse yaml.")
    _error(_register(server, "url=twostarts.war"), 400, "InvalidDAGException", "DAG should have only one start node")
    _error(_register(server, "url=cycle.war"), 400, "InvalidDAGException", "Not a valid DAG")
    _error(_register(server, "url=selfloop.war"), 400, "InvalidDAGException", "Self loop exception")
    # a manifest without a name takes the one given at registration
    assert _register(server, "url=noname.war").status_code == 500
    assert _register(server, "url=noname.war&workflow_name=named").status_code == 200


def test_a_workflow_whose_model_fails_is_rolled_back(server: RunningServer) -> None:
    _error(
        _register(server, "url=missing.war"),
        500,
        "WorkflowException",
        "Workflow missing has failed to register. Failures: "
        "[Workflow Node missing__m failed to register. Details: Model not found at: nowhere.mar]",
    )
    _error(
        _register(server, "url=broken.war"),
        500,
        "WorkflowException",
        "Workflow broken has failed to register. Failures: [Failed to start workers for model broken__m version: 1.0]",
    )
    models = requests.get(f"{server.management}/models", timeout=10).json()["models"]
    assert not [m for m in models if m["modelName"].startswith(("missing__", "broken__"))]
    assert requests.get(f"{server.management}/workflows/broken", timeout=10).status_code == 404


def test_a_failing_node_answers_500(server: RunningServer) -> None:
    _register(server, "url=seq.war")
    response = requests.post(f"{server.inference}/wfpredict/seq", data=b"fail", timeout=30)
    _error(response, 500, "InternalServerException", "Error executing a")
    assert requests.post(f"{server.inference}/wfpredict/seq", data=b"ok", timeout=30).status_code == 200


def test_a_war_made_by_torch_workflow_archiver(server: RunningServer, tmp_path: Path) -> None:
    spec, handler = tmp_path / "made.yaml", tmp_path / "made_handler.py"
    spec.write_text(PARALLEL)
    handler.write_text(WORKFLOW_HANDLER)
    store = server.workdir / "wf_store"
    command = [sys.executable, "-m", "workflow_archiver.workflow_packaging"]
    command += ["--workflow-name", "made", "--spec-file", str(spec), "--handler", str(handler)]
    subprocess.run([*command, "--export-path", str(store)], check=True, timeout=60)
    assert _register(server, "url=made.war").status_code == 200
    answer = requests.post(f"{server.inference}/wfpredict/made", data=b"x", timeout=30)
    assert answer.json() == {"a": "x>made__a", "b": "x>made__b"}


def test_a_function_node_s_model_name_is_checked_as_a_model_node_s(server: RunningServer) -> None:
    """``<workflow>__<node>`` of a function node is a model name like any other: a workflow name (or node name) that
    makes it invalid fails as it does for a model node, instead of registering a model no other path would."""
    response = requests.post(
        f"{server.management}/workflows", params={"url": "leaves.war", "workflow_name": "a b"}, timeout=60
    )
    assert response.status_code == 500, response.text
    assert response.json()["type"] == "WorkflowException"
    assert (
        "Workflow Node a b__pre failed to register. Details: Invalid model name: a b__pre" in response.json()["message"]
    )
    assert requests.get(f"{server.management}/workflows/a%20b", timeout=10).status_code == 404
