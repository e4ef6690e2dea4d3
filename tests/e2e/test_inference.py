"""TorchServe's inference API against the real CLI, real workers and real HTTP clients."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import requests
from openapi_spec_validator import validate

from tests.raw_http import connect, read_response, request_bytes
from tests.server import EXAMPLE_MODELS, TEST_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("inference")
    models = {
        "echo": EXAMPLE_MODELS / "echo",
        "linear": EXAMPLE_MODELS / "linear",
        "kit": TEST_MODELS / "kit",
        "classy": TEST_MODELS / "classy",
        "fnform": TEST_MODELS / "fnform",
    }
    running = start_server(tmp, models, properties={"max_request_size": "100000"})
    yield running
    assert running.stop() == 0


def post(server: RunningServer, path: str, **kwargs) -> requests.Response:
    return requests.post(server.inference + path, timeout=30, **kwargs)


def test_started_line_and_ping(server: RunningServer) -> None:
    assert "Model server started." in server.logs()
    for method in ("GET", "POST", "PUT"):
        response = requests.request(method, server.inference + "/ping", timeout=10)
        assert response.status_code == 200
        assert response.json() == {"status": "Healthy"}


def test_common_headers(server: RunningServer) -> None:
    response = requests.get(server.inference + "/ping", timeout=10)
    assert len(response.headers["x-request-id"]) == 36
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["Cache-Control"] == "no-cache; no-store, must-revalidate, private"
    assert response.headers["Expires"] == "Thu, 01 Jan 1970 00:00:00 UTC"
    assert response.text.endswith("\n")


def test_echo_raw_body(server: RunningServer) -> None:
    payload = os.urandom(2048)
    response = post(server, "/predictions/echo", data=payload, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.content == payload


@pytest.mark.parametrize("size", [65_535, 65_536, 99_000])
def test_echo_large_raw_body_is_returned_byte_for_byte(server: RunningServer, size: int) -> None:
    """From 64 KiB on, bodies travel to the worker and back as attachment frames (docs/protocol.md)."""
    payload = os.urandom(size)
    response = post(server, "/predictions/echo", data=payload, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.content == payload


def test_concurrent_large_bodies_each_come_back_to_their_own_client(server: RunningServer) -> None:
    payloads = [os.urandom(70_000 + index) for index in range(12)]
    answers: dict[int, bytes] = {}

    def send(index: int) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        answers[index] = post(server, "/predictions/echo", data=payloads[index], headers=headers).content

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [answers.get(index) == payload for index, payload in enumerate(payloads)] == [True] * len(payloads)


def test_bodies_sent_in_pieces_across_interleaved_connections_come_back_whole(server: RunningServer) -> None:
    """Every connection of a listener reads into the server's one read buffer: the pieces of eight bodies, sent in
    turn across eight connections (heads split too), each come back to their own client byte for byte."""
    payloads = [os.urandom(20_000 + 997 * index) for index in range(8)]
    headers = {"Content-Type": "application/octet-stream"}
    wires = [request_bytes("POST", "/predictions/echo", payload, headers) for payload in payloads]
    socks = [connect(server.inference) for _ in payloads]
    try:
        step = 1_500
        for offset in range(0, max(map(len, wires)), step):
            for sock, wire in zip(socks, wires, strict=True):
                if offset < len(wire):
                    sock.sendall(wire[offset : offset + step])
            time.sleep(0.001)  # each piece its own read on the server
        for sock, payload in zip(socks, payloads, strict=True):
            response = read_response(sock.makefile("rb"))
            assert response is not None and response.status == 200 and response.body == payload
    finally:
        for sock in socks:
            sock.close()


def test_echo_json_is_decoded_and_reencoded(server: RunningServer) -> None:
    response = post(server, "/predictions/echo", json={"a": [1, 2, 3]})
    assert response.status_code == 200
    assert response.json() == {"a": [1, 2, 3]}
    assert response.text == json.dumps({"a": [1, 2, 3]}, indent=2)


def test_linear_model_does_real_arithmetic(server: RunningServer) -> None:
    response = post(server, "/predictions/linear", json=[0, 100, 37])
    assert response.status_code == 200
    assert response.json() == pytest.approx([32.0, 212.0, 98.6])


def test_linear_batch_of_concurrent_requests(server: RunningServer) -> None:
    results: dict[int, list[float]] = {}

    def call(value: int) -> None:
        results[value] = post(server, "/predictions/linear", json=[value]).json()

    threads = [threading.Thread(target=call, args=(v,)) for v in range(-10, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {v: pytest.approx([v * 1.8 + 32]) for v in range(-10, 10)}


def test_bad_input_is_handler_400(server: RunningServer) -> None:
    response = post(server, "/predictions/linear", data="not json", headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    assert response.json()["message"] == "Input must be a JSON number or list of numbers"


def test_version_and_url_path(server: RunningServer) -> None:
    response = post(server, "/predictions/kit/1.0/some/extra/path", json={"op": "info"}, headers={"X-Test": "yes"})
    assert response.status_code == 200
    body = response.json()
    assert body["url_path"] == "some/extra/path"
    assert body["explain"] == "False"
    assert body["header"] == "yes"
    assert body["model_dir_ok"] is True
    assert body["gpu_id"] is None
    assert body["types"] == {"body": "dict"}


def test_explanations_route_sets_explain(server: RunningServer) -> None:
    body = post(server, "/explanations/kit", json={"op": "info"}).json()
    assert body["explain"] == "True"


def test_kserve_v1_predict_routes_to_handler(server: RunningServer) -> None:
    response = post(server, "/v1/models/kit:predict", json={"op": "info"})
    assert response.status_code == 200
    assert response.json()["op"] == "info"
    assert post(server, "/v1/models/kit:explain", json={"op": "info"}).json()["explain"] == "True"
    assert requests.get(server.inference + "/v1/models/kit:predict", timeout=10).status_code == 405


def test_multipart_files_and_fields(server: RunningServer) -> None:
    files = {"img1": ("a.bin", b"\x00\x01", "image/png"), "img2": ("b.txt", b"hello", "text/plain")}
    response = post(server, "/predictions/kit", files=files, data={"op": "info"})
    assert response.status_code == 200
    body = response.json()
    assert body["keys"] == ["img1", "img2", "op"]
    assert body["types"] == {"img1": "bytearray", "img2": "str", "op": "bytearray"}


def test_urlencoded_fields(server: RunningServer) -> None:
    response = post(server, "/predictions/kit", data={"op": "info", "x": "1"})
    assert response.json()["keys"] == ["op", "x"]


def test_per_item_status_headers_content_type(server: RunningServer) -> None:
    spec = {"op": "info", "status": 201, "phrase": "Made", "headers": {"X-Out": "1"}, "content_type": "text/x-kit"}
    response = post(server, "/predictions/kit", json=spec)
    assert response.status_code == 201
    assert response.reason == "Made"
    assert response.headers["X-Out"] == "1"
    assert response.headers["Content-Type"] == "text/x-kit"


def test_class_handler_and_fn_form(server: RunningServer) -> None:
    assert post(server, "/predictions/classy", json=21).json() == {"model": "classy", "doubled": 42}
    assert post(server, "/predictions/classy/2.0", json=1).json()["doubled"] == 2
    assert post(server, "/predictions/fnform", data="quiet", headers={"Content-Type": "text/plain"}).text == "QUIET"


@pytest.mark.parametrize(
    ("spec", "status", "message"),
    [
        ({"op": "raise"}, 503, "Prediction failed"),
        ({"op": "wrong_count"}, 503, "number of batch response mismatched"),
        ({"op": "not_a_list"}, 503, "Invalid model predict output"),
        ({"op": "unserialisable"}, 503, "Unsupported model output data type."),
        ({"op": "memory"}, 507, "Out of resources"),
        ({"op": "predict_exception", "code": 599, "message": "custom"}, 599, "custom"),
    ],
)
def test_handler_failures(server: RunningServer, spec: dict, status: int, message: str) -> None:
    pids = server.worker_pids("kit")
    response = post(server, "/predictions/kit", json=spec)
    assert response.status_code == status
    assert response.json() == {"code": status, "type": "InternalServerException", "message": message}
    assert response.headers.get("Connection", "").lower() == "close"
    assert post(server, "/predictions/kit", json={"op": "info"}).status_code == 200
    assert server.worker_pids("kit") == pids  # the worker lived on


def test_not_found_and_method_not_allowed(server: RunningServer) -> None:
    missing = post(server, "/predictions/nope", data=b"x")
    assert missing.status_code == 404
    assert missing.json() == {"code": 404, "type": "ModelNotFoundException", "message": "Model not found: nope"}
    version = post(server, "/predictions/echo/9.9", data=b"x")
    assert version.status_code == 404
    assert version.json() == {  # TorchServe's body names the exception class it threw (Java's simple name)
        "code": 404,
        "type": "ModelVersionNotFoundException",
        "message": "Model version: 9.9 does not exist for model: echo",
    }
    generic = requests.get(server.inference + "/predictions", timeout=10)
    assert generic.status_code == 404
    assert generic.json()["message"] == "Requested resource is not found, please refer to API document."
    root = requests.get(server.inference + "/", timeout=10)
    assert root.status_code == 405
    assert root.json()["type"] == "MethodNotAllowedException"
    assert "OPTIONS" in root.headers["Allow"]


def test_trailing_slash_and_percent_decoding(server: RunningServer) -> None:
    assert post(server, "/predictions/echo/", data=b"abc").content == b"abc"
    assert post(server, "/predictions/%65cho", data=b"abc").content == b"abc"


def test_request_too_large(server: RunningServer) -> None:
    response = post(server, "/predictions/echo", data=b"x" * 100001)
    assert response.status_code == 413
    assert response.content == b""
    assert post(server, "/predictions/echo", data=b"x" * 100000).status_code == 200


def test_chunked_bodies_are_joined_and_limited_without_a_content_length(server: RunningServer) -> None:
    """A generator body goes out with Transfer-Encoding: chunked: the server sees no Content-Length, joins the
    pieces in order, and refuses the body once it grows past max_request_size."""

    def pieces(count: int, size: int):
        for n in range(count):
            yield bytes([65 + n % 26]) * size

    joined = b"".join(pieces(10, 7000))
    answer = post(server, "/predictions/echo", data=pieces(10, 7000))
    assert answer.status_code == 200 and answer.content == joined
    single = post(server, "/predictions/echo", data=pieces(1, 5))
    assert single.status_code == 200 and single.content == b"AAAAA"
    try:
        refused = post(server, "/predictions/echo", data=pieces(30, 7000)).status_code
    except requests.ConnectionError:
        refused = 413  # the server may close the connection while the client still writes: also a refusal
    assert refused == 413
    assert post(server, "/predictions/echo", data=b"still serving").content == b"still serving"


TORCHSERVE_INFO = {
    "title": "TorchServe APIs",
    "description": "TorchServe is a flexible and easy to use tool for serving deep learning models",
    "version": "0.12.0",
}


def test_openapi_document_is_valid(server: RunningServer) -> None:
    response = requests.options(server.inference + "/", timeout=10)
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"] == "3.0.1"
    assert document["info"] == TORCHSERVE_INFO  # TorchServe's listApis: its own title, description and version
    assert "/predictions/{model_name}" in document["paths"]
    assert "/v1/models/{model_name}:predict" in document["paths"]
    assert requests.get(server.inference + "/api-description", timeout=10).json() == document
    management = requests.options(server.management + "/", timeout=10).json()
    validate(management)
    assert management["info"] == TORCHSERVE_INFO
    assert "/models/{model_name}" in management["paths"]


def test_model_options_describes_predictions(server: RunningServer) -> None:
    response = requests.options(server.inference + "/predictions/echo", timeout=10)
    assert response.status_code == 200
    paths = response.json()["paths"]
    kserve_style = ("/v1/models/{model_name}:", "/v2/models/{model_name}/infer", "/v2/models/{model_name}/explain")
    assert all(path.startswith(("/predictions/", "/explanations/", *kserve_style)) for path in paths)
    assert {"/predictions/{model_name}", "/v1/models/{model_name}:predict"} <= set(paths)
    assert response.json()["info"] == {"title": "RESTful API for: echo", "version": "1.0.0"}  # TorchServe's getModelApi
    validate(response.json())


def test_streaming_intermediate_responses(server: RunningServer) -> None:
    with requests.post(server.inference + "/predictions/kit", json={"op": "stream"}, stream=True, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["Transfer-Encoding"] == "chunked"
        chunks = [c for c in r.iter_content(chunk_size=None) if c]
    assert b"".join(chunks) == b"hellohellohellohello world "


def test_worker_killed_mid_request_answers_500_and_restarts(server: RunningServer) -> None:
    [pid] = server.worker_pids("kit")
    outcome: dict[str, requests.Response] = {}
    thread = threading.Thread(
        target=lambda: outcome.setdefault("r", post(server, "/predictions/kit", json={"op": "sleep", "seconds": 20}))
    )
    started = time.monotonic()
    thread.start()
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    thread.join(10)
    elapsed = time.monotonic() - started
    assert not thread.is_alive()
    response = outcome["r"]
    assert response.status_code == 500
    assert response.json() == {"code": 500, "type": "InternalServerException", "message": "Worker died."}
    assert elapsed < 5
    server.wait_ready(["kit"], timeout=30)
    assert server.worker_pids("kit") != [pid]
    assert post(server, "/predictions/kit", json={"op": "info"}).status_code == 200
    logs = server.logs()
    assert "Retry worker:" in logs
    assert "Auto recovery succeeded" in logs


def test_worker_stdout_goes_to_log_with_worker_name(server: RunningServer) -> None:
    assert "-stderr MODEL_LOG - " in server.logs() or "-stdout MODEL_LOG - " in server.logs()


def test_management_list_and_describe(server: RunningServer) -> None:
    listing = requests.get(server.management + "/models", timeout=10).json()
    assert [m["modelName"] for m in listing["models"]] == ["classy", "echo", "fnform", "kit", "linear"]
    [linear] = server.describe("linear")
    assert linear["batchSize"] == 4 and linear["maxBatchDelay"] == 5 and linear["responseTimeout"] == 30
    assert linear["workers"][0]["status"] == "READY"


def test_metrics_port_answers(server: RunningServer) -> None:
    response = requests.get(server.metrics + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
