"""Per-model protocol settings and TorchServe's request envelopes, through the real CLI and workers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests

from tests.server import EXAMPLE_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e

V2_REQUEST = {"id": "r1", "inputs": [{"name": "input-0", "shape": [3], "datatype": "FP32", "data": [0, 100, 37]}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("protocols")
    names = ("linear_v2", "linear_v1", "linear_plain", "linear_bad")
    models = {
        "linear_v2": {"1.0": {"minWorkers": 1, "batchSize": 1}},  # the global service_envelope: kservev2
        "linear_v1": {"1.0": {"minWorkers": 1, "batchSize": 1, "serviceEnvelope": "kserve", "protocol": "kserve"}},
        "linear_plain": {"1.0": {"minWorkers": 1, "serviceEnvelope": ""}},
        "linear_bad": {"1.0": {"minWorkers": 1, "protocol": "grpc"}},
    }
    properties = {
        "service_envelope": "kservev2",
        "load_models": ",".join(f"{name}={name}" for name in names),
        "models": json.dumps(models),
        "enable_model_api": "true",
    }
    running = start_server(tmp, dict.fromkeys(names, EXAMPLE_MODELS / "linear"), properties, wait_models=names[:3])
    yield running
    assert running.stop() == 0


def post(server: RunningServer, path: str, **kwargs) -> requests.Response:
    return requests.post(server.inference + path, timeout=30, **kwargs)


def test_a_torchserve_handler_answers_a_v2_request_through_the_kservev2_envelope(server: RunningServer) -> None:
    response = post(server, "/predictions/linear_v2", json=V2_REQUEST)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("id", "model_name", "model_version")} == {
        "id": "r1",
        "model_name": "linear",  # the envelope reads the archive's own manifest, as TorchServe's worker does
        "model_version": "1.0",
    }
    [output] = body["outputs"]
    assert output["name"] == "input-0" and output["shape"] == [3] and output["datatype"] in ("FP32", "FP64")
    assert output["data"] == pytest.approx([32.0, 212.0, 98.6])


def test_the_kserve_envelope_on_the_kserve_v1_route(server: RunningServer) -> None:
    response = post(server, "/v1/models/linear_v1:predict", json={"instances": [{"data": [0, 100]}, {"data": [37]}]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[32.0, 212.0], [98.6]]}


def test_an_empty_service_envelope_for_one_model_switches_the_global_one_off(server: RunningServer) -> None:
    assert post(server, "/predictions/linear_plain", json=[0, 100]).json() == [32.0, 212.0]


def test_a_model_with_an_unknown_protocol_is_refused_and_the_others_serve(server: RunningServer) -> None:
    assert "Invalid protocol 'grpc' for model linear_bad" in server.logs()
    response = post(server, "/predictions/linear_bad", json=[1])
    assert response.status_code == 404
    assert response.json()["type"] == "ModelNotFoundException"


def test_registering_a_model_whose_config_names_an_unknown_protocol_is_400(
    server: RunningServer, tmp_path: Path
) -> None:
    store = server.workdir / "model_store"
    target = store / "linear_odd"
    shutil.copytree(EXAMPLE_MODELS / "linear", target)
    config = target / "model-config.yaml"
    config.write_text(config.read_text() + "protocol: mindspore\n")
    response = requests.post(
        f"{server.management}/models", params={"url": "linear_odd", "model_name": "linear_odd"}, timeout=30
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "type": "BadRequestException",
        "message": "Invalid protocol 'mindspore' for model linear_odd; expected one of 'torchserve', 'kserve', 'angel'",
    }
    assert requests.get(f"{server.management}/models/linear_odd", timeout=10).status_code == 404


def test_a_multipart_part_without_headers_is_a_400_not_a_500(server: RunningServer) -> None:
    body = b"--B\r\n--B--\r\n"
    response = post(
        server, "/predictions/linear_plain", data=body, headers={"Content-Type": "multipart/form-data; boundary=B"}
    )
    assert response.status_code == 400
    assert response.json()["type"] == "BadRequestException"
    assert post(server, "/predictions/linear_plain", json=[0]).json() == [32.0]  # the server goes on serving


def test_the_v2_infer_route_of_a_torchserve_model_goes_through_its_envelope(server: RunningServer) -> None:
    """TorchServe 0.12 passes /v2/models/{m}/infer to the handler; the kservev2 envelope translates it."""
    response = post(server, "/v2/models/linear_v2/infer", json=V2_REQUEST)
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    assert output["data"] == pytest.approx([32.0, 212.0, 98.6])
