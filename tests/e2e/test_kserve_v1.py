"""KServe's V1 REST API against the real CLI: KServe models of a model store (``workerRuntime: kserve``) in worker
processes, beside a TorchServe model on the same routes."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.server import EXAMPLE_MODELS, TEST_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("kserve_v1")
    models = {
        "kdummy": TEST_MODELS / "kdummy",
        "kstream": TEST_MODELS / "kstream",
        "kheaders": TEST_MODELS / "kheaders",
        "echo": EXAMPLE_MODELS / "echo",
    }
    properties = {"load_models": ",".join(f"{name}={name}" for name in models), "default_protocol": "kserve"}
    running = start_server(tmp, models, properties=properties)
    yield running
    assert running.stop() == 0


def get(server: RunningServer, path: str) -> requests.Response:
    return requests.get(server.inference + path, timeout=30)


def post(server: RunningServer, path: str, **kwargs) -> requests.Response:
    return requests.post(server.inference + path, timeout=30, **kwargs)


def test_alive_and_models(server: RunningServer) -> None:
    assert get(server, "/").json() == {"status": "alive"}
    assert get(server, "/v1/models").json() == {"models": ["kdummy", "kstream", "kheaders", "echo"]}


def test_model_status(server: RunningServer) -> None:
    assert get(server, "/v1/models/kdummy").json() == {"name": "kdummy", "ready": True}
    missing = get(server, "/v1/models/nope")
    assert (missing.status_code, missing.json()) == (404, {"error": "Model with name nope does not exist."})


def test_predict_and_explain(server: RunningServer) -> None:
    response = post(server, "/v1/models/kdummy:predict", json={"instances": [[1, 2]]})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"predictions": [[1, 2]]}
    assert post(server, "/v1/models/kdummy:predict", json={"inputs": [[3]]}).json() == {"predictions": [[3]]}
    assert post(server, "/v1/models/kdummy:explain", json={"instances": [[1, 2]]}).json() == {"explanations": [[1, 2]]}


def test_the_models_response_headers_and_its_own_content_type(server: RunningServer) -> None:
    """KServe merges a model's ``response_headers`` into the answer; a content type there replaces the JSON one."""
    plain = post(server, "/v1/models/kheaders:predict", json={"instances": [1]})
    assert (plain.headers["x-model"], plain.headers["Content-Type"]) == ("kheaders", "application/json")
    typed = post(server, "/v1/models/kheaders:predict", json={"instances": [1], "content_type": "text/plain"})
    assert typed.status_code == 200 and typed.headers["Content-Type"] == "text/plain"
    assert typed.json() == {"predictions": [1]}


def test_kserve_content_type_rule(server: RunningServer) -> None:
    """JSON for application/json (or none); any other content type gives the model the raw bytes."""
    raw = post(server, "/v1/models/kdummy:predict", data=b"a=1", headers={"Content-Type": "text/plain"})
    assert raw.json() == {"predictions": ["a=1"], "raw": True}
    untyped = requests.Request("POST", server.inference + "/v1/models/kdummy:predict", data=b'{"instances": [1]}')
    prepared = untyped.prepare()
    prepared.headers.pop("Content-Type", None)
    assert requests.Session().send(prepared, timeout=30).json() == {"predictions": [1]}


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400, "Unrecognized request format"),
        (b'{"instances": 5}', {"Content-Type": "application/json"}, 400, 'Expected "instances" to be a list'),
        (b'{"fail": true}', {"Content-Type": "application/json"}, 500, "ValueError : kaboom"),
    ],
)
def test_errors_in_kserves_shape(server: RunningServer, body: bytes, headers: dict, status: int, message: str) -> None:
    response = post(server, "/v1/models/kdummy:predict", data=body, headers=headers)
    assert response.status_code == status
    assert set(response.json()) == {"error"} and message in response.json()["error"]
    assert get(server, "/v1/models/kdummy").json()["ready"] is True  # the model goes on serving


def test_a_torchserve_model_on_the_shared_routes_keeps_torchserve_semantics(server: RunningServer) -> None:
    answer = post(server, "/v1/models/echo:predict", data=b"hello", headers={"Content-Type": "text/plain"})
    assert (answer.status_code, answer.text) == (200, "hello")
    missing = post(server, "/v1/models/nope:predict", json={})
    assert (missing.status_code, missing.json()) == (404, {"error": "Model with name nope does not exist."})
    # an unknown model gets the default protocol's answer: kserve here (a TorchServe config keeps TorchServe's)


def test_an_async_iterator_answer_is_streamed_in_chunks(server: RunningServer) -> None:
    started = time.monotonic()
    with post(server, "/v1/models/kstream:predict", json={"count": 4}, stream=True) as response:
        assert response.status_code == 200
        assert response.headers.get("Transfer-Encoding") == "chunked"
        arrivals = []
        for chunk in response.iter_content(chunk_size=None):
            arrivals.append((time.monotonic() - started, chunk))
    assert b"".join(chunk for _, chunk in arrivals) == b"piece 0\npiece 1\npiece 2\npiece 3\n"
    assert len(arrivals) >= 2 and arrivals[-1][0] - arrivals[0][0] > 0.03  # pieces came as they were made


def test_kserves_own_rest_client(server: RunningServer) -> None:
    kserve = pytest.importorskip("kserve")
    import asyncio

    async def call() -> dict:
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v1"))
        try:
            return await client.infer(server.inference, model_name="kdummy", data={"instances": [[5, 6]]})
        finally:
            await client.close()

    assert asyncio.run(call()) == {"predictions": [[5, 6]]}


def test_metrics_on_the_inference_port(server: RunningServer) -> None:
    response = get(server, "/metrics")
    assert response.status_code == 200
    json.dumps(response.text)  # text; empty in TorchServe's default log mode, as on the metrics port
