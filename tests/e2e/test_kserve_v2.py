"""The Open Inference Protocol (V2) REST API against the real CLI, with Triton's HTTP client and KServe's REST client:
JSON and binary tensors, metadata, readiness, the repository extension, Triton's config and statistics."""

from __future__ import annotations

import asyncio
import json
import shutil

import numpy as np
import pytest
import requests

from tests.server import EXAMPLE_MODELS, TEST_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e
httpclient = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("kserve_v2")
    models = {"kdummy": TEST_MODELS / "kdummy", "kfp16": TEST_MODELS / "kfp16", "echo": EXAMPLE_MODELS / "echo"}
    properties = {"load_models": "kdummy=kdummy,kfp16=kfp16,echo=echo", "enable_model_api": "true"}
    running = start_server(tmp, models, properties=properties)
    shutil.copytree(TEST_MODELS / "kdummy", tmp / "model_store" / "spare")  # in the store, not loaded at start
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def triton(server: RunningServer):
    client = httpclient.InferenceServerClient(url=server.inference.removeprefix("http://"))
    yield client
    client.close()


def get(server: RunningServer, path: str) -> requests.Response:
    return requests.get(server.inference + path, timeout=30)


def post(server: RunningServer, path: str, **kwargs) -> requests.Response:
    return requests.post(server.inference + path, timeout=30, **kwargs)


def test_server_health_and_metadata(server: RunningServer, triton) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    metadata = triton.get_server_metadata()
    assert metadata["name"] == "modelserver" and "binary_tensor_data" in metadata["extensions"]
    assert get(server, "/v2/health/live").json() == {"live": True}
    assert get(server, "/v2/health/ready").json() == {"ready": True}
    assert get(server, "/v2/models").json() == {"models": ["kdummy", "kfp16", "echo"]}


def test_model_metadata_and_readiness_with_and_without_a_version(server: RunningServer, triton) -> None:
    assert triton.is_model_ready("kdummy") and triton.is_model_ready("kdummy", "1.0")
    metadata = triton.get_model_metadata("kdummy")
    assert metadata == {
        "name": "kdummy",
        "versions": ["1.0"],
        "platform": "",
        "inputs": [{"name": "input-0", "datatype": "INT32", "shape": [-1, 2]}],
        "outputs": [{"name": "output-0", "datatype": "INT32", "shape": [-1, 2]}],
    }
    assert get(server, "/v2/models/kdummy/versions/1.0").json() == metadata
    assert get(server, "/v2/models/kdummy/versions/1.0/ready").json() == {"name": "kdummy", "ready": True}
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/kdummy/versions/9/ready"):
        response = get(server, path)
        assert response.status_code == 404 and "does not exist" in response.json()["error"], path


def test_json_infer_echoes_id_and_parameters(server: RunningServer) -> None:
    parameters = {"test-str": "dummy", "test-bool": True, "test-int": 100, "test-float": 1.3}
    body = {
        "id": "123",
        "parameters": parameters,
        "inputs": [
            {"name": "input-0", "shape": [1, 2], "datatype": "INT32", "data": [[1, 2]], "parameters": parameters}
        ],
    }
    response = post(server, "/v2/models/kdummy/infer", json=body)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["id"] == "123" and answer["model_name"] == "kdummy" and answer["parameters"] == parameters
    [output] = answer["outputs"]
    assert (output["name"], output["datatype"], output["shape"], output["data"]) == (
        "output-0",
        "INT32",
        [1, 2],
        [1, 2],
    )
    assert output["parameters"] == parameters


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_tritonclient_binary_and_json_tensors(triton, binary_in: bool, binary_out: bool) -> None:
    data = np.arange(12, dtype=np.int32).reshape(6, 2)
    tensor = httpclient.InferInput("input-0", list(data.shape), "INT32")
    tensor.set_data_from_numpy(data, binary_data=binary_in)
    output = httpclient.InferRequestedOutput("output-0", binary_data=binary_out)
    result = triton.infer("kdummy", [tensor], outputs=[output], request_id="abc")
    np.testing.assert_array_equal(result.as_numpy("output-0"), data)
    assert result.get_response()["id"] == "abc"


