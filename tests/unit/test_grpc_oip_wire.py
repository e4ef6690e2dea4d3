"""ModelInfer's own (de)serializers (modelserver.grpc_oip_wire, grpc_oip_codec.response_bytes) against protobuf's:
what they read and write must be what protobuf reads and writes, with the raw tensors left where they are."""

from __future__ import annotations

import pytest

pytest.importorskip("grpc_tools")

from hypothesis import given, settings
from hypothesis import strategies as st

from modelserver.grpc_oip_codec import encode_response, response_bytes
from modelserver.grpc_oip_wire import WireError, output_entry, read_varint, split_request, varint
from modelserver.oip_codec import RequestedOutput
from workers import grpc_stubs
from workers.tensors import Tensor

pb = grpc_stubs.load("oip_inference")

names = st.text(st.characters(codec="utf-8"), max_size=12)
parameter = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=8))


def request_message(model: str, rid: str, params: dict, inputs: list, raw: list[bytes]) -> object:
    message = pb.ModelInferRequest(model_name=model, id=rid, raw_input_contents=raw)
    for key, value in params.items():
        slot = message.parameters[key]
        if isinstance(value, bool):
            slot.bool_param = value
        elif isinstance(value, int):
            slot.int64_param = value
        elif isinstance(value, float):
            slot.double_param = value
        else:
            slot.string_param = value
    for name, shape in inputs:
        message.inputs.add(name=name, datatype="UINT8", shape=shape)
    message.outputs.add(name="out")
    return message


@settings(max_examples=150, deadline=None)
@given(
    names,
    names,
    st.dictionaries(names, parameter, max_size=3),
    st.lists(st.tuples(names, st.lists(st.integers(0, 2**40), max_size=3)), max_size=3),
    st.lists(st.binary(max_size=300), max_size=4),
)
def test_split_request_reads_what_protobuf_reads(model, rid, params, inputs, raw) -> None:
    message = request_message(model, rid, params, inputs, raw)
    data = message.SerializeToString()
    rest, views = split_request(data)
    assert [bytes(view) for view in views] == raw
    assert all(view.obj is data for view in views)  # views of the received bytes: nothing copied
    parsed = pb.ModelInferRequest.FromString(rest)
    assert not parsed.raw_input_contents
    del message.raw_input_contents[:]
    assert parsed == message


def test_raw_contents_between_other_fields_are_found_in_order() -> None:
    """Protobuf merges concatenated messages: a client may write raw contents before or between other fields."""
    first = pb.ModelInferRequest(raw_input_contents=[b"a" * 70000]).SerializeToString()
    middle = pb.ModelInferRequest(model_name="m", id="x").SerializeToString()
    last = pb.ModelInferRequest(raw_input_contents=[b"", b"zz"]).SerializeToString()
    rest, views = split_request(first + middle + last)
    assert [bytes(view) for view in views] == [b"a" * 70000, b"", b"zz"]
    assert pb.ModelInferRequest.FromString(rest) == pb.ModelInferRequest(model_name="m", id="x")


def test_a_request_without_raw_contents_is_returned_as_it_is() -> None:
    data = pb.ModelInferRequest(model_name="m").SerializeToString()
    assert split_request(data) == (data, [])


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05ab",  # a string longer than what is left
        b"\x3a\xff",  # a truncated length varint
        b"\x0b",  # wire type 3 (groups): not protobuf 3
        b"\x0a" + b"\xff" * 11,  # a varint of 11 bytes
        b"\x0d\x00\x00",  # 4 fixed bytes announced, 2 there
    ],
)
def test_malformed_bytes_are_wire_errors(data: bytes) -> None:
    with pytest.raises(WireError):
        split_request(data)


@given(st.integers(0, 2**64 - 1))
def test_varints_round_trip(value: int) -> None:
    assert read_varint(varint(value) + b"rest", 0) == (value, len(varint(value)))


def test_an_output_entry_is_what_protobuf_writes() -> None:
    entry = output_entry("output-0", "FP32", [1, 0, 2**40])
    written = pb.ModelInferResponse.FromString(entry).outputs[0]
    expected = pb.ModelInferResponse.InferOutputTensor(name="output-0", datatype="FP32", shape=[1, 0, 2**40])
    assert written == expected


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(names, parameter, max_size=3),
    st.lists(st.tuples(st.binary(min_size=4, max_size=64), st.dictionaries(names, parameter, max_size=2)), max_size=3),
    names,
)
def test_raw_responses_parse_as_protobuf_writes_them(params, outputs, rid) -> None:
    tensors = [
        Tensor(f"o{index}", "UINT8", [len(data)], data, own or None) for index, (data, own) in enumerate(outputs)
    ]
    written = response_bytes(pb, "model", "1", rid, params or None, tensors, None, raw=True, wire_min_bytes=0)
    expected = encode_response(pb.ModelInferResponse(), "model", "1", rid, params or None, tensors, None, raw=True)
    assert pb.ModelInferResponse.FromString(written) == expected


def test_large_raw_answers_are_written_here_and_small_ones_by_protobuf() -> None:
    big = Tensor("big", "FP32", [65536], bytearray(262144), {"note": "x"})
    small = Tensor("small", "INT32", [2], b"\x01\x00\x00\x00\x02\x00\x00\x00")
    asked = [RequestedOutput("small", {}, None), RequestedOutput("big", {}, None)]
    for floor in (0, 1 << 30):  # every size by the wire codec, then every size by protobuf
        written = response_bytes(pb, "m", "", "r", {"p": 2}, [big, small], asked, raw=True, wire_min_bytes=floor)
        parsed = pb.ModelInferResponse.FromString(written)
        assert [o.name for o in parsed.outputs] == ["small", "big"]
        assert list(parsed.raw_output_contents) == [bytes(small.data), bytes(big.data)]
        assert parsed.outputs[1].parameters["note"].string_param == "x" and parsed.parameters["p"].int64_param == 2
    typed = pb.ModelInferResponse.FromString(response_bytes(pb, "m", "", "r", None, [small], None, raw=False))
    assert list(typed.outputs[0].contents.int_contents) == [1, 2] and not typed.raw_output_contents
