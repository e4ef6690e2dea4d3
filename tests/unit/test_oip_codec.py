"""Tests for modelserver/oip_codec.py: the V2 (Open Inference Protocol) REST codec.

Round trips with a request encoder written here the way tritonclient builds bodies, cross-checks with the real
clients' codecs (tritonclient.http, kserve) when they are installed, every error path, and fuzzing.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelserver.oip_codec import (
    MAX_DEPTH,
    MAX_RANK,
    EncodedResponse,
    OIPError,
    RequestedOutput,
    V2Request,
    decode_request,
    encode_error,
    encode_json,
    encode_response,
)
from workers.datatypes import DATATYPES, ITEMSIZE
from workers.tensors import Tensor

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIPS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
RESERVED = {"binary_data_size", "binary_data", "binary_data_output", "shared_memory_region"}


# --- a client-side encoder and response parser, written here ------------------------------------


def nest(flat: list[Any], shape: tuple[int, ...]) -> Any:
    """Flat row-major values as nested lists of ``shape`` (a scalar shape gives the bare value)."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = math.prod(shape[1:])
    return [nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def json_values(tensor: Tensor) -> list[Any]:
    values = tensor.to_list()
    return [value.decode("utf-8") for value in values] if tensor.datatype == "BYTES" else values


def encode_request(
    inputs: list[Tensor],
    binary: list[bool],
    *,
    outputs: list[dict[str, Any]] | None = None,
    parameters: dict[str, Any] | None = None,
    request_id: str | None = None,
    nested: bool = False,
) -> tuple[bytes, str | None]:
    """A request body as tritonclient builds one: the JSON, then the binary inputs' data in input order; the
    header length only when some input is binary."""
    document: dict[str, Any] = {}
    if request_id is not None:
        document["id"] = request_id
    entries = []
    blobs = []
    for tensor, as_binary in zip(inputs, binary, strict=True):
        entry: dict[str, Any] = {"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype}
        extra = dict(tensor.parameters or {})
        if as_binary:
            extra["binary_data_size"] = len(tensor.data)
            blobs.append(bytes(tensor.data))
        if extra:
            entry["parameters"] = extra
        if not as_binary:
            flat = json_values(tensor)
            entry["data"] = nest(flat, tensor.shape) if nested else flat
        entries.append(entry)
    document["inputs"] = entries
    if outputs is not None:
        document["outputs"] = outputs
    if parameters:
        document["parameters"] = parameters
    header = json.dumps(document).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), str(len(header))


def joined(encoded: EncodedResponse) -> bytes:
    return b"".join(bytes(part) for part in encoded.parts)


def parse_response(encoded: EncodedResponse) -> tuple[dict[str, Any], list[Tensor], list[bool]]:
    """The response JSON, its outputs as tensors, and which outputs were binary."""
    body = joined(encoded)
    length = len(body) if encoded.header_length is None else encoded.header_length
    document = json.loads(body[:length])
    offset = length
    tensors, modes = [], []
    for output in document["outputs"]:
        extra = dict(output.get("parameters", {}))
        assert extra or "parameters" not in output  # never an empty parameters object
        if "binary_data_size" in extra:
            assert "data" not in output
            size = extra.pop("binary_data_size")
            data = body[offset : offset + size]
            offset += size
            tensors.append(Tensor(output["name"], output["datatype"], output["shape"], data, extra or None))
            modes.append(True)
        else:
            values = output["data"]
            if output["datatype"] == "BYTES":
                values = [value.encode("utf-8") for value in values]
            tensor = Tensor.from_list(output["name"], output["datatype"], output["shape"], values, extra or None)
            tensors.append(tensor)
            modes.append(False)
    assert offset == len(body)
    return document, tensors, modes


# --- strategies ----------------------------------------------------------------------------------


def _bf16(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits << 16))[0]


def elements(datatype: str) -> st.SearchStrategy[Any]:
    if datatype == "BOOL":
        return st.booleans()
    if "INT" in datatype:
        bits = 8 * ITEMSIZE[datatype]
        if datatype.startswith("U"):
            return st.integers(0, 2**bits - 1)
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if datatype == "FP16":
        return st.floats(width=16, allow_nan=False)
    if datatype == "FP32":
        return st.floats(width=32, allow_nan=False)
    if datatype == "FP64":
        return st.floats(allow_nan=False)
    if datatype == "BF16":  # every bit pattern but a NaN, so the values are exact
        return st.integers(0, 0xFFFF).filter(lambda bits: bits & 0x7FFF <= 0x7F80).map(_bf16)
    return st.binary(max_size=6) | st.text(max_size=5)


parameter_values = st.text(max_size=5) | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False)
parameter_maps = st.dictionaries(
    st.text(max_size=6).filter(lambda key: key not in RESERVED), parameter_values, max_size=3
)


@st.composite
def tensors(draw: st.DrawFn, name: str) -> Tensor:
    datatype = draw(st.sampled_from(DATATYPES))
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    values = draw(st.lists(elements(datatype), min_size=math.prod(shape), max_size=math.prod(shape)))
    return Tensor.from_list(name, datatype, shape, values, draw(parameter_maps) or None)


def utf8(tensor: Tensor) -> bool:
    """True if the tensor can be JSON (every BYTES element is UTF-8)."""
    if tensor.datatype != "BYTES":
        return True
    try:
        json_values(tensor)
    except UnicodeDecodeError:
        return False
    return True


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=4, unique=True))
    inputs = [draw(tensors(name)) for name in names]
    binary = [draw(st.booleans()) or not utf8(tensor) for tensor in inputs]
    parameters = draw(parameter_maps)
    default = draw(st.sampled_from([None, False, True]))
    if default is not None:
        parameters["binary_data_output"] = default
    outputs = None
    if draw(st.booleans()):
        chosen = draw(st.permutations(names))[: draw(st.integers(1, len(names)))]
        outputs = []
        for name in chosen:
            entry: dict[str, Any] = {"name": name}
            flag = draw(st.sampled_from([None, False, True]))
            extra = draw(parameter_maps)
            if flag is not None:
                extra["binary_data"] = flag
            if extra:
                entry["parameters"] = extra
            outputs.append(entry)
    return {
        "inputs": inputs,
        "binary": binary,
        "parameters": parameters,
        "outputs": outputs,
        "request_id": draw(st.none() | st.text(max_size=8)),
        "nested": draw(st.booleans()),
        "body_type": draw(st.sampled_from([bytes, bytearray, memoryview])),
        "force_header": draw(st.booleans()),
    }


