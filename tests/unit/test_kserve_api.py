"""workers.kserve_api's data types: the BYTES framing, numpy conversions, REST forms and the binary extension.

The exact byte strings below are facts of the wire format (KServe 0.21 writes the same bytes for the same objects;
test_kserve_crosscheck.py compares with the real package when it is installed).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from workers.kserve_api import (
    InferenceError,
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    InvalidInput,
    RequestedOutput,
)
from workers.kserve_api.codec import dumps
from workers.kserve_api.infer_type import (
    deserialize_bytes_tensor,
    from_np_dtype,
    serialize_byte_tensor,
    to_np_dtype,
)

# -- BYTES framing ----------------------------------------------------------------------------------


def test_serialize_byte_tensor_frames_each_element_with_a_little_endian_length() -> None:
    framed = serialize_byte_tensor(np.array([b"ab", "c", "h\u00e9llo", 7], dtype=object))
    assert framed.shape == () and framed.dtype == object
    assert framed.item() == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c\x06\x00\x00\x00h\xc3\xa9llo\x01\x00\x00\x007"


def test_serialize_byte_tensor_is_row_major_and_takes_bytes_and_str_arrays() -> None:
    grid = np.array([[b"a", b"bb"], [b"ccc", b""]], dtype=object)
    assert serialize_byte_tensor(grid).item() == (
        b"\x01\x00\x00\x00a\x02\x00\x00\x00bb\x03\x00\x00\x00ccc\x00\x00\x00\x00"
    )
    assert serialize_byte_tensor(grid.T).item().startswith(b"\x01\x00\x00\x00a\x03\x00\x00\x00ccc")
    assert serialize_byte_tensor(np.array([b"xy"])).item() == b"\x02\x00\x00\x00xy"  # dtype S2
    assert serialize_byte_tensor(np.array(["xy"])).item() == b"\x02\x00\x00\x00xy"  # dtype <U2


def test_serialize_byte_tensor_of_nothing_and_of_numbers() -> None:
    empty = serialize_byte_tensor(np.array([], dtype=object))
    assert empty.shape == (0,) and empty.dtype == object
    with pytest.raises(InferenceError, match="cannot serialize bytes tensor: invalid datatype"):
        serialize_byte_tensor(np.array([1, 2], dtype=np.int32))


def test_deserialize_bytes_tensor_inverts_the_framing() -> None:
    elements = deserialize_bytes_tensor(b"\x04\x00\x00\x00test\x00\x00\x00\x00\x01\x00\x00\x00z")
    assert elements.dtype == object and elements.shape == (3,)
    assert elements.tolist() == [b"test", b"", b"z"]
    assert deserialize_bytes_tensor(memoryview(b"")).shape == (0,)
    with pytest.raises(InvalidInput, match="truncated"):
        deserialize_bytes_tensor(b"\x05\x00\x00\x00abc")


# -- datatypes --------------------------------------------------------------------------------------


def test_datatypes_map_to_numpy_and_back() -> None:
    for datatype in ("BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"):
        assert from_np_dtype(np.dtype(to_np_dtype(datatype))) == datatype
    for datatype in ("FP16", "FP32", "FP64"):
        assert from_np_dtype(to_np_dtype(datatype)) == datatype
    assert to_np_dtype("BYTES") is np.object_
    assert to_np_dtype("BF16") is None and to_np_dtype("nope") is None  # BF16 unsupported, as in KServe


def test_from_np_dtype_bytes_kinds_byte_order_and_unsupported() -> None:
    for dtype in (object, "S3", "U3", "datetime64[s]", "datetime64[ns]"):
        assert from_np_dtype(np.dtype(dtype)) == "BYTES"
    assert from_np_dtype(np.dtype(">i4")) == "INT32"
    for dtype in (np.complex64, "timedelta64[s]", np.float128 if hasattr(np, "float128") else np.complex128):
        assert from_np_dtype(np.dtype(dtype)) is None


# -- InferInput / InferOutput -----------------------------------------------------------------------


def test_constructor_upper_cases_the_datatype_and_keeps_the_attributes() -> None:
    tensor = InferInput("x", [2], "int32", data=[1, 2], parameters={"a": 1})
    assert (tensor.name, tensor.shape, tensor.datatype, tensor.data, tensor.parameters) == (
        "x",
        [2],
        "INT32",
        [1, 2],
        {"a": 1},
    )
    assert tensor._raw_data is None
    assert tensor.to_dict() == {"name": "x", "shape": [2], "datatype": "INT32", "data": [1, 2], "parameters": {"a": 1}}
    assert repr(tensor) == '"name": "x","shape": [2],"datatype": "INT32","data": [1, 2],"parameters": {\'a\': 1}'


def test_as_numpy_of_flat_and_nested_json_data() -> None:
    flat = InferInput("x", [2, 2], "INT32", data=[1, 2, 3, 4]).as_numpy()
    nested = InferInput("x", [2, 2], "INT32", data=[[1, 2], [3, 4]]).as_numpy()
    assert flat.dtype == np.int32 and flat.shape == (2, 2)
    assert np.array_equal(flat, nested)
    assert InferInput("b", [3], "BOOL", data=[True, False, True]).as_numpy().tolist() == [True, False, True]
    assert InferInput("s", [1, 2], "BYTES", data=[["a", "b"]]).as_numpy().tolist() == [["a", "b"]]
    assert InferInput("c", [1], "INT32", data=["7"]).as_numpy().tolist() == [7]  # numpy coerces, as in KServe


def test_as_numpy_of_raw_data_is_a_view() -> None:
    raw = bytearray(np.array([1.5, -2.0], dtype="<f4").tobytes())
    tensor = InferOutput("y", [2, 1], "FP32")
    tensor._raw_data = raw
    array = tensor.as_numpy()
    assert array.shape == (2, 1) and array.tolist() == [[1.5], [-2.0]]
    raw[0:4] = np.array([9.0], dtype="<f4").tobytes()
    assert array[0, 0] == 9.0
    words = InferInput("w", [2], "BYTES")
    words._raw_data = memoryview(b"\x02\x00\x00\x00hi\x00\x00\x00\x00")
    assert words.as_numpy().tolist() == [b"hi", b""]


def test_as_numpy_errors() -> None:
    with pytest.raises(InvalidInput, match="^invalid datatype None in the input$"):
        InferInput("x", [1], "BF16", data=[1.0]).as_numpy()
    with pytest.raises(InvalidInput, match="^invalid datatype in the input$"):
        InferOutput("x", [1], "COMPLEX", data=[1.0]).as_numpy()
    with pytest.raises(InvalidInput, match="input 'x'.*INT32.*\\[3\\]"):
        InferInput("x", [3], "INT32", data=[1, 2]).as_numpy()
    with pytest.raises(InvalidInput):
        InferInput("x", [1], "INT8", data=[300]).as_numpy()
    short = InferInput("x", [2], "INT32")
    short._raw_data = b"\x01\x00\x00\x00"
    with pytest.raises(InvalidInput):
        short.as_numpy()


def test_set_data_from_numpy_binary_sets_raw_data_and_its_size() -> None:
    tensor = InferInput("x", [2, 2], "FP16", parameters={"keep": True})
    tensor.set_data_from_numpy(np.array([[1, 2], [3, 4]], dtype=np.float16))
    assert tensor.data is None
    assert tensor._raw_data == np.array([1, 2, 3, 4], dtype="<f2").tobytes()
    assert tensor.parameters == {"keep": True, "binary_data_size": 8}
    flags = InferInput("b", [3], "BOOL")
    flags.set_data_from_numpy(np.array([True, False, True]))
    assert flags._raw_data == b"\x01\x00\x01" and flags.parameters == {"binary_data_size": 3}
    big = InferInput("i", [2], "INT32")
    big.set_data_from_numpy(np.array([1, 2], dtype=">i4"))
    assert big._raw_data == b"\x01\x00\x00\x00\x02\x00\x00\x00"  # always little-endian on the wire
    words = InferInput("s", [2], "BYTES")
    words.set_data_from_numpy(np.array(["h\u00e9", b"\xff"], dtype=object))
    assert words._raw_data == b"\x03\x00\x00\x00h\xc3\xa9\x01\x00\x00\x00\xff"


def test_set_data_from_numpy_json_gives_flat_lists_and_drops_the_binary_size() -> None:
    tensor = InferInput("x", [2, 2], "INT64", parameters={"binary_data_size": 32, "other": 1})
    tensor._raw_data = b"stale"
    tensor.set_data_from_numpy(np.array([[1, 2], [3, 4]]), binary_data=False)
    assert tensor.data == [1, 2, 3, 4] and tensor._raw_data is None
    assert tensor.parameters == {"other": 1}
    words = InferOutput("s", [3], "BYTES")
    words.set_data_from_numpy(np.array([b"caf\xc3\xa9", "x", 5], dtype=object), binary_data=False)
    assert words.data == ["caf\u00e9", "x", "5"]
    when = InferOutput("t", [1], "BYTES")
    when.set_data_from_numpy(np.array(["2024-05-01T12:30:00"], dtype="datetime64[s]"), binary_data=False)
    assert when.data == ["2024-05-01 12:30:00"]


def test_set_data_from_numpy_checks_type_dtype_and_shape() -> None:
    tensor = InferInput("x", [4], "INT32")
    with pytest.raises(InferenceError, match="^input_tensor must be a numpy array$"):
        tensor.set_data_from_numpy([1, 2, 3, 4])
    with pytest.raises(InferenceError, match="^got unexpected datatype FP32 from numpy array, expected INT32$"):
        tensor.set_data_from_numpy(np.zeros(4, dtype=np.float32))
    with pytest.raises(InferenceError, match=r"^got unexpected numpy array shape \[2, 2\], expected \[4\]$"):
        tensor.set_data_from_numpy(np.zeros((2, 2), dtype=np.int32))
    with pytest.raises(InferenceError, match=r"^got unexpected numpy array shape \[3,\], expected \[4\]$"):
        tensor.set_data_from_numpy(np.zeros(3, dtype=np.int32))
    words = InferOutput("s", [1], "BYTES")
    with pytest.raises(InferenceError, match="^Failed to encode \"b'\\\\xff'\" using UTF-8. Please use binary_data"):
        words.set_data_from_numpy(np.array([b"\xff"], dtype=object), binary_data=False)


def test_equality_and_requested_output() -> None:
    assert InferInput("x", [1], "INT32", data=[1]) == InferInput("x", [1], "int32", data=[1])
    assert InferInput("x", [1], "INT32", data=[1]) != InferOutput("x", [1], "INT32", data=[1])
    assert InferInput("x", [1], "INT32", data=np.array([1])) == InferInput("x", [1], "INT32", data=np.array([1]))
    assert RequestedOutput("y").binary_data is None
    assert RequestedOutput("y", {"binary_data": False}).binary_data is False
    assert RequestedOutput("y", {"binary_data": True}) == RequestedOutput("y", {"binary_data": True})
    assert repr(RequestedOutput("y", {})) == "RequestedOutput(name=y, parameters={})"
    words = InferInput("s", [2], "BYTES", data=[[b"a", "b"]])
    assert words.as_string() == ["a", "b"]
    with pytest.raises(InvalidInput, match="^invalid datatype INT32 in the input$"):
        InferInput("x", [1], "INT32", data=[1]).as_string()


# -- InferRequest -----------------------------------------------------------------------------------


def _mixed_request() -> InferRequest:
    first = InferInput(
        "input1", [3], "INT32", data=np.array([1, 2, 3], dtype=np.int32), parameters={"test-str": "dummy"}
    )
    second = InferInput("input2", [1], "BYTES", parameters={"test-int": 2})
    second.set_data_from_numpy(np.array(["test"], dtype=object))
    third = InferInput("input3", [3], "FP16")
    third.set_data_from_numpy(np.array([1.2, 2.2, 3.2], dtype=np.float16))
    wanted = {"test-str": "dummy", "test-bool": True, "test-int": 100}
    return InferRequest(
        model_name="test_model",
        infer_inputs=[first, second, third],
        request_id="4be4e82f-5500-420a-a5c5-ac86841e271b",
        request_outputs=[RequestedOutput("output-0", dict(wanted)), RequestedOutput("output-1", dict(wanted))],
    )


MIXED_REQUEST = (
    b'{"id":"4be4e82f-5500-420a-a5c5-ac86841e271b","model_name":"test_model","inputs":[{"name":"input1","shape":[3],'
    b'"datatype":"INT32","parameters":{"test-str":"dummy"},"data":[1,2,3]},{"name":"input2","shape":[1],'
    b'"datatype":"BYTES","parameters":{"test-int":2,"binary_data_size":8}},{"name":"input3","shape":[3],'
    b'"datatype":"FP16","parameters":{"binary_data_size":6}}],"outputs":[{"name":"output-0","parameters":'
    b'{"test-str":"dummy","test-bool":true,"test-int":100}},{"name":"output-1","parameters":{"test-str":"dummy",'
    b'"test-bool":true,"test-int":100}}]}\x04\x00\x00\x00test\xcd<f@fB'
)


def test_request_to_rest_with_binary_inputs_is_the_json_then_the_raw_data() -> None:
    body, json_length = _mixed_request().to_rest()
    assert body == MIXED_REQUEST
    assert json_length == 546 == len(MIXED_REQUEST) - 14
    assert json.loads(body[:json_length])["inputs"][0]["data"] == [1, 2, 3]


def test_request_to_rest_without_binary_inputs_is_a_dict() -> None:
    request = InferRequest(
        "m",
        [InferInput("a", [2], "INT32", data=[1, 2]), InferInput("b", [1], "FP32", data=[1.5], parameters={"p": 1})],
        parameters={"q": "r"},
    )
    body, json_length = request.to_rest()
    assert json_length is None
    assert body["id"]  # a uuid4 when the request has none
    assert body == {
        "id": body["id"],
        "model_name": "m",
        "inputs": [
            {"name": "a", "shape": [2], "datatype": "INT32", "data": [1, 2]},
            {"name": "b", "shape": [1], "datatype": "FP32", "parameters": {"p": 1}, "data": [1.5]},
        ],
        "parameters": {"q": "r"},
    }


def test_request_to_rest_marks_raw_data_set_directly_as_binary() -> None:
    request = InferRequest(
        "m",
        [InferInput("a", [2], "UINT8"), InferInput("e", [0], "BYTES", parameters={"x": 1})],
        request_id="r",
        raw_inputs=[memoryview(bytearray(b"\x01\x02")), b""],
    )
    body, json_length = request.to_rest()
    assert body == (
        b'{"id":"r","model_name":"m","inputs":[{"name":"a","shape":[2],"datatype":"UINT8","parameters":'
        b'{"binary_data_size":2}},{"name":"e","shape":[0],"datatype":"BYTES","parameters":{"x":1,'
        b'"binary_data_size":0}}]}\x01\x02'
    )
    assert json_length == len(body) - 2
    assert request.inputs[0].parameters is None  # the tensors themselves are left as they were


def test_request_to_rest_errors() -> None:
    with pytest.raises(InvalidInput, match="^'data' field is missing for output 'x' for model 'm'$"):
        InferRequest("m", [InferInput("x", [1], "INT32", parameters={"binary_data_size": 4})]).to_rest()
    both = InferInput("x", [1], "INT32", data=[1])
    both._raw_data = b"\x01\x00\x00\x00"
    with pytest.raises(InvalidInput, match="^Both 'data' and 'raw_data' fields are set for input 'x' for model 'm'$"):
        InferRequest("m", [both]).to_rest()
    half = InferInput("h", [1], "FP16")
    half.set_data_from_numpy(np.array([1.0], dtype=np.float16), binary_data=False)
    with pytest.raises(InvalidInput, match="^Sending FP16 data via JSON is not supported.*input h$"):
        InferRequest("m", [half]).to_rest()


def test_request_round_trip_through_bytes_decodes_binary_inputs() -> None:
    flags = InferInput("flags", [2, 2], "BOOL")
    flags.set_data_from_numpy(np.array([[True, False], [False, True]]))
    words = InferInput("words", [2], "BYTES")
    words.set_data_from_numpy(np.array(["caf\u00e9", ""], dtype=object))
    half = InferInput("half", [3], "FP16", parameters={})
    half.set_data_from_numpy(np.array([1.1, 2.9, 3.4], dtype=np.float16))
    plain = InferInput("plain", [1, 2], "INT64", data=[[5, 6]])
    request = InferRequest(
        "m",
        [flags, plain, words, half],
        request_id="r1",
        parameters={"binary_data_output": True},
        request_outputs=[RequestedOutput("out", {"binary_data": True})],
    )
    body, json_length = request.to_rest()
    assert json_length == len(dumps(json.loads(body[:json_length])))  # the header length is the JSON's
    assert body[json_length:] == flags._raw_data + words._raw_data + half._raw_data
    parsed = InferRequest.from_bytes(bytearray(body), json_length, "m")
    assert parsed.id == "r1" and parsed.model_name == "m" and parsed.use_binary_outputs is True
    assert parsed.request_outputs == [RequestedOutput("out", {"binary_data": True})]
    assert [inp.name for inp in parsed.inputs] == ["flags", "plain", "words", "half"]
    assert parsed.get_input_by_name("flags").data == [True, False, False, True]
    assert parsed.get_input_by_name("plain").data == [[5, 6]]
    assert parsed.get_input_by_name("words").data == ["caf\u00e9", ""]
    assert parsed.get_input_by_name("half").as_numpy().tolist() == np.array([1.1, 2.9, 3.4], np.float16).tolist()
    assert parsed.get_input_by_name("half").parameters == {}  # binary_data_size is gone with the raw data
    assert parsed.get_input_by_name("nope") is None


def test_request_from_bytes_errors() -> None:
    with pytest.raises(InvalidInput, match="^Unrecognized request format: "):
        InferRequest.from_bytes(b'{"inputs": [', 12, "m")
    body = b'{"inputs":[{"name":"a","shape":[3],"datatype":"INT32"}]}\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00'
    with pytest.raises(InvalidInput, match="^'data' field is missing for input 'a' for model 'm'$"):
        InferRequest.from_bytes(body, 56, "m")
    fp16 = b'{"inputs":[{"name":"h","shape":[1],"datatype":"FP16","data":[1]}]}'
    with pytest.raises(InvalidInput, match="^Receiving FP16 data via JSON is not supported.*input h$"):
        InferRequest.from_bytes(fp16, len(fp16), "m")
    short = b'{"inputs":[{"name":"a","shape":[2],"datatype":"INT32","parameters":{"binary_data_size":8}}]}\x01\x00'
    with pytest.raises(InvalidInput, match="needs 8 bytes"):
        InferRequest.from_bytes(short, len(short) - 2, "m")
    words = b'{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":5}}]}'
    with pytest.raises(InferenceError, match="using UTF-8"):  # KServe decodes binary BYTES inputs as UTF-8
        InferRequest.from_bytes(words + b"\x01\x00\x00\x00\xff", len(words), "m")


def test_request_from_inference_request_dict() -> None:
    request = InferRequest.from_inference_request(
        {
            "id": "i",
            "parameters": {"content_type": "np"},
            "inputs": [{"name": "a", "shape": [2], "datatype": "INT32", "data": [1, 2]}],
            "outputs": [{"name": "o"}],
        },
        "m",
    )
    assert request.id == "i" and request.model_name == "m" and request.parameters == {"content_type": "np"}
    assert request.inputs == [InferInput("a", [2], "INT32", data=[1, 2], parameters={})]
    assert request.request_outputs == [RequestedOutput("o", {})]
    with pytest.raises(InvalidInput, match="^Sending FP16 data via JSON is not supported"):
        InferRequest.from_inference_request(
            {"inputs": [{"name": "h", "shape": [1], "datatype": "FP16", "data": [1]}]}, "m"
        )


def test_use_binary_outputs() -> None:
    assert InferRequest("m", []).use_binary_outputs is False
    assert InferRequest("m", [], parameters={"x": 1}).use_binary_outputs is False
    assert InferRequest("m", [], parameters={"binary_data_output": True}).use_binary_outputs is True
    raw = InferRequest("m", [InferInput("a", [1], "UINT8")], raw_inputs=[b"\x07"], from_grpc=True)
    assert raw.use_binary_outputs is True and raw.inputs[0]._raw_data == b"\x07"


def test_as_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    words = InferInput("w", [2], "BYTES")
    words.set_data_from_numpy(np.array([b"x", b"y"], dtype=object))
    request = InferRequest("m", [InferInput("a", [2], "INT32", data=[1, 2]), words])
    frame = request.as_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("list") == {"a": [1, 2], "w": ["x", "y"]}


# -- InferResponse ----------------------------------------------------------------------------------


def _outputs() -> list[InferOutput]:
    half = InferOutput("output1", [1], "FP16", data=np.array([1], dtype=np.float16))
    half.set_data_from_numpy(np.array([1], dtype=np.float16))
    return [half, InferOutput("output2", [1], "INT32", data=[1]), InferOutput("output3", [1], "BYTES", data=["test"])]


def _binary(body: bytes, json_length: int) -> tuple[dict, bytes]:
    return json.loads(body[:json_length]), body[json_length:]


def test_response_binary_outputs_bytes() -> None:
    data = np.array([[1.2, 2.2, 3.2, 4.1], [1.5, 2.6, 3.787, 4.54]], dtype=np.float16)
    half = InferOutput("fp16_output", list(data.shape), "FP16")
    single = InferOutput("fp32_output", list(data.shape), "FP32")
    half.set_data_from_numpy(data)
    single.set_data_from_numpy(data.astype(np.float32))
    requested = [RequestedOutput(o.name, {"binary_data": True}) for o in (half, single)]
    body, json_length = InferResponse("1", "test_model", [half, single], requested_outputs=requested).to_rest()
    assert body[:json_length] == (
        b'{"id":"1","model_name":"test_model","model_version":null,"outputs":[{"name":"fp16_output","shape":[2,4],'
        b'"datatype":"FP16","parameters":{"binary_data_size":16}},{"name":"fp32_output","shape":[2,4],'
        b'"datatype":"FP32","parameters":{"binary_data_size":32}}]}'
    )
    assert json_length == 253
    assert body[json_length:] == data.tobytes() + data.astype("<f4").tobytes()


def test_precedence_no_flags_means_json() -> None:
    outputs = [InferOutput("a", [2], "INT32", data=[[1, 2]]), InferOutput("b", [1], "BYTES", data=[b"x"])]
    body, json_length = InferResponse("1", "m", outputs).to_rest()
    assert json_length is None
    assert body == {
        "id": "1",
        "model_name": "m",
        "model_version": None,
        "outputs": [
            {"name": "a", "shape": [2], "datatype": "INT32", "data": [1, 2]},  # flattened, as KServe does
            {"name": "b", "shape": [1], "datatype": "BYTES", "data": ["x"]},
        ],
    }


def test_precedence_binary_data_output_makes_every_output_binary() -> None:
    outputs = _outputs()
    outputs[0].data = [1]
    body, json_length = InferResponse("1", "test_model", outputs, use_binary_outputs=True).to_rest()
    assert body == (
        b'{"id":"1","model_name":"test_model","model_version":null,"outputs":[{"name":"output1","shape":[1],'
        b'"datatype":"FP16","parameters":{"binary_data_size":2}},{"name":"output2","shape":[1],"datatype":"INT32",'
        b'"parameters":{"binary_data_size":4}},{"name":"output3","shape":[1],"datatype":"BYTES","parameters":'
        b'{"binary_data_size":8}}]}\x00<\x01\x00\x00\x00\x04\x00\x00\x00test'
    )
    assert json_length == len(body) - 14


@pytest.mark.parametrize("use_binary_outputs", [False, True])
def test_precedence_requested_outputs_use_their_own_flags(use_binary_outputs: bool) -> None:
    requested = [
        RequestedOutput("output1", {"binary_data": True}),
        RequestedOutput("output2", {"binary_data": False}),
        RequestedOutput("output3", {"binary_data": True}),
    ]
    response = InferResponse(
        "1", "test_model", _outputs(), use_binary_outputs=use_binary_outputs, requested_outputs=requested
    )
    body, json_length = response.to_rest()
    assert body == (
        b'{"id":"1","model_name":"test_model","model_version":null,"outputs":[{"name":"output1","shape":[1],'
        b'"datatype":"FP16","parameters":{"binary_data_size":2}},{"name":"output2","shape":[1],"datatype":"INT32",'
        b'"data":[1]},{"name":"output3","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":8}}]}'
        b"\x00<\x04\x00\x00\x00test"
    )
    assert json_length == 301


def test_precedence_requested_output_without_flag_is_json_even_with_binary_data_output() -> None:
    """KServe's quirk (the specification and Triton would send output2 binary here)."""
    requested = [RequestedOutput("output2"), RequestedOutput("output1", {"binary_data": True})]
    body, json_length = InferResponse(
        "1", "m", _outputs(), use_binary_outputs=True, requested_outputs=requested
    ).to_rest()
    header, raw = _binary(body, json_length)
    assert [o["name"] for o in header["outputs"]] == ["output2", "output1"]  # only those asked, in that order
    assert header["outputs"][0] == {"name": "output2", "shape": [1], "datatype": "INT32", "data": [1]}
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 2} and raw == b"\x00<"


