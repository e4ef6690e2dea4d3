"""MindSpore Serving's RESTful API through the real CLI and workers: every case of the spec's table (§5) with its
message, the success goldens, a TorchServe handler answering methods, MindSpore's own port, real status codes."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests

from tests.server import EXAMPLE_MODELS, TEST_MODELS, RunningServer, free_port, start_server

pytestmark = pytest.mark.e2e

LIMIT = 1048576


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("mindspore")
    port = free_port()
    properties = {"max_request_size": str(LIMIT), "mindspore_address": f"http://127.0.0.1:{port}"}
    models = {"add": EXAMPLE_MODELS / "add", "mshandler": TEST_MODELS / "mshandler", "msslow": TEST_MODELS / "msslow"}
    running = start_server(tmp, models, properties, wait_models=list(models))
    running.extra["mindspore"] = f"http://127.0.0.1:{port}"
    yield running
    assert running.stop() == 0


def post(server: RunningServer, path: str, body: Any, raw: bool = False, base: str | None = None) -> requests.Response:
    data = body if raw else json.dumps(body)
    return requests.post((base or server.inference) + path, data=data, timeout=30)


def call(server: RunningServer, method: str, instances: Any, model: str = "add") -> dict[str, Any]:
    response = post(server, f"/model/{model}:{method}", {"instances": instances})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def error_of(server: RunningServer, method: str, instances: Any) -> str:
    body = call(server, method, instances)
    assert set(body) == {"error_msg"}, body
    return body["error_msg"]


# -- success goldens --------------------------------------------------------------------------------


def test_add_common_answers_each_instance_in_order(server: RunningServer) -> None:
    instances = [{"x1": [[1.0, 2.0], [3.0, 4.0]], "x2": [[i, i], [i, i]]} for i in (0.5, 1.5, 2.5)]
    body = call(server, "add_common", instances)
    assert body == {"instances": [{"y": [[1 + i, 2 + i], [3 + i, 4 + i]]} for i in (0.5, 1.5, 2.5)]}


def test_add_cast_takes_int32_arrays(server: RunningServer) -> None:
    body = call(server, "add_cast", [{"x1": [[1, 2], [3, 4]], "x2": [[5, 6], [7, 8]]}])
    assert body == {"instances": [{"y": [[6.0, 8.0], [10.0, 12.0]]}]}


def test_str_concat(server: RunningServer) -> None:
    assert call(server, "str_concat", {"text1": "ABC", "text2": "123"}) == {"instances": [{"text": "ABC123"}]}


@pytest.mark.parametrize("form", [None, [1], []])
def test_str_concat_with_b64_text(server: RunningServer, form: list[int] | None) -> None:
    def text(value: str) -> dict[str, Any]:
        return {"b64": b64(value.encode()), "type": "str", **({"shape": form} if form is not None else {})}

    body = call(
        server, "str_concat", [{"text1": text("ABC"), "text2": text("123")}, {"text1": text(""), "text2": text("4")}]
    )
    assert body == {"instances": [{"text": "ABC123"}, {"text": "4"}]}


def test_str_empty_and_bytes_empty(server: RunningServer) -> None:
    """MindSpore's test servables answer the second text when the first is empty, else an empty one."""
    pairs = [("ABC", "123"), ("", "456"), ("HIJ", "789")]
    texts = call(server, "str_empty", [{"text1": a, "text2": b} for a, b in pairs])
    assert texts == {"instances": [{"text": ""}, {"text": "456"}, {"text": ""}]}
    raw = [{"text1": {"b64": b64(a.encode())}, "text2": {"b64": b64(b.encode())}} for a, b in pairs]
    assert call(server, "bytes_empty", raw) == {
        "instances": [{"text": {"b64": ""}}, {"text": {"b64": b64(b"456")}}, {"text": {"b64": ""}}]
    }


def test_int_plus_1_on_a_scalar_and_an_array(server: RunningServer) -> None:
    assert call(server, "int_plus_1", [{"int_val": 0}, {"int_val": [2, 2]}]) == {
        "instances": [{"value": 1}, {"value": [3, 3]}]
    }


@pytest.mark.parametrize(("shape", "expected"), [([0], []), ([1, 0], [[]])])
def test_b64_zero_size_shapes(server: RunningServer, shape: list[int], expected: list) -> None:
    value = {"b64": "", "type": "int32", "shape": shape}
    assert call(server, "int_plus_1", [{"int_val": value}]) == {"instances": [{"value": expected}]}


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"])
def test_b64_integer_types(server: RunningServer, dtype: str) -> None:
    array = np.array([[2, 4], [6, 8]], dtype=dtype)
    value = {"b64": b64(array.tobytes()), "type": dtype, "shape": [2, 2]}
    assert call(server, "int_plus_1", {"int_val": value}) == {"instances": [{"value": [[3, 5], [7, 9]]}]}