# --- round trips ---------------------------------------------------------------------------------


@ROUND_TRIPS
@given(case=cases(), version=st.none() | st.just("3"), response_parameters=parameter_maps)
def test_round_trip_request_and_response(
    case: dict[str, Any], version: str | None, response_parameters: dict[str, Any]
) -> None:
    inputs: list[Tensor] = case["inputs"]
    raw, header = encode_request(
        inputs,
        case["binary"],
        outputs=case["outputs"],
        parameters=case["parameters"],
        request_id=case["request_id"],
        nested=case["nested"],
    )
    if header is None and case["force_header"]:
        header = str(len(raw))  # the header without binary data is allowed too
    body = case["body_type"](raw)
    request = decode_request(body, header, "application/octet-stream" if header else "application/json")

    assert isinstance(request, V2Request)
    assert request.id == case["request_id"]
    assert request.parameters == case["parameters"]
    default = case["parameters"].get("binary_data_output", False)
    assert request.binary_output_default is default
    assert request.inputs == inputs  # values, shapes, datatypes, parameters without binary_data_size
    assert request.binary_inputs == [t.name for t, b in zip(inputs, case["binary"], strict=True) if b]
    for tensor, as_binary in zip(request.inputs, case["binary"], strict=True):
        if as_binary:  # a zero-copy slice of the body
            assert isinstance(tensor.data, memoryview)
            assert tensor.data.obj is (body.obj if isinstance(body, memoryview) else body)
    if case["outputs"] is None:
        assert request.outputs is None
    else:
        assert [(output.name, output.parameters) for output in request.outputs] == [
            (entry["name"], entry.get("parameters", {})) for entry in case["outputs"]
        ]
        assert [output.binary for output in request.outputs] == [
            entry.get("parameters", {}).get("binary_data") for entry in case["outputs"]
        ]

    # the model echoes its inputs; the response follows the requested outputs and the precedence table
    by_name = {tensor.name: tensor for tensor in request.inputs}
    if request.outputs is None:
        expected = [(tensor, default) for tensor in request.inputs]
    else:
        expected = [
            (by_name[output.name], default if output.binary is None else output.binary) for output in request.outputs
        ]
    args = ("model", version, request.id or "server-id", response_parameters, request.inputs, request.outputs, default)
    if any(not binary and not utf8(tensor) for tensor, binary in expected):
        with pytest.raises(OIPError, match="is not valid UTF-8, so it cannot be sent as JSON"):
            encode_response(*args)
        return
    encoded = encode_response(*args)
    document, outputs, modes = parse_response(encoded)
    assert outputs == [tensor for tensor, _ in expected]
    assert modes == [binary for _, binary in expected]
    assert document["model_name"] == "model"
    assert document["id"] == (request.id or "server-id")
    assert document.get("model_version") == version and ("model_version" in document) == (version is not None)
    assert document.get("parameters", {}) == response_parameters
    assert ("parameters" in document) == bool(response_parameters)
    if any(modes):
        assert encoded.content_type == "application/octet-stream"
        assert encoded.header_length == len(encoded.parts[0])
        blobs = [tensor.data for (tensor, binary) in expected if binary and len(tensor.data)]
        assert len(encoded.parts) == 1 + len(blobs)
        assert all(part is blob for part, blob in zip(encoded.parts[1:], blobs, strict=True))  # not copied
    else:
        assert encoded.content_type == "application/json"
        assert encoded.header_length is None and len(encoded.parts) == 1
    assert encoded.body_length == len(joined(encoded))


@pytest.mark.parametrize("listed", [False, True])
@pytest.mark.parametrize("default", [None, False, True])
@pytest.mark.parametrize("flag", [None, False, True])
def test_binary_output_precedence(listed: bool, default: bool | None, flag: bool | None) -> None:
    """The output's own binary_data, else the request's binary_data_output, else JSON (spec and Triton; KServe
    ignores binary_data_output for a listed output without its own flag)."""
    document: dict[str, Any] = {"inputs": [{"name": "x", "shape": [2], "datatype": "INT32", "data": [1, 2]}]}
    if default is not None:
        document["parameters"] = {"binary_data_output": default}
    if listed:
        document["outputs"] = [{"name": "x"} if flag is None else {"name": "x", "parameters": {"binary_data": flag}}]
    request = decode_request(json.dumps(document).encode(), None, "application/json")
    encoded = encode_response("m", None, "id", None, request.inputs, request.outputs, request.binary_output_default)
    own = flag if listed else None
    binary = own if own is not None else bool(default)
    assert parse_response(encoded)[2] == [binary]
    assert (encoded.header_length is not None) == binary


def test_requested_outputs_pick_and_order() -> None:
    a = Tensor.from_list("a", "INT32", [1], [1])
    b = Tensor.from_list("b", "FP32", [1], [2.5], {"note": "kept"})
    c = Tensor.from_list("c", "BYTES", [1], [b"c"])
    requested = [RequestedOutput("c", {}, None), RequestedOutput("a", {"binary_data": True}, True)]
    encoded = encode_response("m", "1", "r", {"p": 1}, [a, b, c], requested, False)
    document, outputs, modes = parse_response(encoded)
    assert [tensor.name for tensor in outputs] == ["c", "a"] and modes == [False, True]
    assert document["model_version"] == "1" and document["parameters"] == {"p": 1}
    everything = parse_response(encode_response("m", None, "r", {}, [a, b, c], None, False))
    assert everything[1] == [a, b, c] and everything[0]["outputs"][1]["parameters"] == {"note": "kept"}


