"""KServe's gRPC forms of InferRequest and InferResponse (``to_grpc``/``from_grpc``) on our own message classes:
typed contents or raw contents, parameters, ids and versions, requested outputs, as KServe 0.21 builds and reads
them (test_kserve_crosscheck.py compares with the real package)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("grpc_tools")

from workers.kserve_api import InferInput, InferOutput, InferRequest, InferResponse, InvalidInput, RequestedOutput
from workers.kserve_api.codec import to_http_parameters
from workers.oip_grpc import messages

pb = messages()
Parameter = pb.InferParameter

PARAMS = {"s": "dummy", "b": True, "i": 100}
GRPC_PARAMS = {"s": Parameter(string_param="dummy"), "b": Parameter(bool_param=True), "i": Parameter(int64_param=100)}
TYPED_ENTRY = {"shape": [1, 2], "datatype": "INT32", "contents": {"int_contents": [1, 2]}, "parameters": GRPC_PARAMS}
"""A typed INT32 tensor [[1, 2]] with every parameter kind KServe sends, as a message's entry (name apart)."""
HEADER = {"model_name": "m", "model_version": "v1", "id": "123", "parameters": GRPC_PARAMS}


def _typed_request() -> InferRequest:
    return InferRequest(
        model_name="m",
        model_version="v1",
        request_id="123",
        parameters=dict(PARAMS),
        infer_inputs=[InferInput("in0", [1, 2], "INT32", data=[1, 2], parameters=dict(PARAMS))],
        request_outputs=[RequestedOutput("out0", dict(PARAMS)), RequestedOutput("out1")],
    )


# -- requests ---------------------------------------------------------------------------------------------------


def test_request_to_grpc_puts_typed_data_in_its_contents_field_with_every_parameter() -> None:
    expected = pb.ModelInferRequest(
        **HEADER,
        inputs=[{"name": "in0", **TYPED_ENTRY}],
        outputs=[{"name": "out0", "parameters": GRPC_PARAMS}, {"name": "out1"}],
    )
    assert _typed_request().to_grpc() == expected


def test_request_from_grpc_reads_contents_and_keeps_kserves_parameter_forms() -> None:
    message = _typed_request().to_grpc()
    request = InferRequest.from_grpc(message)
    assert request.from_grpc is True and request.id == "123" and request.model_version == "v1"
    assert request.model_name == "m"
    assert request.parameters == GRPC_PARAMS  # the message's own map, as KServe keeps it
    assert request.inputs == [InferInput("in0", [1, 2], "INT32", data=[1, 2], parameters=PARAMS)]
    assert request.request_outputs == [RequestedOutput("out0", PARAMS), RequestedOutput("out1")]
    assert request.use_binary_outputs is False
    assert request.to_grpc() == message


def test_request_from_grpc_without_outputs_ids_or_parameters() -> None:
    message = pb.ModelInferRequest(
        model_name="m", inputs=[{"name": "x", "datatype": "FP32", "shape": [2], "contents": {"fp32_contents": [1, 2]}}]
    )
    request = InferRequest.from_grpc(message)
    assert (request.id, request.model_version, request.request_outputs) == ("", "", None)
    assert request.inputs[0].parameters is None and request.inputs[0].data == [1.0, 2.0]
    assert not request.parameters
    assert request.to_grpc() == message


def test_request_to_grpc_sends_numpy_and_binary_inputs_raw_in_input_order() -> None:
    ints = InferInput("ints", [2, 2], "INT32", data=np.array([[1, 2], [3, 4]], dtype=np.int32))
    words = InferInput("words", [2], "BYTES")
    words.set_data_from_numpy(np.array(["ab", b"c"], dtype=object))
    half = InferInput("half", [3], "FP16")
    half.set_data_from_numpy(np.array([1.5, -2, 0.25], dtype=np.float16))
    message = InferRequest("m", [ints, words, half]).to_grpc()
    assert list(message.raw_input_contents) == [
        np.array([1, 2, 3, 4], dtype="<i4").tobytes(),
        b"\x02\x00\x00\x00ab\x01\x00\x00\x00c",
        np.array([1.5, -2, 0.25], dtype="<f2").tobytes(),
    ]
    assert [entry.HasField("contents") for entry in message.inputs] == [False, False, False]
    # set_data_from_numpy marks them binary, as KServe does; that size travels as a parameter too
    assert to_http_parameters(message.inputs[0].parameters) == {"binary_data_size": 16}
    assert message.id == "" and not message.parameters and not message.outputs


