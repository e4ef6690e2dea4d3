"""Ours against the real KServe 0.21 package, when it is installed: the same objects must give the same bytes,
messages and defaults."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

import workers.kserve_api as ours
from workers.kserve_api import errors as our_errors
from workers.kserve_api import infer_type as our_infer_type
from workers.kserve_api import server_args
from workers.kserve_api import utils as our_utils

kserve = pytest.importorskip("kserve")
from kserve import errors as real_errors  # noqa: E402
from kserve.protocol import infer_type as real_infer_type  # noqa: E402
from kserve.utils import utils as real_utils  # noqa: E402

if kserve.__dict__.get("Model") is ours.Model:  # the shim, not the real package
    pytest.skip("the real kserve package is not installed", allow_module_level=True)

OURS = types.SimpleNamespace(types=our_infer_type, utils=our_utils)
REAL = types.SimpleNamespace(types=real_infer_type, utils=real_utils)


def _request(lib: Any) -> Any:
    t = lib.types
    first = t.InferInput(
        "ints", [2, 2], "INT32", data=np.array([[1, 2], [3, 4]], dtype=np.int32), parameters={"a": "b"}
    )
    words = t.InferInput("words", [3], "BYTES", parameters={"n": 2})
    words.set_data_from_numpy(np.array(["x", b"yz", "caf\u00e9"], dtype=object))
    half = t.InferInput("half", [2], "FP16")
    half.set_data_from_numpy(np.array([0.1, 65504], dtype=np.float16))
    flags = t.InferInput("flags", [2], "BOOL")
    flags.set_data_from_numpy(np.array([True, False]))
    text = t.InferInput("text", [1], "BYTES", data=["plain"])
    return t.InferRequest(
        model_name="m",
        infer_inputs=[first, words, half, flags, text],
        request_id="req-1",
        parameters={"binary_data_output": True, "k": 3},
        request_outputs=[t.RequestedOutput("o1", {"binary_data": True}), t.RequestedOutput("o2")],
    )


def test_request_to_rest_bytes_are_kserves() -> None:
    assert _request(OURS).to_rest() == _request(REAL).to_rest()


def test_request_from_bytes_reads_kserves_body_as_kserve_does() -> None:
    body, json_length = _request(REAL).to_rest()
    mine = our_infer_type.InferRequest.from_bytes(body, json_length, "m")
    theirs = real_infer_type.InferRequest.from_bytes(body, json_length, "m")
    assert mine.to_dict() == theirs.to_dict()
    assert [(r.name, r.parameters) for r in mine.request_outputs] == [
        (r.name, r.parameters) for r in theirs.request_outputs
    ]


def _outputs(lib: Any) -> list[Any]:
    t = lib.types
    half = t.InferOutput("half", [2, 2], "FP16")
    half.set_data_from_numpy(np.array([[1.2, 2.2], [3.2, 4.1]], dtype=np.float16))
    ints = t.InferOutput("ints", [1, 3], "INT64", data=[[1, 2, 3]])
    words = t.InferOutput("words", [2], "BYTES", data=[b"a", "b\u00e9"])
    floats = t.InferOutput("floats", [2], "FP32", data=np.array([0.25, -1.5], dtype=np.float32), parameters={"p": 1})
    return [half, ints, words, floats]


CASES = {
    "binary_data_output": {"use_binary_outputs": True},
    "requested flags": {
        "requested": [
            ("half", {"binary_data": True}),
            ("ints", {"binary_data": False}),
            ("words", {"binary_data": True}),
        ]
    },
    "requested flags win over binary_data_output": {
        "use_binary_outputs": True,
        "requested": [("floats", {"binary_data": False}), ("half", {"binary_data": True})],
    },
    "requested without flag": {
        "use_binary_outputs": True,
        "requested": [("ints", None), ("half", {"binary_data": True})],
    },
    "json only": {"requested": [("words", None), ("floats", {"binary_data": False})]},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_response_to_rest_is_kserves(case: str) -> None:
    settings = CASES[case]

    def build(lib: Any) -> Any:
        requested = [lib.types.RequestedOutput(name, params) for name, params in settings.get("requested", [])]
        return lib.types.InferResponse(
            "id-1",
            "m",
            _outputs(lib),
            model_version="2",
            parameters={"x": "y"},
            use_binary_outputs=settings.get("use_binary_outputs", False),
            requested_outputs=requested or None,
        )

    assert build(OURS).to_rest() == build(REAL).to_rest()


def _typed_request(lib: Any) -> Any:
    t = lib.types
    return t.InferRequest(
        model_name="m",
        model_version="3",
        request_id="r",
        parameters={"s": "x", "b": False, "i": -4},
        infer_inputs=[
            t.InferInput("i", [2], "INT16", data=[1, -2], parameters={"p": True}),
            t.InferInput("u", [1], "UINT64", data=[2**64 - 1]),
            t.InferInput("w", [2], "BYTES", data=["caf\u00e9", b"\x00"]),
            t.InferInput("f", [1], "FP64", data=[0.5]),
            t.InferInput("b", [1], "BOOL", data=[True]),
        ],
        request_outputs=[t.RequestedOutput("o", {"binary_data": True}), t.RequestedOutput("q")],
    )


def _wire(message: Any) -> bytes:
    return message.SerializeToString(deterministic=True)


@pytest.mark.parametrize("build", [_request, _typed_request])
def test_request_to_grpc_is_kserves_message(build: Any) -> None:
    assert _wire(build(OURS).to_grpc()) == _wire(build(REAL).to_grpc())


@pytest.mark.parametrize("build", [_request, _typed_request])
def test_request_from_grpc_reads_kserves_message_as_kserve_does(build: Any) -> None:
    message = build(REAL).to_grpc()
    mine = our_infer_type.InferRequest.from_grpc(message)
    theirs = real_infer_type.InferRequest.from_grpc(message)
    assert mine.to_dict() | {"parameters": None} == theirs.to_dict() | {"parameters": None}
    assert our_infer_type.to_http_parameters(mine.parameters) == real_infer_type.to_http_parameters(theirs.parameters)
    assert [i._raw_data for i in mine.inputs] == [i._raw_data for i in theirs.inputs]
    assert (mine.id, mine.model_version, mine.use_binary_outputs) == (
        theirs.id,
        theirs.model_version,
        theirs.use_binary_outputs,
    )
    assert [(r.name, r.parameters) for r in mine.request_outputs] == [
        (r.name, r.parameters) for r in theirs.request_outputs
    ]
    assert _wire(mine.to_grpc()) == _wire(theirs.to_grpc())


def _grpc_outputs(lib: Any, half: bool) -> list[Any]:
    """Outputs KServe's to_grpc takes: no numpy ``data`` (it tests an array's truth when outputs go raw) and flat
    lists (protobuf refuses nested ones)."""
    t = lib.types
    floats = t.InferOutput("floats", [2], "FP32", parameters={"p": 1})
    floats.set_data_from_numpy(np.array([0.25, -1.5], dtype=np.float32))
    outputs = [
        t.InferOutput("ints", [1, 3], "INT64", data=[1, 2, 3]),
        t.InferOutput("words", [2], "BYTES", data=[b"a", "b\u00e9"]),
        floats,
    ]
    if half:
        outputs.append(t.InferOutput("half", [2], "FP16", data=[1.5, 2]))
    return outputs


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("half", [False, True])
def test_response_grpc_forms_are_kserves(binary: bool, half: bool) -> None:
    def build(lib: Any) -> Any:
        return lib.types.InferResponse(
            "id-1", "m", _grpc_outputs(lib, half), model_version="2", parameters={"x": "y"}, use_binary_outputs=binary
        )

    message = build(REAL).to_grpc()
    assert _wire(build(OURS).to_grpc()) == _wire(message)
    mine = our_infer_type.InferResponse.from_grpc(message)
    theirs = real_infer_type.InferResponse.from_grpc(message)
    assert [(o.name, o.shape, o.datatype, o.data, o._raw_data) for o in mine.outputs] == [
        (o.name, o.shape, o.datatype, o.data, o._raw_data) for o in theirs.outputs
    ]
    assert (mine.id, mine.model_name, mine.model_version) == (theirs.id, theirs.model_name, theirs.model_version)
    assert _wire(mine.to_grpc()) == _wire(theirs.to_grpc())


def test_serialize_byte_tensor_is_kserves() -> None:
    for array in (
        np.array([b"a", "bc", 5, ""], dtype=object),
        np.array([[b"x", b"yy"], [b"zzz", b"w"]], dtype=object),
        np.array([b"\x00\xff", b"q"]),
    ):
        assert our_infer_type.serialize_byte_tensor(array).item() == real_infer_type.serialize_byte_tensor(array).item()


def test_get_predict_response_is_kserves() -> None:
    def answer(lib: Any, binary: bool) -> Any:
        request = lib.types.InferRequest(
            "m",
            [lib.types.InferInput("in", [2], "INT32", data=[1, 2])],
            request_id="r",
            parameters={"binary_data_output": binary},
        )
        return lib.utils.get_predict_response(request, np.array([[0.5, 1.5]], dtype=np.float32), "m").to_rest()

    for binary in (False, True):
        assert answer(OURS, binary) == answer(REAL, binary)
    assert our_utils.get_predict_response({"instances": [1]}, np.array([3]), "m") == real_utils.get_predict_response(
        {"instances": [1]}, np.array([3]), "m"
    )


def test_error_messages_are_kserves() -> None:
    model = types.SimpleNamespace(name="a")
    other = types.SimpleNamespace(name="b")
    for build in (
        lambda e: e.ModelNotFound("x"),
        lambda e: e.ModelNotReady("x"),
        lambda e: e.ModelNotReady("x", "why"),
        lambda e: e.InferenceError("bad"),
        lambda e: e.InferenceError("bad", status="400"),
        lambda e: e.InvalidInput("nope"),
        lambda e: e.UnsupportedProtocol("grpc-v2"),
        lambda e: e.ServerNotReady(),
        lambda e: e.ServerNotLive("detail"),
        lambda e: e.NoModelReady([model]),
        lambda e: e.NoModelReady([model, other], "later"),
        lambda e: e.WorkersShouldBeLessThanMaxWorkersError(4),
    ):
        assert str(build(our_errors)) == str(build(real_errors))


def test_parser_defaults_and_flags_are_kserves() -> None:
    from kserve.model_server import parser as real_parser

    assert vars(server_args.parser.parse_args([])) == vars(real_parser.parse_args([]))
    argv = ["--http_port", "9000", "--enable_grpc", "off", "--predictor_protocol", "v2", "--event-loop", "asyncio"]
    assert vars(server_args.parser.parse_args(argv)) == vars(real_parser.parse_args(argv))
    ours_flags = {option for action in server_args.parser._actions for option in action.option_strings}
    real_flags = {option for action in real_parser._actions for option in action.option_strings}
    assert ours_flags == real_flags
