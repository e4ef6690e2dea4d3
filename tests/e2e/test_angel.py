"""Angel Serving's RESTful API through the real CLI and workers (/work/shared/specs §6, §7): status, every instance
form of ``:predict``, errors as valid JSON, the JSON metrics summary, and the three protocols on
``/v1/models/{m}:predict`` of one server."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.server import EXAMPLE_MODELS, TEST_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e

WEIGHTS = [0.8, -0.5, 0.3, 0.0, 1.2, -1.0, 0.25, -0.75, 0.6, -0.2]  # examples/model_store/lr, by hand
BIAS = -0.1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("angel")
    models = {"lr": EXAMPLE_MODELS / "lr", "kdummy": TEST_MODELS / "kdummy", "echo": EXAMPLE_MODELS / "echo"}
    running = start_server(tmp, models, {"count_distribution_bucket": "5,10,2000"}, wait_models=list(models))
    yield running
    assert running.stop() == 0


def post(server: RunningServer, path: str, body: Any) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return requests.post(server.inference + path, data=data, headers={"Content-Type": "application/json"}, timeout=30)


def expected(features: dict[int, float], sid: str) -> dict[str, str]:
    margin = BIAS + sum(WEIGHTS[index] * value for index, value in features.items())
    proba = 1 / (1 + math.exp(-margin))
    return {
        "sid": sid,
        "pred": repr(round(margin, 6)),
        "proba": repr(round(proba, 6)),
        "predLabel": "1" if proba >= 0.5 else "-1",
    }


def predictions(response: requests.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


# -- status ---------------------------------------------------------------------------------------------


def test_status_lists_versions_as_strings_with_type_map_and_dim(server: RunningServer) -> None:
    body = requests.get(server.inference + "/v1/models/lr", timeout=10).json()
    assert body == {
        "name": "lr",
        "ready": True,
        "model_version_status": [{"version": "1", "state": "AVAILABLE"}],
        "typeMap": {"valueType": "DT_FLOAT", "keyType": "DT_INT32"},
        "dim": "10",
    }
    one = requests.get(server.inference + "/v1/models/lr/versions/1", timeout=10)
    assert one.status_code == 200 and one.json()["model_version_status"] == [{"version": "1", "state": "AVAILABLE"}]


def test_status_of_a_model_that_declares_no_angel_input_has_no_type_map(server: RunningServer) -> None:
    body = requests.get(server.inference + "/v1/models/echo/versions/1.0", timeout=10).json()
    assert body == {"name": "echo", "ready": True, "model_version_status": [{"version": "1.0", "state": "AVAILABLE"}]}


def test_status_of_an_unknown_version_or_model_is_a_json_404(server: RunningServer) -> None:
    response = requests.get(server.inference + "/v1/models/lr/versions/7", timeout=10)
    assert (response.status_code, response.json()) == (404, {"error": "Model lr has no version 7."})
    response = requests.get(server.inference + "/v1/models/nope/versions/1", timeout=10)
    assert (response.status_code, response.json()) == (404, {"error": "Model with name nope does not exist."})


# -- predict: every instance form ------------------------------------------------------------------------


def test_dense_vectors(server: RunningServer) -> None:
    dense = [1.0, 0.0, 0.0, 0.0, 0.5]
    assert predictions(post(server, "/v1/models/lr:predict", {"instances": [dense, [0.0, 2.0]]})) == [
        expected({0: 1.0, 4: 0.5}, "0"),
        expected({1: 2.0}, "1"),
    ]


def test_numbers_with_a_trailing_dot_as_angel_s_test_script_sends_them(server: RunningServer) -> None:
    body = b'{"instances": [[1., 0, 0, 0, 0.5], [0, 2.]]}'
    assert predictions(post(server, "/v1/models/lr:predict", body)) == [
        expected({0: 1.0, 4: 0.5}, "0"),
        expected({1: 2.0}, "1"),
    ]
    body = b'{"instances": [{"values": {"1": 2.}, "key": "k"}]}'
    assert predictions(post(server, "/v1/models/lr:predict", body)) == [expected({1: 2.0}, "k")]


def test_kv_maps_bare_and_in_a_field_with_a_key(server: RunningServer) -> None:
    instances = [
        {"values": {"0": 1.0, "4": "0.5"}, "key": "first"},
        {"2": 1.0, "5": 0.25, "9": 1.0},
        {"values": [0.0, 0.0, 0.0, 0.0, 1.0], "key": 7},
    ]
    assert predictions(post(server, "/v1/models/lr:predict", {"instances": instances})) == [
        expected({0: 1.0, 4: 0.5}, "first"),
        expected({2: 1.0, 5: 0.25, 9: 1.0}, "1"),
        expected({4: 1.0}, "7"),
    ]


def test_sparse_indices_and_values_on_a_versioned_route(server: RunningServer) -> None:
    body = {"instances": [{"sparseIndices": [0, 7], "sparseValues": [1.0, 2.0], "key": "s"}]}
    assert predictions(post(server, "/v1/models/lr/versions/1:predict", body)) == [expected({0: 1.0, 7: 2.0}, "s")]


def pieces(*chunks: bytes) -> Iterator[bytes]:
    """A body sent chunked, a pause before each later piece: the request reaches the dialect before its body."""
    for index, chunk in enumerate(chunks):
        if index:
            time.sleep(0.2)
        yield chunk


@pytest.mark.parametrize("count", [1, 2])
def test_a_body_still_arriving_and_a_name_beyond_64_bits(server: RunningServer, count: int) -> None:
    """The body is read when it is all there; an integer name of 20 digits stays the integer it was (not a float)."""
    instance = b'{"sparseIndices": [0, 7], "sparseValues": [1.0, 2.0], "key": 123456789012345678901234567890}'
    head, tail = b'{"instances": [' + b", ".join([instance] * count), b"]}"
    response = requests.post(
        server.inference + "/v1/models/lr:predict",
        data=pieces(head[:40], head[40:], tail),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert predictions(response) == [expected({0: 1.0, 7: 2.0}, "123456789012345678901234567890")] * count


def test_an_instance_named_by_a_number_or_unnamed(server: RunningServer) -> None:
    for key, sid in ((7, "7"), (2.5, "2.5"), (None, "None"), (True, "True")):
        body = {"instances": [{"sparseIndices": [1], "sparseValues": [2.0], "key": key}]}
        assert predictions(post(server, "/v1/models/lr:predict", body)) == [expected({1: 2.0}, sid)]
    body = {"instances": [{"sparseIndices": [1], "sparseValues": [2.0]}]}
    assert predictions(post(server, "/v1/models/lr:predict", body)) == [expected({1: 2.0}, "0")]


def test_libsvm_text_lines(server: RunningServer) -> None:
    body = {"instances": ["0:1 4:0.5", "1:2"]}
    assert predictions(post(server, "/v1/models/lr:predict", body)) == [
        expected({0: 1.0, 4: 0.5}, "0"),
        expected({1: 2.0}, "1"),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [[1.0]]}, "Missing 'instances' key"),
        ({"instances": []}, "Request data format error"),
        ({"instances": [{"values": {"0": 1}}, [1.0]]}, "Expecting object but got list at item 1 of input list."),
        ({"instances": [[1.0], {"values": {"0": 1}}]}, "Expecting value/list but got object at item 1 of input list"),
        ({"instances": [{"sparseIndices": [1]}]}, "Json format error!"),
        ({"instances": [{"values": {"x1": 1.0}}]}, "feature key 'x1' is not an integer (DT_INT32)"),
        ({"instances": [{"values": {"1": "abc"}}]}, "the value 'abc' of feature '1' is not a number"),
        ({"instances": [{"values": {"12": 1.0}}]}, "feature index 12 is outside the model's dimension 10"),
        (b'{"instances": [', "Request data format error"),
        (b'{"instances": [{"sparseIndices": [1], "sparseValues": [1' + b"0" * 400 + b"]}]}", "out of the range of"),
    ],
)
def test_a_request_angel_cannot_predict_answers_a_clear_json_error(
    server: RunningServer, body: Any, message: str
) -> None:
    response = post(server, "/v1/models/lr:predict", body)
    assert response.status_code == 200
    assert message in response.json()["error"]


def test_an_error_message_with_quotes_is_valid_json(server: RunningServer) -> None:
    response = post(server, "/v1/models/lr:predict", {"instances": [{"values": {'say "hi"': 1.0}}]})
    assert response.json()["error"].startswith("item 0: feature key 'say \"hi\"'")


def test_classify_and_regress_answer_a_clear_error(server: RunningServer) -> None:
    for verb in ("classify", "regress"):
        response = post(server, f"/v1/models/lr:{verb}", {"instances": [[1.0]]})
        assert response.status_code == 200 and f":{verb}" in response.json()["error"]


def test_unknown_model_on_a_versioned_predict(server: RunningServer) -> None:
    response = post(server, "/v1/models/nope/versions/1:predict", {"instances": [[1.0]]})
    assert (response.status_code, response.json()) == (404, {"error": "Model with name nope does not exist."})


# -- metrics summary --------------------------------------------------------------------------------------


def test_metrics_summary_counts_at_once(server: RunningServer) -> None:
    before = requests.get(server.inference + "/monitoring/prometheus/metrics", timeout=10).json()
    old = before.get("models", {}).get("lr", {}).get("versions", {}).get("1", {})
    for _ in range(3):
        predictions(post(server, "/v1/models/lr:predict", {"instances": [[1.0]]}))
    body = requests.get(server.inference + "/monitoring/prometheus/metrics", timeout=10).json()
    entry = body["models"]["lr"]["versions"]["1"]
    assert entry["model_name"] == "lr" and entry["model_version"] == 1
    assert int(entry["prediction_count_total"]) == int(old.get("prediction_count_total", "0")) + 3
    assert int(entry["prediction_count_success"]) == int(old.get("prediction_count_success", "0")) + 3
    assert "prediction_count_failed" not in entry  # zero fields are left out, as proto3 JSON prints them
    assert isinstance(entry["total_predict_time_ms"], float) and entry["total_predict_time_ms"] > 0
    buckets = [int(entry.get(f"count_distribution{i}", "0")) for i in range(4)]
    assert sum(buckets) == int(entry["prediction_count_success"])
    assert all(isinstance(entry[key], str) for key in entry if key.startswith(("prediction_count", "count_dist")))


# -- one port, three protocols ------------------------------------------------------------------------------


def test_three_protocols_on_one_predict_path(server: RunningServer) -> None:
    angel = post(server, "/v1/models/lr:predict", {"instances": [[1.0]]})
    assert predictions(angel) == [expected({0: 1.0}, "0")]
    kserve = post(server, "/v1/models/kdummy:predict", {"instances": [[1, 2]]})
    assert (kserve.status_code, kserve.json()) == (200, {"predictions": [[1, 2]]})
    torchserve = post(server, "/v1/models/echo:predict", {"instances": [[1, 2]]})
    assert torchserve.status_code == 200 and torchserve.json() == {"instances": [[1, 2]]}


def test_status_bodies_by_protocol(server: RunningServer) -> None:
    kserve = requests.get(server.inference + "/v1/models/kdummy", timeout=10)
    assert kserve.status_code == 200 and kserve.json()["ready"] is True
    angel = requests.get(server.inference + "/v1/models/lr", timeout=10).json()
    assert angel["ready"] is True and angel["model_version_status"][0]["state"] == "AVAILABLE"


def test_a_name_with_quotes_and_non_ascii_stays_valid_json(server: RunningServer) -> None:
    body = {"instances": [{"values": [1.0], "key": 'q"\u00e9\\'}]}
    assert predictions(post(server, "/v1/models/lr:predict", body)) == [expected({0: 1.0}, 'q"\u00e9\\')]
