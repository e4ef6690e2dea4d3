"""The OIP's gRPC messages to tensors and back (modelserver.grpc_oip_codec), with the messages grpcio-tools
generates from workers/protos/oip_inference.proto."""

from __future__ import annotations

import struct

import pytest

pytest.importorskip("grpc_tools")

from modelserver.grpc_oip_codec import decode_request, encode_response
from modelserver.oip_codec import OIPError, RequestedOutput
from workers import grpc_stubs
from workers.tensors import Tensor, serialize_bytes

pb = grpc_stubs.load("oip_inference")


def request(**fields):
    return pb.ModelInferRequest.FromString(pb.ModelInferRequest(model_name="m", **fields).SerializeToString())


def test_typed_contents_of_every_field_become_tensors() -> None:
    message = request(id="r1")
    message.parameters["n"].int64_param = 3
    message.parameters["flag"].bool_param = True
    cases = [
        ("BOOL", "bool_contents", [True, False]),
        ("INT8", "int_contents", [-5, 7]),
        ("INT64", "int64_contents", [2**40, -1]),
        ("UINT16", "uint_contents", [65535, 0]),
        ("UINT64", "uint64_contents", [2**63, 1]),
        ("FP32", "fp32_contents", [1.5, -2.0]),
        ("FP64", "fp64_contents", [0.1, 2.0]),
        ("BYTES", "bytes_contents", [b"\xff\x00", b"ok"]),
    ]
    for index, (datatype, field, values) in enumerate(cases):
        entry = message.inputs.add(name=f"t{index}", datatype=datatype, shape=[2])
        getattr(entry.contents, field).extend(values)
    decoded = decode_request(message)
    assert decoded.id == "r1" and decoded.parameters == {"n": 3, "flag": True} and not decoded.raw
    assert [tensor.to_list() for tensor in decoded.inputs] == [values for _, _, values in cases]
    assert decoded.inputs[7].data == serialize_bytes([b"\xff\x00", b"ok"])


def test_raw_contents_one_buffer_per_input() -> None:
    message = request(raw_input_contents=[struct.pack("<2e", 1.0, 2.0), serialize_bytes([b"a"])])
    message.inputs.add(name="half", datatype="FP16", shape=[1, 2])
    message.inputs.add(name="text", datatype="BYTES", shape=[1])
    decoded = decode_request(message)
    assert decoded.raw and [t.to_list() for t in decoded.inputs] == [[1.0, 2.0], [b"a"]]


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda m: m.inputs.add(name="x", datatype="FP16", shape=[1]), "raw_input_contents"),
        (lambda m: m.inputs.add(name="x", datatype="INT9", shape=[1]), "unknown datatype"),
        (lambda m: m.inputs.add(name="x", datatype="INT32", shape=[2]).contents.int_contents.append(1), "1 element"),
        (lambda m: m.raw_input_contents.append(b"\0" * 4), r"raw_input_contents has 1 buffer\(s\) for 2 input"),
        (lambda m: m.inputs.add(name="x", datatype="INT8", shape=[1]).contents.int_contents.append(300), "x"),
    ],
)
def test_bad_requests_name_what_is_wrong(build, words: str) -> None:
    message = request()
    build(message)
    if not message.inputs:
        message.inputs.add(name="y", datatype="INT32", shape=[1])
        message.inputs.add(name="z", datatype="INT32", shape=[1])
    with pytest.raises(OIPError, match=words):
        decode_request(message)


def test_no_inputs_and_twice_the_same_input_are_refused() -> None:
    with pytest.raises(OIPError, match="no inputs"):
        decode_request(request())
    message = request(raw_input_contents=[b"\0" * 4, b"\0" * 4])
    message.inputs.add(name="a", datatype="INT32", shape=[1])
    message.inputs.add(name="a", datatype="INT32", shape=[1])
    with pytest.raises(OIPError, match="given twice"):
        decode_request(message)


def test_outputs_typed_or_raw_in_the_requested_order() -> None:
    tensors = [Tensor.from_list("a", "INT32", [2], [1, 2]), Tensor.from_list("b", "BYTES", [1], [b"x"])]
    typed = encode_response(pb.ModelInferResponse(), "m", "1", "id", {"p": 1.5}, tensors, None, raw=False)
    assert [o.name for o in typed.outputs] == ["a", "b"] and not typed.raw_output_contents
    assert list(typed.outputs[0].contents.int_contents) == [1, 2] and typed.parameters["p"].double_param == 1.5
    asked = [RequestedOutput("b", {}, None), RequestedOutput("a", {}, None)]
    raw = encode_response(pb.ModelInferResponse(), "m", "1", "id", None, tensors, asked, raw=True)
    assert [o.name for o in raw.outputs] == ["b", "a"]
    assert list(raw.raw_output_contents) == [serialize_bytes([b"x"]), struct.pack("<2i", 1, 2)]
    half = [Tensor.from_list("h", "FP16", [1], [1.0])]  # no contents field: raw whatever the request was
    assert encode_response(pb.ModelInferResponse(), "m", "1", "", None, half, None, raw=False).raw_output_contents
    with pytest.raises(OIPError, match="Unexpected inference output 'zzz'"):
        encode_response(pb.ModelInferResponse(), "m", "1", "", None, tensors, [RequestedOutput("zzz", {}, None)], False)


def test_stubs_are_compiled_once_and_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MODELSERVER_CACHE", str(tmp_path))
    first = grpc_stubs.compile_descriptor_set(grpc_stubs.PROTOS / "oip_inference.proto")
    cached = list((tmp_path / "grpc").glob("oip_inference-*.pb"))
    assert len(cached) == 1 and cached[0].read_bytes() == first
    assert grpc_stubs.compile_descriptor_set(grpc_stubs.PROTOS / "oip_inference.proto") == first