def test_precedence_requested_outputs_all_json_give_a_dict_and_fp16_must_be_binary() -> None:
    requested = [RequestedOutput("output3", {"binary_data": False})]
    body, json_length = InferResponse(
        "1", "m", _outputs(), use_binary_outputs=True, requested_outputs=requested
    ).to_rest()
    assert json_length is None and body["outputs"] == [
        {"name": "output3", "shape": [1], "datatype": "BYTES", "data": ["test"]}
    ]
    with pytest.raises(InvalidInput, match="^Sending FP16 data via JSON is not supported.*output output1$"):
        InferResponse("1", "m", _outputs()).to_rest()
    with pytest.raises(InvalidInput, match="^Unexpected inference output 'nope' for model 'm'$"):
        InferResponse("1", "m", _outputs(), requested_outputs=[RequestedOutput("nope")]).to_rest()
    missing = InferOutput("x", [1], "INT32", parameters={"binary_data_size": 12})
    with pytest.raises(InvalidInput, match="^'data' field is missing for output 'x' for model 'm'$"):
        InferResponse("1", "m", [missing]).to_rest()


def test_response_raw_data_as_json_and_as_binary_without_a_copy() -> None:
    raw = memoryview(bytearray(b"\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00"))
    output = InferOutput("output1", [3], "INT32")
    output._raw_data = raw
    body, json_length = InferResponse("r", "m", [output], use_binary_outputs=True).to_rest()
    assert output._raw_data is raw and output.parameters == {"binary_data_size": 12}
    assert body[json_length:] == raw
    output = InferOutput("output1", [3], "INT32")
    output._raw_data = bytes(raw)
    body, json_length = InferResponse("r", "m", [output]).to_rest()
    assert json_length is None
    assert body["outputs"] == [{"name": "output1", "shape": [3], "datatype": "INT32", "data": [1, 2, 3]}]