@pytest.mark.parametrize("dtype", ["fp16", "float16", "fp32", "float32", "fp64", "float64"])
def test_b64_float_types(server: RunningServer, dtype: str) -> None:
    array = np.array([0.0, 2.25, -4.5], dtype=dtype.replace("fp", "float"))
    value = {"b64": b64(array.tobytes()), "type": dtype, "shape": [3]}
    assert call(server, "float_plus_1", {"float_val": value}) == {"instances": [{"value": [1.0, 3.25, -3.5]}]}


def test_b64_bool_scalar_and_json_bools(server: RunningServer) -> None:
    instances = [{"bool_val": {"b64": b64(b"\x01"), "type": "bool"}}, {"bool_val": [[True, False]]}]
    assert call(server, "bool_not", instances) == {"instances": [{"value": False}, {"value": [[False, True]]}]}


def test_mix_all_type_golden(server: RunningServer) -> None:
    instance = {
        "float_val": {"b64": b64(np.array([2.2, 3.3], np.float32).tobytes()), "type": "fp32", "shape": [2]},
        "int_val": {"b64": b64(np.array([2, 3], np.int32).tobytes()), "type": "int32", "shape": [2]},
        "bool_val": {"b64": b64(np.array([True, False]).tobytes()), "type": "bool", "shape": [2]},
        "str_val": {"b64": b64(b"ABC"), "type": "str", "shape": []},
        "bytes_val": {"b64": b64(b"DEF"), "type": "bytes", "shape": []},
    }
    assert call(server, "mix_all_type", [instance]) == {
        "instances": [
            {
                "float_val": [3.2, 4.3],
                "int_val": [3, 4],
                "bool_val": [False, True],
                "str_val": "ABC123",
                "bytes_val": {"b64": b64(b"DEF456")},
            }
        ]
    }


def test_bytes_in_and_out_as_b64(server: RunningServer) -> None:
    body = call(server, "bytes_concat", [{"text1": {"b64": b64(b"AB")}, "text2": [{"b64": b64(b"\x00\xff")}]}])
    assert body == {"instances": [{"text": {"b64": b64(b"AB\x00\xff")}}]}


def test_extra_inputs_are_ignored(server: RunningServer) -> None:
    assert call(server, "int_plus_1", {"int_val": 1, "other": "x"}) == {"instances": [{"value": 2}]}


@pytest.mark.parametrize(
    "path",
    [
        "/model/add:int_plus_1",
        "/model/add/version/0:int_plus_1",
        "/model/add/version/1:int_plus_1",
    ],
)
def test_version_zero_absent_and_one(server: RunningServer, path: str) -> None:
    response = post(server, path, {"instances": [{"int_val": 41}]})
    assert response.json() == {"instances": [{"value": 42}]}


def test_the_reversed_form_on_mindspore_s_own_port(server: RunningServer) -> None:
    response = post(
        server, "/version/0/model/add:int_plus_1", {"instances": [{"int_val": 41}]}, base=server.extra["mindspore"]
    )
    assert response.json() == {"instances": [{"value": 42}]}


# -- request-level errors: the table -----------------------------------------------------------------


def test_not_post_and_empty_body(server: RunningServer) -> None:
    response = requests.get(server.inference + "/model/add:int_plus_1", timeout=10)
    assert (response.status_code, response.json()) == (200, {"error_msg": "http message only support POST right now"})
    response = post(server, "/model/add:int_plus_1", b"", raw=True)
    assert (response.status_code, response.json()) == (200, {"error_msg": "http message invalid"})


def test_a_body_over_the_limit(server: RunningServer) -> None:
    ones = np.ones([512, 1024], np.float32).tolist()
    response = post(server, "/model/add_error:add_common", {"instances": [{"x1": ones, "x2": ones}]})
    assert response.status_code == 200
    assert "http message is bigger than 1048576" in response.json()["error_msg"]


def test_a_body_still_arriving(server: RunningServer) -> None:
    """Sent chunked with a pause: the request reaches the dialect before its body, which is read when it is there."""

    def pieces() -> Iterator[bytes]:
        yield b'{"instances": [{"x1": 1, '
        time.sleep(0.2)
        yield b'"x2": 2}]}'

    response = requests.post(server.inference + "/model/add:add_cast", data=pieces(), timeout=30)
    assert response.status_code == 200
    assert response.json() == call(server, "add_cast", [{"x1": 1, "x2": 2}])


def test_a_body_that_is_not_json(server: RunningServer) -> None:
    response = post(server, "/model/add:int_plus_1", b"{not json", raw=True)
    assert (response.status_code, response.json()) == (200, {"error_msg": "Illegal JSON format"})


