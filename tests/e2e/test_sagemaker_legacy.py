"""SageMaker's ``/invocations`` and ``/models/{m}/invoke`` and the legacy ``/{m}[/{v}]/predict`` through the real CLI:
the model named as TorchServe finds it, query parameters passed on as inputs, TorchServe's errors, the size limit
and the same core call (its statistics count these requests); and multipart parts that cannot become inputs."""

from __future__ import annotations

import pytest
import requests

from tests.server import EXAMPLE_MODELS, TEST_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    models = {"echo": EXAMPLE_MODELS / "echo", "kit": TEST_MODELS / "kit"}
    running = start_server(tmp_path_factory.mktemp("sagemaker"), models, properties={"max_request_size": "100000"})
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    running = start_server(tmp_path_factory.mktemp("sagemaker_single"), {"kit": TEST_MODELS / "kit"})
    yield running
    assert running.stop() == 0


def call(server: RunningServer, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, server.inference + path, timeout=30, **kwargs)


def error(response: requests.Response) -> tuple[int, dict]:
    return response.status_code, response.json()


def inference_count(server: RunningServer, model: str) -> int:
    [stats] = call(server, "GET", f"/v2/models/{model}/stats").json()["model_stats"]
    return stats["inference_count"]


def test_invocations_model_from_the_query_and_query_parameters_as_inputs(server: RunningServer) -> None:
    before = inference_count(server, "kit")
    response = call(server, "POST", "/invocations?model_name=kit&x=1", json={"op": "info"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["op"] == "info"
    assert body["keys"] == ["body", "model_name", "x"]
    assert body["types"]["x"] == "bytearray"
    assert inference_count(server, "kit") == before + 1  # the core call: its statistics count it


def test_invocations_model_from_a_form_field(server: RunningServer) -> None:
    files = {"model_name": (None, "kit"), "op": (None, "info")}
    response = call(server, "POST", "/invocations", files=files)
    assert response.status_code == 200, response.text
    assert response.json()["keys"] == ["model_name", "op"]
    urlencoded = call(server, "POST", "/invocations", data={"model_name": "echo", "data": "hi"})
    assert urlencoded.status_code == 200
    assert urlencoded.content == b"hi"


def test_invocations_without_a_model_name_and_several_startup_models_is_a_400(server: RunningServer) -> None:
    assert error(call(server, "POST", "/invocations", data=b"x")) == (
        400,
        {"code": 400, "type": "BadRequestException", "message": "Parameter model_name is required."},
    )
    assert error(call(server, "POST", "/invocations?model_name=nope", data=b"x")) == (
        404,
        {"code": 404, "type": "ModelNotFoundException", "message": "Model not found: nope"},
    )


def test_invocations_without_a_model_name_takes_the_only_startup_model(single: RunningServer) -> None:
    response = call(single, "POST", "/invocations", json={"op": "info"})
    assert response.status_code == 200, response.text
    assert response.json()["op"] == "info"
    assert call(single, "GET", "/invocations?model_name=", json={"op": "info"}).json()["op"] == "info"


def test_models_invoke(server: RunningServer) -> None:
    response = call(server, "POST", "/models/kit/invoke?x=2", json={"op": "info"}, headers={"X-Test": "t"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["keys"] == ["body", "x"]
    assert body["header"] == "t"
    assert error(call(server, "POST", "/models/nope/invoke", data=b"x"))[1]["message"] == "Model not found: nope"
    assert call(server, "POST", "/models/kit/other", data=b"x").status_code == 404


def test_legacy_predict_takes_data_from_the_query(server: RunningServer) -> None:
    response = call(server, "GET", "/echo/predict?data=hello")
    assert response.status_code == 200, response.text
    assert response.content == b"hello"
    versioned = call(server, "POST", "/kit/1.0/predict?y=3", json={"op": "info"})
    assert versioned.status_code == 200
    assert versioned.json()["keys"] == ["body", "y"]
    assert error(call(server, "GET", "/kit/9.9/predict")) == (
        404,
        {
            "code": 404,
            "type": "ModelVersionNotFoundException",
            "message": "Model version: 9.9 does not exist for model: kit",
        },
    )
    assert error(call(server, "GET", "/nope/predict"))[1]["message"] == "Model not found: nope"


def test_predictions_do_not_pass_query_parameters(server: RunningServer) -> None:
    assert call(server, "POST", "/predictions/kit?x=1", json={"op": "info"}).json()["keys"] == ["body"]


@pytest.mark.parametrize("path", ["/invocations?model_name=echo", "/models/echo/invoke", "/echo/predict"])
def test_bodies_over_max_request_size_are_a_413(server: RunningServer, path: str) -> None:
    response = call(server, "POST", path, data=b"x" * 150_000)
    assert response.status_code == 413
    assert response.content == b""
    assert response.headers["Content-Type"] == "application/octet-stream"  # every answer carries one
    assert call(server, "POST", path, data=b"fine").content == b"fine"


def test_options_gives_the_model_api_description(server: RunningServer) -> None:
    for path in ("/invocations?model_name=echo", "/models/echo/invoke", "/echo/predict"):
        response = call(server, "OPTIONS", path)
        assert response.status_code == 200
        assert "/predictions/{model_name}" in response.json()["paths"]


@pytest.mark.parametrize("body", [b"--B\r\n--B--\r\n", b"--B\r\n\r\n--B--", b"--B\r\n\r\ndata\r\n--B--\r\n"])
@pytest.mark.parametrize("path", ["/predictions/echo", "/invocations?model_name=echo"])
def test_a_multipart_part_without_a_name_is_a_400(server: RunningServer, body: bytes, path: str) -> None:
    response = call(server, "POST", path, data=body, headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "BadRequestException"
    assert response.json()["message"].startswith("Invalid multipart body: ")
    assert call(server, "POST", "/predictions/echo", data=b"still serving").content == b"still serving"