def test_request_round_trip_with_raw_contents_fp16_and_bytes() -> None:
    half = InferInput("half", [2], "FP16")
    half.set_data_from_numpy(np.array([0.5, 65504], dtype=np.float16))
    words = InferInput("words", [1, 2], "BYTES")
    words.set_data_from_numpy(np.array([["x", "yz"]], dtype=object))
    message = InferRequest("m", [half, words], request_id="r").to_grpc()
    again = InferRequest.from_grpc(pb.ModelInferRequest.FromString(message.SerializeToString()))
    assert again.use_binary_outputs is True  # raw gRPC inputs: raw outputs, KServe's rule
    assert again.inputs[0].data == [] and again.inputs[1].data == []  # no contents: the elements are raw
    np.testing.assert_array_equal(again.inputs[0].as_numpy(), np.array([0.5, 65504], dtype=np.float16))
    assert again.inputs[1].as_numpy().tolist() == [[b"x", b"yz"]]
    assert again.inputs[1].parameters == {"binary_data_size": 11}
    assert again.to_grpc() == message


def test_request_to_grpc_bytes_strings_become_utf8_on_the_input_too() -> None:
    words = InferInput("w", [2], "BYTES", data=["caf\u00e9", b"\x00\xff"])
    message = InferRequest("m", [words]).to_grpc()
    assert list(message.inputs[0].contents.bytes_contents) == ["caf\u00e9".encode(), b"\x00\xff"]
    assert words.data == ["caf\u00e9".encode(), b"\x00\xff"]  # KServe converts the input's own list
    back = InferRequest.from_grpc(message)
    assert back.inputs[0].data == ["caf\u00e9".encode(), b"\x00\xff"]