def test_url_errors(server: RunningServer) -> None:
    own = server.extra["mindspore"]
    response = post(server, "/x/:add_common", {"instances": [{"x1": 1}]}, base=own)
    assert "please check url, the keyword:[model] must contain" in response.json()["error_msg"]
    for base in (server.inference, own):
        body = post(server, "/model/add", {"instances": []}, base=base).json()
        assert "please check url, the keyword:[service method] must contain." in body["error_msg"]
    body = post(server, "/model/add/version/-1:add_common", {"instances": []}).json()
    assert "please check url, version number range failed" in body["error_msg"]
    body = post(server, "/model/add/version/abc:add_common", {"instances": []}).json()
    assert "the keyword:[version] value invalid, request version number abc" in body["error_msg"]


def test_mindspore_s_own_port_serves_the_same_calls(server: RunningServer) -> None:
    response = post(server, "/model/add:int_plus_1", {"instances": {"int_val": 1}}, base=server.extra["mindspore"])
    assert response.json() == {"instances": [{"value": 2}]}


def test_unknown_model_version_and_method(server: RunningServer) -> None:
    instances = {"instances": [{"x1": 1.0, "x2": 2.0}]}
    body = post(server, "/model/add_error:add_common", instances).json()
    assert body == {"error_msg": "Request servable(add_error) method(add_common) , servable is not available"}
    body = post(server, "/model/add/version/2:add_common", instances).json()
    assert body == {"error_msg": "Request servable(add) method(add_common) version(2) , servable is not available"}
    body = post(server, "/model/add:add_common_error", instances).json()
    assert "method is not available" in body["error_msg"]


def test_a_missing_input(server: RunningServer) -> None:
    message = error_of(server, "add_common", [{"x1": 1.0, "x2": 2.0}, {"x1": 1.0}])
    assert message == "Cannot find input x2 in instance input , servable add, method add_common"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": []}, "key 'instances' expects to exist once, but actually 0 times"),
        ({"instances": 1}, "instances no key mode is not supported"),
        ({"instances": [1, 2]}, "instances no key mode is not supported"),
        ({"instances": []}, "instances value is array type, but no value"),
        ({"instances": [{"": 1}]}, "string key is empty"),
    ],
)
def test_instances_errors(server: RunningServer, body: dict, message: str) -> None:
    response = post(server, "/model/add:int_plus_1", body)
    assert response.status_code == 200
    assert message in response.json()["error_msg"]


B64_ABC = b64(b"ABC")


@pytest.mark.parametrize(
    ("method", "value", "message"),
    [
        ("int_plus_1", [], "json array, shape is empty"),
        ("str_concat", ["a", "b"], "json array, string or bytes type only support one item"),
        ("bool_not", [[False], True], "invalid json array: json type is not array"),
        ("bool_not", [False, [True]], "json array, data should be number, bool, string or bytes"),
        ("bool_not", [[False, True], [True]], "invalid json array: json size is 1, the dim 1 expected to be 2"),
        ("bool_not", [[[False, True]], [[True]]], "invalid json array: json size is 1, the dim 2 expected to be 2"),
        ("bool_not", [True, 1], "json array, elements type is not equal"),
        ("bool_not", [1, 2.0], "json array, elements type is not equal"),
        ("bool_not", [1.5, 2], "json array, elements type is not equal"),
        ("bool_not", [1.5, "a"], "json array, elements type is not equal"),
        ("str_concat", ["a", 1.5], "string or bytes type only support one item"),
        ("str_concat", [{"b64": B64_ABC}, {"b64": B64_ABC}], "string or bytes type only support one item"),
        ("bool_not", [[True, False], [{"b64": ""}, True]], "json array, data should be number, bool, string or bytes"),
        (
            "str_concat",
            [["a"]],
            "bytes or string type input  shape can only be (1,) or empty, but given shape is [1, 1]",
        ),
        ("str_concat", {"type": "str"}, "'b64' should be specified only one time"),
        ("str_concat", {"b64": 1}, "get scalar data failed, type is string, but json is not string type"),
        ("str_concat", {"b64": "QUJ"}, "is illegal b64 encode string"),
        ("str_concat", {"b64": "QU*D"}, "is illegal b64 encode string"),
        (
            "float_plus_1",
            {"b64": "", "type": "fp16"},
            "decode base64 size:0; Given info: type:float16; type size:2; element nums:1",
        ),
        (
            "float_plus_1",
            {"b64": "", "type": "dtype_unknow"},
            "Parser request failed, json object, specified type:'dtype_unknow' is illegal",
        ),
        ("float_plus_1", {"b64": "", "type": ""}, "Parser request failed, json object, specified type:'' is illegal"),
        ("float_plus_1", {"b64": "", "type": 1}, "json object, key is 'type', value should be string type"),
        ("float_plus_1", {"b64": "AAA=", "type": "fp16", "shape": [2]}, "Parser request failed, size is not matched"),
        ("float_plus_1", {"b64": "", "type": "fp16", "shape": [1, 1]}, "Parser request failed, size is not matched"),
        *(
            (
                "float_plus_1",
                {"b64": "", "type": "fp16", "shape": bad},
                "key is 'shape', array value should be unsigned integer",
            )
            for bad in ([-1], [1.1], ["abc"], [[]])
        ),
        (
            "int_plus_1",
            {"b64": "", "type": "int32", "shape": [1, 2, 0, 1]},
            "json object, key is 'shape', invalid shape value",
        ),
        *(
            (
                "str_concat",
                {"b64": B64_ABC, "type": kind, "shape": bad},
                "json object, only support scalar when data type is string or bytes, please check 'type' or 'shape'",
            )
            for kind in ("str", "bytes")
            for bad in ([0], [2])
        ),
        ("str_concat", {"b64": B64_ABC, "size": 1}, "json object, key is not ['b64', 'type', 'shape'], fail key:size"),
        ("str_concat", {"b64": B64_ABC, "type": "str", "shape": [], "x": 1}, "json object, items size is more than 3"),
    ],
)
def test_value_errors(server: RunningServer, method: str, value: Any, message: str) -> None:
    inputs = {"add_common": ("x1", "x2"), "str_concat": ("text1", "text2")}.get(method)
    name = {"int_plus_1": "int_val", "bool_not": "bool_val", "float_plus_1": "float_val"}.get(method, "")
    instance = dict.fromkeys(inputs, value) if inputs else {name: value}
    text = error_of(server, method, [instance, instance])
    assert message in text