def test_response_round_trips_through_bytes_and_dicts() -> None:
    flags = InferOutput("flags", [3], "BOOL", data=[True, False, True])
    words = InferOutput("words", [2], "BYTES", data=["a\u00e9", "b"])
    halves = InferOutput("halves", [2], "FP16", data=np.array([0.5, -1.25], dtype=np.float16))
    body, json_length = InferResponse(
        "id-9", "m", [flags, words, halves], model_version="3", parameters={"k": "v"}, use_binary_outputs=True
    ).to_rest()
    assert body[json_length:] == b"\x01\x00\x01" + b"\x03\x00\x00\x00a\xc3\xa9\x01\x00\x00\x00b" + b"\x008\x00\xbd"
    parsed = InferResponse.from_bytes(body, json_length)
    assert (parsed.id, parsed.model_name, parsed.model_version, parsed.parameters) == ("id-9", "m", "3", {"k": "v"})
    assert parsed.get_output_by_name("flags").data == [True, False, True]
    assert parsed.get_output_by_name("words").data == ["a\u00e9", "b"]
    assert parsed.get_output_by_name("halves").data == [0.5, -1.25]
    assert parsed.get_output_by_name("missing") is None
    json_body = json.dumps(
        {"id": "2", "model_name": "m", "outputs": [{"name": "o", "shape": [1], "datatype": "INT8", "data": [4]}]}
    )
    assert InferResponse.from_bytes(json_body.encode(), len(json_body)).outputs == [
        InferOutput("o", [1], "INT8", data=[4])
    ]
    rest = InferResponse.from_rest(json.loads(json_body))
    assert rest.id == "2" and rest.outputs[0].as_numpy().tolist() == [4]
    with pytest.raises(InvalidInput, match="^'data' field is missing for output 'o' for model 'm'$"):
        InferResponse.from_bytes(b'{"model_name":"m","outputs":[{"name":"o","shape":[1],"datatype":"INT8"}]}', 74)


def test_dumps_is_compact_utf8_and_writes_non_finite_floats_as_null() -> None:
    assert dumps({"a": [1, 2.5, True, None], "b": "\u00e9"}) == '{"a":[1,2.5,true,null],"b":"\u00e9"}'.encode()
    assert dumps({"x": [float("nan"), float("inf"), 1.0]}) == b'{"x":[null,null,1.0]}'
    assert dumps({"n": np.int64(3), "f": np.float32(0.5), "a": np.arange(2)}) == b'{"n":3,"f":0.5,"a":[0,1]}'