def test_binary_data_size_an_output_carries_is_replaced_or_dropped() -> None:
    tensor = Tensor.from_list("y", "INT8", [2], [1, 2], {"binary_data_size": 99, "k": "v"})
    as_json = json.loads(joined(encode_response("m", None, "r", None, [tensor], None, False)))
    assert as_json["outputs"][0]["parameters"] == {"k": "v"}
    binary = encode_response("m", None, "r", None, [tensor], None, True)
    assert json.loads(binary.parts[0])["outputs"][0]["parameters"] == {"k": "v", "binary_data_size": 2}


# --- datatypes and shapes ------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_fp16_and_bf16(binary: bool) -> None:
    fp16 = [6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6]
    half = Tensor.from_list("half", "FP16", [2, 4], fp16)
    brain = Tensor.from_list("brain", "BF16", [3], [1.0, -2.5, 3.140625])
    body, header = encode_request([half, brain], [binary, binary], nested=True)
    request = decode_request(body, header, "application/json")
    # KServe's FP16 golden (K13): the FP16 values widened exactly
    widened = [6.80078125, 2.80078125, 4.80078125, 1.400390625, 6.0, 3.400390625, 4.5, 1.599609375]
    assert request.inputs[0].to_list() == widened
    assert request.inputs[1].to_list() == [1.0, -2.5, 3.140625]
    document, outputs, modes = parse_response(encode_response("m", None, "r", None, request.inputs, None, binary))
    assert outputs == [half, brain] and modes == [binary, binary]
    if not binary:
        assert document["outputs"][0]["data"] == widened


def test_bf16_json_rounds_to_nearest() -> None:
    document = {"inputs": [{"name": "b", "shape": [2], "datatype": "BF16", "data": [1.00390625, 3.14159]}]}
    request = decode_request(json.dumps(document).encode(), None, "application/json")
    assert request.inputs[0].to_list() == [1.0, 3.140625]


def test_bytes_framing_with_non_utf8_in_binary_mode() -> None:
    elements = [b"\xff\xfe", b"", "héllo".encode(), b"\x00\x80"]
    tensor = Tensor.from_list("s", "BYTES", [2, 2], elements)
    body, header = encode_request([tensor], [True])
    request = decode_request(body, header, "application/octet-stream")
    assert request.inputs[0].to_list() == elements
    assert bytes(request.inputs[0].data) == b"".join(struct.pack("<I", len(e)) + e for e in elements)
    encoded = encode_response("m", None, "r", None, request.inputs, None, True)
    assert parse_response(encoded)[1] == [tensor]
    with pytest.raises(OIPError) as caught:
        encode_response("m", None, "r", None, request.inputs, None, False)
    assert str(caught.value) == (
        "output 's': BYTES element 0 is not valid UTF-8, so it cannot be sent as JSON; request the output with "
        "parameters.binary_data: true (or the request parameter binary_data_output: true)"
    )


@pytest.mark.parametrize("shape", [[0], [2, 0], [0, 3], []])
@pytest.mark.parametrize("datatype", DATATYPES)
@pytest.mark.parametrize("binary", [False, True])
def test_zero_size_and_scalar_shapes(shape: list[int], datatype: str, binary: bool) -> None:
    sample = {"BOOL": True, "BYTES": b"x", "FP16": 1.5, "FP32": 1.5, "FP64": 1.5, "BF16": 1.5}.get(datatype, 7)
    tensor = Tensor.from_list("t", datatype, shape, [sample] * math.prod(shape))
    body, header = encode_request([tensor], [binary])
    request = decode_request(body, header, "application/json")
    assert request.inputs == [tensor]
    _, outputs, modes = parse_response(encode_response("m", None, "r", None, request.inputs, None, binary))
    assert outputs == [tensor] and modes == [binary]


def test_scalar_as_a_bare_value_or_a_one_element_list() -> None:
    for data in (5, [5], [[5]]):
        document = {"inputs": [{"name": "s", "shape": [], "datatype": "INT64", "data": data}]}
        request = decode_request(json.dumps(document).encode(), None, "application/json")
        assert request.inputs[0].shape == () and request.inputs[0].to_list() == [5]


def test_nesting_is_free_but_the_count_is_checked() -> None:
    for data in ([[1, 2], [3, 4]], [1, 2, 3, 4], [[1], [2, 3], 4], [[[1, 2, 3, 4]]]):
        document = {"inputs": [{"name": "a", "shape": [2, 2], "datatype": "INT32", "data": data}]}
        request = decode_request(json.dumps(document).encode(), None, "application/json")
        assert request.inputs[0].to_list() == [1, 2, 3, 4]


def test_nan_and_infinity() -> None:
    """Accepted as Python's json and rapidjson write them, and written the same way in JSON responses."""
    body = b'{"inputs":[{"name":"f","shape":[3],"datatype":"FP32","data":[NaN,Infinity,-Infinity]}]}'
    request = decode_request(body, None, "application/json")
    values = request.inputs[0].to_list()
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]
    encoded = joined(encode_response("m", None, "r", None, request.inputs, None, False))
    assert b'"data":[NaN,Infinity,-Infinity]' in encoded


def test_lenient_forms() -> None:
    """null for an optional field, outputs [], unknown fields (KServe's client sends model_name), spaces."""
    document = {
        "model_name": "m",
        "id": None,
        "parameters": None,
        "inputs": [{"name": "a", "shape": [1], "datatype": "UINT8", "data": [1], "parameters": None, "x": 1}],
        "outputs": [],
    }
    request = decode_request(json.dumps(document, indent=2).encode(), None, "text/plain")
    assert request == V2Request(None, {}, [Tensor.from_list("a", "UINT8", [1], [1])], None, False)