def test_the_server_keeps_serving_after_errors(server: RunningServer) -> None:
    assert call(server, "int_plus_1", {"int_val": 1}) == {"instances": [{"value": 2}]}


# -- a TorchServe handler answering methods ------------------------------------------------------


def test_a_torchserve_handler_gets_the_decoded_tensors_and_the_method(server: RunningServer) -> None:
    body = call(server, "double", [{"x": [1, 2]}, {"x": 1.5}], model="mshandler")
    assert body == {
        "instances": [
            {"y": [2, 4], "dtype": "int32", "method": "double"},
            {"y": 3.0, "dtype": "float32", "method": "double"},
        ]
    }


def test_a_failed_instance_answers_alone(server: RunningServer) -> None:
    body = call(server, "negative_fails", [{"x": [1]}, {"x": [-1]}, {"x": [2]}], model="mshandler")
    assert body["instances"][0]["y"] == [2] and body["instances"][2]["y"] == [4]
    assert set(body["instances"][1]) == {"error_msg"} and body["instances"][1]["error_msg"]


def test_a_servable_method_that_raises_fails_its_instance_alone(server: RunningServer) -> None:
    body = call(server, "fail", [{"x": 1}, {"x": -1}], model="msslow")
    assert body["instances"][0] == {"y": 2}
    assert body["instances"][1] == {"error_msg": "fail failed: ValueError: x must not be negative"}


def test_a_full_queue_answers_mindspore_s_message_for_the_instances_it_refused(server: RunningServer) -> None:
    body = call(server, "slow", [{"x": i} for i in range(5)], model="msslow")
    answers = body["instances"]
    assert {"y": 0} in answers
    refused = [each for each in answers if "error_msg" in each]
    assert refused and all(
        each == {"error_msg": "Serving Error: enqueued requests count exceeds the limit 1"} for each in refused
    )


def test_predict_is_a_method_like_any_other_and_add_does_not_declare_it(server: RunningServer) -> None:
    body = post(server, "/model/add:predict", {"instances": [{"x": 1}]}).json()
    assert "method is not available" in body["error_msg"]


# -- real status codes by configuration -----------------------------------------------------------


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("mindspore_status")
    running = start_server(tmp, {"add": EXAMPLE_MODELS / "add"}, {"mindspore_http_status": "true"}, wait_models=["add"])
    yield running
    assert running.stop() == 0


def test_mindspore_http_status_gives_errors_real_status_codes(strict: RunningServer) -> None:
    cases = [
        ("/model/nope:int_plus_1", {"instances": {"int_val": 1}}, 404),
        ("/model/add:nope", {"instances": {"int_val": 1}}, 404),
        ("/model/add:int_plus_1", {"instances": []}, 400),
        ("/model/add", {"instances": []}, 400),
    ]
    for path, body, status in cases:
        response = post(strict, path, body)
        assert response.status_code == status, (path, response.text)
        assert set(response.json()) == {"error_msg"}
    assert requests.get(strict.inference + "/model/add:int_plus_1", timeout=10).status_code == 405
    assert post(strict, "/model/add:int_plus_1", {"instances": {"int_val": 1}}).json() == {"instances": [{"value": 2}]}