def test_fp16_bytes_and_mixed_outputs(triton) -> None:
    values = np.array([[6.8, 2.8], [4.8, 1.4]], dtype=np.float32)
    fp32 = httpclient.InferInput("fp32_input", [2, 2], "FP32")
    fp32.set_data_from_numpy(values, binary_data=True)
    text = httpclient.InferInput("str_input", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"cat", "dög".encode()], dtype=object), binary_data=True)
    outputs = [
        httpclient.InferRequestedOutput("fp16_output", binary_data=True),
        httpclient.InferRequestedOutput("fp32_output", binary_data=False),
        httpclient.InferRequestedOutput("str_output", binary_data=True),
    ]
    result = triton.infer("kfp16", [fp32, text], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("fp16_output"), (values + 1).astype(np.float16))
    np.testing.assert_allclose(result.as_numpy("fp32_output"), values + 1)
    assert [v.decode() for v in result.as_numpy("str_output").ravel()] == ["CAT", "DÖG"]
    header = {output["name"]: output for output in result.get_response()["outputs"]}
    assert header["fp16_output"]["parameters"]["binary_data_size"] == 8 and "data" not in header["fp16_output"]
    assert "data" in header["fp32_output"]


def test_binary_output_default_and_the_header_length(server: RunningServer) -> None:
    request = {
        "inputs": [{"name": "fp32_input", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}],
        "parameters": {"binary_data_output": True},
    }
    response = post(server, "/v2/models/kfp16/infer", json=request)
    length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.content[:length])
    sizes = [output["parameters"]["binary_data_size"] for output in header["outputs"]]
    assert sizes == [4, 8] and len(response.content) == length + sum(sizes)
    assert np.frombuffer(response.content[length : length + 4], dtype="<f2").tolist() == [2.0, 3.0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "INT32", "data": [1, 2]}]}, "input-0"),
        ({"inputs": [{"name": "input-0", "shape": [1], "datatype": "INT33", "data": [1]}]}, "INT33"),
        ({"inputs": "nope"}, "inputs"),
        (
            {
                "inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "INT32", "data": [1, 2]}],
                "outputs": [{"name": "missing"}],
            },
            "Unexpected inference output 'missing' for model 'kdummy'",
        ),
    ],
)
def test_bad_requests_are_400_in_the_protocols_shape(server: RunningServer, body: dict, message: str) -> None:
    response = post(server, "/v2/models/kdummy/infer", json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and message in response.json()["error"]


def test_binary_body_without_its_header_is_refused(server: RunningServer) -> None:
    response = post(
        server, "/v2/models/kdummy/infer", data=b"\x00" * 8, headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 400 and "error" in response.json()


def test_a_torchserve_model_gets_the_raw_v2_request(server: RunningServer) -> None:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [7]}]}
    response = post(server, "/v2/models/echo/infer", json=body)
    assert response.status_code == 200 and response.json() == body  # the echo handler answers its input


def test_kserves_v2_rest_client(server: RunningServer) -> None:
    kserve = pytest.importorskip("kserve")

    async def call():
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2"))
        request = kserve.InferRequest(
            model_name="kdummy",
            infer_inputs=[kserve.InferInput("input-0", [1, 2], "INT32", data=[[8, 9]])],
        )
        try:
            return await client.infer(server.inference, request, model_name="kdummy")
        finally:
            await client.close()

    response = asyncio.run(call())
    assert response.outputs[0].as_numpy().tolist() == [[8, 9]]


def test_triton_config_statistics_and_repository_index(triton) -> None:
    config = triton.get_model_config("kdummy")
    assert config["name"] == "kdummy" and config["input"][0]["data_type"] == "TYPE_INT32"
    stats = triton.get_inference_statistics("kdummy")
    [entry] = stats["model_stats"]
    assert entry["name"] == "kdummy" and entry["inference_stats"]["success"]["count"] >= 1
    index = {(e["name"], e["version"]): e["state"] for e in triton.get_model_repository_index()}
    assert index[("kdummy", "1.0")] == "READY"


def test_repository_load_and_unload(server: RunningServer, triton) -> None:
    load = post(server, "/v2/repository/models/spare/load")
    assert (load.status_code, load.json()) == (200, {"name": "spare", "load": True})
    assert triton.is_model_ready("spare")
    unload = post(server, "/v2/repository/models/spare/unload")
    assert (unload.status_code, unload.json()) == (200, {"name": "spare", "unload": True})
    assert get(server, "/v2/models/spare/ready").status_code == 404
    assert post(server, "/v2/repository/models/spare/unload").status_code == 404
    assert post(server, "/v2/repository/models/nothing/load").status_code == 404


def test_v2_explain_reaches_the_models_explain(server: RunningServer) -> None:
    body = {"inputs": [{"name": "fp32_input", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    response = post(server, "/v2/models/kfp16/explain", json=body)  # KServe's default explain: no explainer_host
    assert (response.status_code, response.json()) == (501, {"error": "Could not find explainer_host."})
    versioned = post(server, "/v2/models/kfp16/versions/1.0/explain", json=body)
    assert versioned.status_code == 501