def test_header_length_is_the_json_length_whatever_the_content_type() -> None:
    tensor = Tensor.from_list("a", "FP64", [2], [1.5, -2.0])
    body, header = encode_request([tensor], [True])
    for content_type in ("application/json", "application/octet-stream", "", "text/plain"):
        assert decode_request(body, header, content_type).inputs == [tensor]
        assert decode_request(body, f" {header}\t", content_type).inputs == [tensor]
    json_only = json.dumps({"inputs": [{"name": "a", "shape": [1], "datatype": "INT8", "data": [1]}]}).encode()
    assert decode_request(json_only, str(len(json_only)), "application/octet-stream").inputs[0].to_list() == [1]


# --- error paths ---------------------------------------------------------------------------------


def _doc(**fields: Any) -> bytes:
    document = {"inputs": [{"name": "a", "shape": [2], "datatype": "INT32", "data": [1, 2]}]}
    document.update(fields)
    return json.dumps(document).encode()


def _input(**fields: Any) -> bytes:
    entry: dict[str, Any] = {"name": "a", "shape": [2], "datatype": "INT32", "data": [1, 2]}
    entry.update(fields)
    return json.dumps({"inputs": [{k: v for k, v in entry.items() if v is not ...}]}).encode()


def _binary(datatype: str, shape: list[int], size: Any, raw: bytes, **fields: Any) -> tuple[bytes, str]:
    """A binary request of one input "a" (``fields`` added to it) and its header length."""
    entry = {"name": "a", "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}, **fields}
    header = json.dumps({"inputs": [entry]}).encode()
    return header + raw, str(len(header))


BAD_JSON_HEADER, BAD_JSON_HEADER_LENGTH = _binary("INT8", [2], 2, b"\x01\x02")
ERRORS: list[tuple[str, bytes, str | None, str]] = [
    ("empty", b"", None, "the request body is empty"),
    ("empty header", b"{}", "0", "the JSON header (Inference-Header-Content-Length: 0) is empty"),
    ("header not a number", b"{}", "abc", "Inference-Header-Content-Length must be a non-negative integer, got 'abc'"),
    ("negative header", b"{}", "-1", "Inference-Header-Content-Length must be a non-negative integer, got '-1'"),
    ("signed header", b"{}", "+1", "must be a non-negative integer, got '+1'"),
    ("non-ASCII digits", b"{}", "\u0662", "must be a non-negative integer"),
    ("empty header value", b"{}", "", "must be a non-negative integer, got ''"),
    ("header too long", b"{}", "3", "Inference-Header-Content-Length is 3 but the body has only 2 byte(s)"),
    ("not UTF-8", b'{"a":"\xff"}', None, "the request body is not valid UTF-8 (invalid start byte at byte 6)"),
    ("UTF-16", '{"inputs":[]}'.encode("utf-16"), None, "the request body is not valid UTF-8"),
    ("bad JSON", b"{", None, "the request body is not valid JSON: Expecting property name enclosed in double quotes"),
    ("BOM", '\ufeff{"inputs":[]}'.encode(), None, "the request body is not valid JSON: Unexpected UTF-8 BOM"),
    ("huge integer", b'{"id":' + b"9" * 5000 + b"}", None, "the request body is not valid JSON: Exceeds the limit"),
    (
        "binary without the header",
        BAD_JSON_HEADER,
        None,
        f"the request body is not valid JSON: Extra data: line 1 column {int(BAD_JSON_HEADER_LENGTH) + 1} "
        f"(char {BAD_JSON_HEADER_LENGTH}) (binary tensor data needs the Inference-Header-Content-Length header)",
    ),
    ("not an object", b"[1]", None, "the request body must be a JSON object, got an array"),
    ("header not an object", b"[1]", "3", "the JSON header (Inference-Header-Content-Length: 3) must be a JSON object"),
    ("id", _doc(id=5), None, "'id' must be a string, got a number"),
    ("parameters", _doc(parameters=[1]), None, "'parameters' must be an object, got an array"),
    ("parameter value", _doc(parameters={"k": [1]}), None, "'parameters': 'k' must be a string, number or boolean"),
    (
        "parameter null",
        _doc(parameters={"k": None}),
        None,
        "'parameters': 'k' must be a string, number or boolean, got null",
    ),
    (
        "binary_data_output",
        _doc(parameters={"binary_data_output": "true"}),
        None,
        "parameters.binary_data_output must be a boolean, got a string",
    ),
    ("no inputs", b"{}", None, "the request has no 'inputs'"),
    ("inputs null", b'{"inputs":null}', None, "the request has no 'inputs'"),
    ("inputs not a list", b'{"inputs":{}}', None, "'inputs' must be an array, got an object"),
    ("inputs empty", b'{"inputs":[]}', None, "'inputs' must not be empty"),
    ("input not an object", b'{"inputs":[1]}', None, "inputs[0] must be an object, got a number"),
    ("no name", _input(name=...), None, "inputs[0].name must be a string, got null"),
    ("name not a string", _input(name=["a"]), None, "inputs[0].name must be a string, got an array"),
    (
        "datatype case",
        _input(datatype="int32"),
        None,
        "input 'a': unknown datatype 'int32' (datatypes are case-sensitive)",
    ),
    ("datatype unknown", _input(datatype="FLOAT"), None, "input 'a': unknown datatype 'FLOAT'; known: BOOL, UINT8"),
    ("no datatype", _input(datatype=...), None, "input 'a': unknown datatype null"),
    (
        "no shape",
        _input(shape=...),
        None,
        "input 'a': shape must be an array of non-negative integers (below 2**63), got null",
    ),
    (
        "negative dim",
        _input(shape=[-1]),
        None,
        "shape must be an array of non-negative integers (below 2**63), got [-1]",
    ),
    ("bool dim", _input(shape=[True]), None, "got [true]"),
    ("float dim", _input(shape=[2.0]), None, "got [2.0]"),
    ("huge dim", _input(shape=[2**63]), None, "got [9223372036854775808]"),
    ("rank", _input(shape=[1] * (MAX_RANK + 1)), None, "input 'a': shape has 65 dimensions; at most 64 are accepted"),
    ("input parameters", _input(parameters="x"), None, "input 'a' parameters must be an object, got a string"),
    (
        "input parameter",
        _input(parameters={"k": {}}),
        None,
        "input 'a' parameters: 'k' must be a string, number or boolean, got an object",
    ),
    (
        "shared memory",
        _input(parameters={"shared_memory_region": "r"}),
        None,
        "input 'a': shared memory (parameters.shared_memory_region) is not supported",
    ),
    (
        "no data",
        _input(data=...),
        None,
        "input 'a' has no data: give 'data', or binary data with parameters.binary_data_size",
    ),
    ("data null", _input(data=None), None, "input 'a' has no data"),
    ("count", _input(shape=[2, 2], data=[1, 2, 3]), None, "input 'a': 3 element(s) given, shape [2, 2] needs 4"),
    ("string in INT32", _input(data=["1", 2]), None, "input 'a': element 0 (str '1') is not valid for INT32"),
    ("bool in INT32", _input(data=[1, True]), None, "input 'a': element 1 (bool True) is not valid for INT32"),
    (
        "int in BOOL",
        _input(datatype="BOOL", data=[True, 1]),
        None,
        "input 'a': element 1 (int 1) is not valid for BOOL",
    ),
    ("float in INT64", _input(datatype="INT64", data=[1.0, 2]), None, "element 0 (float 1.0) is not valid for INT64"),
    ("null element", _input(data=[1, None]), None, "element 1 (NoneType None) is not valid for INT32"),
    ("object element", _input(data=[1, {"x": 1}]), None, "element 1 (dict {'x': 1}) is not valid for INT32"),
    ("range", _input(datatype="UINT8", data=[1, 256]), None, "input 'a': 256 is out of range for UINT8 (0..255)"),
    ("FP16 range", _input(datatype="FP16", data=[1.0, 1e6]), None, "input 'a': 1000000.0 is out of range for FP16"),
    ("number in BYTES", _input(datatype="BYTES", data=["x", 1]), None, "element 1 (int 1) is not valid for BYTES"),
    (
        "lone surrogate in BYTES",
        _input(datatype="BYTES", data=["x", "\ud800"]),
        None,
        "input 'a': BYTES element '\\ud800' is not encodable as UTF-8",
    ),
    ("string in FP32", _input(datatype="FP32", data=["1.5", 1]), None, "element 0 (str '1.5') is not valid for FP32"),
    (
        "too deep",
        _input(shape=[1], data=json.loads("[" * (MAX_DEPTH + 1) + "1" + "]" * (MAX_DEPTH + 1))),
        None,
        "input 'a': data is nested more than 64 levels deep",
    ),
    (
        "far too deep",
        b'{"inputs":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        None,
        "the request body is nested too deeply to be parsed",
    ),
    (
        "duplicate input",
        json.dumps({"inputs": [json.loads(_input())["inputs"][0]] * 2}).encode(),
        None,
        "input 'a' is given twice",
    ),
    ("outputs not a list", _doc(outputs={}), None, "'outputs' must be an array, got an object"),
    ("output not an object", _doc(outputs=[1]), None, "outputs[0] must be an object, got a number"),
    ("output name", _doc(outputs=[{"name": 1}]), None, "outputs[0].name must be a string, got a number"),
    (
        "output parameters",
        _doc(outputs=[{"name": "y", "parameters": 1}]),
        None,
        "requested output 'y' parameters must be an object, got a number",
    ),
    (
        "binary_data",
        _doc(outputs=[{"name": "y", "parameters": {"binary_data": "true"}}]),
        None,
        "requested output 'y': parameters.binary_data must be a boolean, got a string",
    ),
    (
        "binary_data number",
        _doc(outputs=[{"name": "y", "parameters": {"binary_data": 1}}]),
        None,
        "must be a boolean, got a number",
    ),
    (
        "output shared memory",
        _doc(outputs=[{"name": "y", "parameters": {"shared_memory_region": "r"}}]),
        None,
        "requested output 'y': shared memory",
    ),
    ("duplicate output", _doc(outputs=[{"name": "y"}, {"name": "y"}]), None, "requested output 'y' is requested twice"),
    (
        "binary without header",
        _binary("INT8", [2], 2, b"")[0],
        None,
        "input 'a' has parameters.binary_data_size but the request has no Inference-Header-Content-Length header",
    ),
    (
        "data and binary",
        *_binary("INT8", [2], 2, b"\x01\x02", data=[1, 2]),
        "input 'a' has both 'data' and parameters.binary_data_size; give one",
    ),
    (
        "size negative",
        *_binary("INT8", [2], -1, b""),
        "input 'a': parameters.binary_data_size must be a non-negative integer",
    ),
    (
        "size string",
        *_binary("INT8", [2], "2", b"\x01\x02"),
        "input 'a': parameters.binary_data_size must be a non-negative integer",
    ),
    ("size bool", *_binary("INT8", [1], True, b"\x01"), "parameters.binary_data_size must be a non-negative integer"),
    (
        "too few bytes",
        *_binary("INT8", [4], 4, b"\x01\x02"),
        "input 'a': binary_data_size is 4 but only 2 byte(s) of binary data remain",
    ),
    (
        "too many bytes",
        *_binary("INT8", [2], 2, b"\x01\x02\x03"),
        "1 byte(s) follow the binary data of the inputs: the binary_data_size parameters add up to 2 of the 3 byte(s) "
        "after the JSON header",
    ),
    ("wrong size", *_binary("FP32", [2], 6, b"\x00" * 6), "input 'a': FP32 data is 6 bytes, shape [2] needs 8 (2 x 4)"),
    ("BOOL bytes", *_binary("BOOL", [2], 2, b"\x01\x02"), "input 'a': BOOL data must be bytes 0 or 1"),
    (
        "BYTES truncated",
        *_binary("BYTES", [1], 5, b"\x05\x00\x00\x00a"),
        "input 'a': BYTES data is truncated: element 0",
    ),
    (
        "BYTES count",
        *_binary("BYTES", [2], 5, b"\x01\x00\x00\x00a"),
        "input 'a': BYTES data holds 1 element(s), shape [2] needs 2",
    ),
    (
        "BYTES extra",
        *_binary("BYTES", [1], 10, b"\x01\x00\x00\x00a\x01\x00\x00\x00b"),
        "BYTES data holds more than 1 element(s)",
    ),
    (
        "JSON header cut",
        BAD_JSON_HEADER,
        str(int(BAD_JSON_HEADER_LENGTH) - 1),
        f"the JSON header (Inference-Header-Content-Length: {int(BAD_JSON_HEADER_LENGTH) - 1}) is not valid JSON: ",
    ),
]


@pytest.mark.parametrize(("body", "header", "message"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_errors(body: bytes, header: str | None, message: str) -> None:
    with pytest.raises(OIPError) as caught:
        decode_request(body, header, "application/octet-stream" if "binary tensor" in message else "application/json")
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert len(str(caught.value)) <= 400


def test_bounds_on_tensors() -> None:
    entry = {"name": "a", "shape": [1], "datatype": "INT8", "data": [1]}
    many = [dict(entry, name=str(i)) for i in range(3)]
    decode_request(json.dumps({"inputs": many}).encode(), None, "", max_tensors=3)
    with pytest.raises(OIPError, match=r"^the request has 3 inputs; at most 2 are accepted$"):
        decode_request(json.dumps({"inputs": many}).encode(), None, "", max_tensors=2)
    outputs = [{"name": str(i)} for i in range(3)]
    with pytest.raises(OIPError, match=r"^the request has 3 outputs; at most 2 are accepted$"):
        decode_request(json.dumps({"inputs": [entry], "outputs": outputs}).encode(), None, "", max_tensors=2)


def test_deepest_accepted_nesting() -> None:
    data: Any = 1
    for _ in range(MAX_DEPTH):
        data = [data]
    document = {"inputs": [{"name": "a", "shape": [1] * MAX_RANK, "datatype": "INT8", "data": data}]}
    assert decode_request(json.dumps(document).encode(), None, "").inputs[0].to_list() == [1]


def test_long_messages_are_cut() -> None:
    document = {"inputs": [{"name": "a", "shape": [1], "datatype": "INT8", "data": ["x" * 10_000]}]}
    with pytest.raises(OIPError) as caught:
        decode_request(json.dumps(document).encode(), None, "")
    assert len(str(caught.value)) == 400 and str(caught.value).endswith("...")


def test_unknown_requested_output_uses_kserves_message() -> None:
    tensor = Tensor.from_list("y", "INT8", [1], [1])
    with pytest.raises(OIPError) as caught:
        encode_response("mymodel", None, "r", None, [tensor], [RequestedOutput("zz", {}, None)], False)
    assert str(caught.value) == "Unexpected inference output 'zz' for model 'mymodel'"


def test_encode_error_and_json() -> None:
    assert encode_error("bad \u00e9") == b'{"error":"bad \\u00e9"}'
    assert json.loads(encode_error('quote " and \\')) == {"error": 'quote " and \\'}
    assert encode_json({"a": [1, 2], "b": None}) == b'{"a":[1,2],"b":null}'


def test_unicode_names_keep_the_header_length_in_bytes() -> None:
    tensor = Tensor.from_list("é\U0001f600", "INT8", [1], [1], {"ü": "ß"})
    encoded = encode_response("模型", None, "ид", None, [tensor], None, True)
    assert encoded.header_length == len(encoded.parts[0])
    assert parse_response(encoded)[1] == [tensor]


# --- fuzzing -------------------------------------------------------------------------------------


def _decode_or_oip_error(body: Any, header: str | None, content_type: str = "application/json") -> None:
    with contextlib.suppress(OIPError):
        decode_request(body, header, content_type)


@FUZZ
@given(body=st.binary(max_size=200), header=st.none() | st.text(max_size=6) | st.integers(0, 210).map(str))
def test_fuzz_random_bytes(body: bytes, header: str | None) -> None:
    _decode_or_oip_error(body, header)


json_values_strategy = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["id", "parameters", "inputs", "outputs", "name", "shape", "datatype", "data", "binary_data_size"]


@FUZZ
@given(case=cases(), mutations=st.lists(st.tuples(st.sampled_from(FIELDS), json_values_strategy), max_size=3))
def test_fuzz_structured(case: dict[str, Any], mutations: list[tuple[str, Any]]) -> None:
    """Valid requests with fields replaced by random JSON values: decoded, or refused with OIPError."""
    raw, header = encode_request(case["inputs"], case["binary"], outputs=case["outputs"], parameters=case["parameters"])
    length = len(raw) if header is None else int(header)
    document = json.loads(raw[:length])
    for field, value in mutations:
        if field in ("id", "parameters", "inputs", "outputs"):
            document[field] = value
        elif isinstance(document.get("inputs"), list) and document["inputs"]:
            target = document["inputs"][0]
            if isinstance(target, dict):
                if field == "binary_data_size":
                    target["parameters"] = {"binary_data_size": value}
                else:
                    target[field] = value
    new_header = json.dumps(document).encode()
    _decode_or_oip_error(new_header + raw[length:], str(len(new_header)) if header else None)


@FUZZ
@given(case=cases(), cut=st.integers(0, 10_000), delta=st.integers(-8, 8), flip=st.integers(0, 10_000))
def test_fuzz_damaged_binary_requests(case: dict[str, Any], cut: int, delta: int, flip: int) -> None:
    """Truncated bodies, wrong header lengths, flipped bytes."""
    raw, header = encode_request(case["inputs"], [True] * len(case["inputs"]))
    length = int(header or len(raw))
    _decode_or_oip_error(raw[: cut % (len(raw) + 1)], header)
    _decode_or_oip_error(raw, str(max(0, length + delta)))
    damaged = bytearray(raw)
    damaged[flip % len(damaged)] ^= 0xFF
    _decode_or_oip_error(memoryview(damaged), header)


def test_fuzz_hostile_nesting() -> None:
    for depth in (MAX_DEPTH + 1, 500, 5_000, 200_000):
        for template in (
            '{"inputs":[{"name":"a","shape":[1],"datatype":"INT8","data":%s}]}',
            '{"inputs":[{"name":"a","shape":[1],"datatype":"INT8","data":[1],"parameters":{"k":%s}}]}',
            '{"id":%s,"inputs":[]}',
            '{"inputs":[{"name":"a","shape":%s,"datatype":"INT8","data":[1]}]}',
            '{"inputs":[{"name":"a","shape":[1],"datatype":"INT8","data":%s}]}'.replace("%s", "[%s]"),
        ):
            nested = "[" * depth + "1" + "]" * depth
            with pytest.raises(OIPError):
                decode_request(template.replace("%s", nested).encode(), None, "")
        with pytest.raises(OIPError):
            decode_request(b'{"inputs":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}", None, "")


# --- speed and copies ----------------------------------------------------------------------------


def test_one_megabyte_fp32_output_is_encoded_quickly_and_binary_is_not_copied() -> None:
    count = 262_144  # 1 MiB of FP32
    tensor = Tensor("y", "FP32", [count], struct.pack(f"<{count}f", *(i / 7 for i in range(count))))
    start = time.perf_counter()
    binary = encode_response("m", None, "r", None, [tensor], None, True)
    binary_seconds = time.perf_counter() - start
    assert binary.parts[1] is tensor.data and binary.header_length == len(binary.parts[0]) < 200
    start = time.perf_counter()
    as_json = encode_response("m", None, "r", None, [tensor], None, False)
    json_seconds = time.perf_counter() - start
    assert json.loads(as_json.parts[0])["outputs"][0]["data"][7] == 1.0
    assert binary_seconds < 0.05 and json_seconds < 3.0  # loose: 2 shared cores; about 0.05 ms and 0.15 s


def test_the_codec_imports_no_numpy_and_no_aiohttp() -> None:
    code = (
        "import sys, modelserver.oip_codec; "
        "bad = [m for m in ('numpy', 'aiohttp') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- cross-checks with the real clients ----------------------------------------------------------


def _arrays() -> dict[str, Any]:
    np = pytest.importorskip("numpy")
    return {
        "BOOL": np.array([[True, False, True], [False, False, True]]),
        "UINT8": np.array([[0, 1, 255], [7, 8, 9]], dtype=np.uint8),
        "UINT16": np.array([[0, 1, 65535], [7, 8, 9]], dtype=np.uint16),
        "UINT32": np.array([[0, 1, 2**32 - 1], [7, 8, 9]], dtype=np.uint32),
        "UINT64": np.array([[0, 1, 2**64 - 1], [7, 8, 9]], dtype=np.uint64),
        "INT8": np.array([[-128, 1, 127], [7, 8, 9]], dtype=np.int8),
        "INT16": np.array([[-32768, 1, 32767], [7, 8, 9]], dtype=np.int16),
        "INT32": np.array([[-(2**31), 1, 2**31 - 1], [7, 8, 9]], dtype=np.int32),
        "INT64": np.array([[-(2**63), 1, 2**63 - 1], [7, 8, 9]], dtype=np.int64),
        "FP16": np.array([[6.8, -2.8, 65504.0], [0.0, 1e-7, -0.0]], dtype=np.float16),
        "FP32": np.array([[0.1, -2.5, 3.4e38], [1e-45, 7.0, -0.0]], dtype=np.float32),
        "FP64": np.array([[0.1, -2.5, 1.7e308], [5e-324, 7.0, -0.0]], dtype=np.float64),
        "BYTES": np.array([[b"cat", b"", "h\u00e9llo".encode()], [b"dog", b"x", b"\xe2\x82\xac"]], dtype=np.object_),
    }


def _assert_same(np: Any, got: Any, want: Any) -> None:
    if want.dtype == np.object_:
        got = [value.decode() if isinstance(value, bytes) else value for value in got.ravel().tolist()]
        want = [value.decode() if isinstance(value, bytes) else value for value in want.ravel().tolist()]
        assert got == want
        return
    assert got.shape == want.shape
    assert got.astype(want.dtype).tobytes() == want.tobytes()


@pytest.mark.parametrize("datatype", DATATYPES)
@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_request_and_response(datatype: str, binary: bool) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    utils = pytest.importorskip("tritonclient.http._utils")
    np = pytest.importorskip("numpy")
    if datatype == "BF16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        array = np.array([[1.0, -2.5, 3.140625], [0.0, 1e30, -0.0]], dtype=ml_dtypes.bfloat16)
        if not binary:
            pytest.skip("tritonclient refuses BF16 in JSON on its side")
    else:
        array = _arrays()[datatype]
    second = np.array([3, 4], dtype=np.int32)
    inputs = [httpclient.InferInput("x", list(array.shape), datatype), httpclient.InferInput("n", [2], "INT32")]
    inputs[0].set_data_from_numpy(array, binary_data=binary)
    inputs[1].set_data_from_numpy(second, binary_data=not binary)
    outputs = [httpclient.InferRequestedOutput("x", binary_data=binary), httpclient.InferRequestedOutput("n", False)]
    body, json_size = utils._get_inference_request(
        inputs=inputs,
        request_id="req-1",
        outputs=outputs,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters={"temperature": 0.5},
    )
    header = None if json_size is None else str(json_size)
    request = decode_request(body, header, "application/octet-stream")
    assert request.id == "req-1" and request.parameters == {"temperature": 0.5}
    assert [(o.name, o.binary) for o in request.outputs] == [("x", binary), ("n", False)]
    x, n = request.inputs
    assert (x.datatype, x.shape, x.parameters) == (datatype, array.shape, None)
    if datatype == "BF16":
        assert x.to_list() == array.astype(np.float32).ravel().tolist()
    else:
        _assert_same(np, x.as_numpy(), array)
    assert n.to_list() == [3, 4]

    encoded = encode_response("m", "1", request.id, None, request.inputs, request.outputs, False)
    result = httpclient.InferResult.from_response_body(joined(encoded), header_length=encoded.header_length)
    if datatype == "BF16":
        assert result.as_numpy("x").astype(np.float32).tobytes() == array.astype(np.float32).tobytes()
    else:
        _assert_same(np, result.as_numpy("x"), array)
    assert result.as_numpy("n").tolist() == [3, 4]
    assert result.get_response()["id"] == "req-1"

    # no outputs named: tritonclient asks for binary_data_output, every output comes back binary
    body, json_size = utils._get_inference_request(inputs, "", None, 0, False, False, 0, None, None)
    request = decode_request(body, None if json_size is None else str(json_size), "")
    assert request.binary_output_default is True and request.outputs is None
    encoded = encode_response("m", None, "server-id", None, request.inputs, None, True)
    assert encoded.header_length is not None
    result = httpclient.InferResult.from_response_body(joined(encoded), header_length=encoded.header_length)
    assert result.as_numpy("n").tolist() == [3, 4]


KSERVE_TYPES = [name for name in DATATYPES if name != "BF16"]  # KServe has no BF16


@pytest.mark.parametrize("datatype", KSERVE_TYPES)
@pytest.mark.parametrize("binary", [False, True])
def test_kserve_request_and_response(datatype: str, binary: bool) -> None:
    infer_type = pytest.importorskip("kserve.protocol.infer_type")
    np = pytest.importorskip("numpy")
    if datatype == "FP16" and not binary:
        pytest.skip("KServe refuses FP16 in JSON on its side")
    array = _arrays()[datatype]
    infer_input = infer_type.InferInput("x", list(array.shape), datatype)
    infer_input.set_data_from_numpy(array, binary_data=binary)
    request_outputs = [infer_type.RequestedOutput("x", {"binary_data": binary})]
    kserve_request = infer_type.InferRequest(
        "m", [infer_input], request_id="k-1", parameters={"p": "v"}, request_outputs=request_outputs
    )
    body, json_length = kserve_request.to_rest()
    if json_length is None:
        body = json.dumps(body).encode()
    request = decode_request(body, None if json_length is None else str(json_length), "application/json")
    assert request.id == "k-1" and request.parameters == {"p": "v"}
    _assert_same(np, request.inputs[0].as_numpy(), array)

    encoded = encode_response("m", None, request.id, None, request.inputs, request.outputs, False)
    body = joined(encoded)
    if encoded.header_length is None:
        response = infer_type.InferResponse.from_rest(json.loads(body))
    else:
        response = infer_type.InferResponse.from_bytes(body, encoded.header_length)
    assert response.id == "k-1" and response.model_name == "m"
    _assert_same(np, response.get_output_by_name("x").as_numpy(), array)


def test_kserve_fp16_output_golden() -> None:
    """KServe's K15: FP16 binary and FP32 JSON outputs, the header length equal to the JSON prefix."""
    fp16 = Tensor.from_list("fp16_output", "FP16", [8], [6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6])
    fp32 = Tensor.from_list("fp32_output", "FP32", [8], fp16.to_list())
    requested = [RequestedOutput("fp16_output", {"binary_data": True}, True), RequestedOutput("fp32_output", {}, False)]
    encoded = encode_response("FP16OutputModel", None, "r", None, [fp16, fp32], requested, True)
    header = json.loads(encoded.parts[0])
    assert encoded.header_length == len(encoded.parts[0])
    assert header["outputs"][0] == {
        "name": "fp16_output",
        "datatype": "FP16",
        "shape": [8],
        "parameters": {"binary_data_size": 16},
    }
    assert header["outputs"][1]["data"] == fp16.to_list()
    assert encoded.parts[1] is fp16.data and len(encoded.parts) == 2


def test_empty_tensors_from_the_real_clients() -> None:
    """KServe's client sends an empty binary tensor as ``"data": null`` with ``binary_data_size: 0`` and no
    header; tritonclient sends it with the header. Both decode, and both clients read empty outputs back."""
    np = pytest.importorskip("numpy")
    infer_type = pytest.importorskip("kserve.protocol.infer_type")
    httpclient = pytest.importorskip("tritonclient.http")
    utils = pytest.importorskip("tritonclient.http._utils")
    empty = np.zeros((2, 0), dtype=np.float32)

    kserve_input = infer_type.InferInput("e", [2, 0], "FP32")
    kserve_input.set_data_from_numpy(empty, binary_data=True)
    document, json_length = infer_type.InferRequest("m", [kserve_input]).to_rest()
    assert json_length is None and document["inputs"][0]["data"] is None
    request = decode_request(json.dumps(document).encode(), None, "application/json")
    assert request.inputs == [Tensor("e", "FP32", [2, 0], b"")]
    encoded = encode_response("m", None, request.id, None, request.inputs, None, True)
    response = infer_type.InferResponse.from_bytes(joined(encoded), encoded.header_length)
    assert response.get_output_by_name("e").as_numpy().shape == (2, 0)

    triton_input = httpclient.InferInput("e", [2, 0], "FP32")
    triton_input.set_data_from_numpy(empty, binary_data=True)
    body, json_size = utils._get_inference_request([triton_input], "", None, 0, False, False, 0, None, None)
    request = decode_request(body, str(json_size), "application/octet-stream")
    assert request.inputs == [Tensor("e", "FP32", [2, 0], b"")]
    for binary in (False, True):
        encoded = encode_response("m", None, "r", None, request.inputs, None, binary)
        result = httpclient.InferResult.from_response_body(joined(encoded), header_length=encoded.header_length)
        assert result.as_numpy("e").shape == (2, 0)