def test_request_to_grpc_nested_data_goes_flat() -> None:
    message = InferRequest("m", [InferInput("x", [2, 2], "INT64", data=[[1, 2], [3, 4]])]).to_grpc()
    assert list(message.inputs[0].contents.int64_contents) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("infer_input", "message"),
    [
        (InferInput("x", [1], "INT32", data=(1,)), "input data is not a List"),
        (InferInput("x", [1], "FP16", data=[1.0]), "invalid input datatype"),
        (InferInput("x", [1], "BF16", data=[1.0]), "invalid input datatype"),
        (InferInput("x", [1], "INT32"), "input data is not a List"),
    ],
)
def test_request_to_grpc_refuses_what_has_no_contents_field_as_kserve_does(infer_input, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        InferRequest("m", [infer_input]).to_grpc()


def test_parameters_of_every_kind_travel_and_others_are_refused() -> None:
    values = {"b": False, "i": -(2**63), "u": 2**64 - 1, "d": 0.25, "s": "", "p": Parameter(int64_param=7)}
    message = InferRequest("m", [InferInput("x", [1], "BOOL", data=[True])], parameters=values).to_grpc()
    assert message.parameters["u"].WhichOneof("parameter_choice") == "uint64_param"
    assert message.parameters["d"].WhichOneof("parameter_choice") == "double_param"
    assert to_http_parameters(message.parameters) == {**values, "p": 7}
    with pytest.raises(InvalidInput, match=r"to_grpc: invalid parameter value: \[1\]"):
        InferRequest("m", [InferInput("x", [1], "BOOL", data=[True])], parameters={"l": [1]}).to_grpc()


def test_to_http_parameters_reads_infer_parameters_and_drops_unset_ones() -> None:
    assert to_http_parameters({"a": Parameter(string_param="x"), "n": Parameter(), "plain": 3}) == {
        "a": "x",
        "plain": 3,
    }


def test_from_grpc_refuses_an_unknown_datatype() -> None:
    message = pb.ModelInferRequest(model_name="m", inputs=[{"name": "x", "datatype": "COMPLEX64", "shape": [1]}])
    with pytest.raises(InvalidInput, match="invalid content type"):
        InferRequest.from_grpc(message)


def test_request_from_grpc_then_to_rest_writes_its_parameters_as_json() -> None:
    request = InferRequest.from_grpc(_typed_request().to_grpc())
    body, json_length = request.to_rest()
    assert json_length is None
    assert body["parameters"] == PARAMS and body["inputs"][0]["parameters"] == PARAMS


# -- responses --------------------------------------------------------------------------------------------------


def test_response_to_grpc_typed() -> None:
    response = InferResponse(
        response_id="123",
        model_name="m",
        model_version="v1",
        parameters=dict(PARAMS),
        infer_outputs=[InferOutput("out0", [1, 2], "INT32", data=[1, 2], parameters=dict(PARAMS))],
    )
    expected = pb.ModelInferResponse(
        **HEADER,
        outputs=[{"name": "out0", **TYPED_ENTRY}],
    )
    assert response.to_grpc() == expected


def test_response_from_grpc_keeps_the_messages_parameter_maps() -> None:
    message = pb.ModelInferResponse(
        **HEADER,
        outputs=[{"name": "o", "shape": [2], "datatype": "BOOL", "contents": {"bool_contents": [True, False]}}],
    )
    response = InferResponse.from_grpc(message)
    assert response == InferResponse(
        "123",
        "m",
        [InferOutput("o", [2], "BOOL", data=[True, False], parameters={})],
        model_version="v1",
        parameters=GRPC_PARAMS,
        from_grpc=True,
    )
    assert response.to_grpc() == message


def test_response_to_grpc_goes_raw_for_fp16_and_binary_outputs_and_numpy_data() -> None:
    half = InferOutput("half", [2], "FP16", data=[1.0, 2.0])
    ints = InferOutput("ints", [2], "INT32", data=[3, 4])
    message = InferResponse("1", "m", [half, ints]).to_grpc()  # an FP16 output makes every list output raw
    assert list(message.raw_output_contents) == [
        np.array([1, 2], dtype="<f2").tobytes(),
        np.array([3, 4], dtype="<i4").tobytes(),
    ]
    assert to_http_parameters(message.outputs[0].parameters) == {"binary_data_size": 4}

    typed = InferOutput("t", [2], "INT32", data=[3, 4])
    arrays = InferOutput("a", [2], "UINT8", data=np.array([5, 6], dtype=np.uint8))
    message = InferResponse("1", "m", [typed, arrays]).to_grpc()  # numpy data is always raw, lists stay typed
    assert list(message.outputs[0].contents.int_contents) == [3, 4]
    assert list(message.raw_output_contents) == [b"\x05\x06"]

    words = InferOutput("w", [2], "BYTES", data=["a", "bc"])
    message = InferResponse("1", "m", [words], use_binary_outputs=True).to_grpc()
    assert list(message.raw_output_contents) == [b"\x01\x00\x00\x00a\x02\x00\x00\x00bc"]


def test_response_round_trip_with_raw_outputs() -> None:
    half = InferOutput("half", [1, 2], "FP16")
    half.set_data_from_numpy(np.array([[0.5, -1]], dtype=np.float16))
    words = InferOutput("words", [1], "BYTES")
    words.set_data_from_numpy(np.array([b"\xff"], dtype=object))
    response = InferResponse("r", "m", [half, words], model_version="2")
    message = response.to_grpc()
    again = InferResponse.from_grpc(pb.ModelInferResponse.FromString(message.SerializeToString()))
    assert (again.id, again.model_name, again.model_version) == ("r", "m", "2")
    np.testing.assert_array_equal(again.outputs[0].as_numpy(), np.array([[0.5, -1]], dtype=np.float16))
    assert again.outputs[1].as_numpy().tolist() == [b"\xff"]
    assert again.to_grpc() == message


def test_response_to_grpc_refuses_a_datatype_without_contents() -> None:
    with pytest.raises(InvalidInput, match="to_grpc: invalid output datatype"):
        InferResponse("1", "m", [InferOutput("x", [1], "BF16", data=[1.0])]).to_grpc()
    with pytest.raises(InvalidInput, match="output data is not a List"):
        InferResponse("1", "m", [InferOutput("x", [1], "INT32")]).to_grpc()


def test_a_message_of_kserves_own_classes_is_read_too() -> None:
    real = pytest.importorskip("kserve.protocol.grpc.grpc_predict_v2_pb2")
    if real.ModelInferRequest is pb.ModelInferRequest:
        pytest.skip("the shim, not the real package")
    message = real.ModelInferRequest(
        model_name="m",
        parameters={"k": real.InferParameter(bool_param=True)},
        inputs=[{"name": "x", "datatype": "INT8", "shape": [1], "contents": {"int_contents": [-1]}}],
    )
    request = InferRequest.from_grpc(message)
    assert request.inputs[0].data == [-1]
    assert request.to_grpc() == pb.ModelInferRequest.FromString(message.SerializeToString())
