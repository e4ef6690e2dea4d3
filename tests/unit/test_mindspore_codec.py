"""MindSpore Serving's codec: URLs, value forms and their round trip to output JSON."""

from __future__ import annotations

import base64
import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelserver.mindspore_codec import (
    MindSporeError,
    Target,
    decode_instances,
    decode_value,
    encode_tensor,
    nest,
    parse_url,
)
from workers.tensors import Tensor


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/model/add:add_common", Target("add", 0, "add_common")),
        ("/model/add/version/3:add_common", Target("add", 3, "add_common")),
        ("/version/2/model/add:m", Target("add", 2, "m")),
        ("/model/my_version_model:m:x", Target("my_version_model", 0, "m:x")),  # the method is all after the first :
    ],
)
def test_urls(path: str, target: Target) -> None:
    assert parse_url(path) == target


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/x/:add", "please check url, the keyword:[model] must contain"),
        ("/model/add", "please check url, the keyword:[service method] must contain."),
        ("/model/add:", "please check url, the keyword:[service method] must contain."),
        ("/model/add/version/-1:m", "please check url, version number range failed"),
        ("/model/add/version/4294967295:m", "please check url, version number range failed"),
        ("/model/add/version/v1:m", "please check url, the keyword:[version] value invalid, request version number v1"),
    ],
)
def test_url_errors(path: str, message: str) -> None:
    with pytest.raises(MindSporeError) as caught:
        parse_url(path)
    assert caught.value.message == message and caught.value.kind == "url"


def test_one_instance_object_or_a_list() -> None:
    assert decode_instances({"instances": {"a": 1}}) == [{"a": 1}]
    assert decode_instances({"instances": [{"a": 1}, {"b": 2}]}) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize(
    ("value", "datatype", "shape"),
    [(1, "INT32", ()), (1.5, "FP32", ()), (True, "BOOL", ()), ("a", "BYTES", ()), ([[1], [2]], "INT32", (2, 1))],
)
def test_json_value_types_and_shapes(value: object, datatype: str, shape: tuple[int, ...]) -> None:
    tensor = decode_value("x", value)
    assert (tensor.datatype, tensor.shape) == (datatype, shape)
    assert encode_tensor(tensor) == value


def test_text_utf8_cannot_encode_is_a_parse_error() -> None:
    with pytest.raises(MindSporeError, match="Parser request failed"):
        decode_value("x", "\ud800")


def test_ints_beyond_int32_are_refused_not_wrapped() -> None:
    with pytest.raises(MindSporeError, match="out of the range of int32"):
        decode_value("x", [2**31])


def test_a_bool_b64_byte_other_than_0_or_1_is_refused() -> None:
    with pytest.raises(MindSporeError, match="bool data must be bytes 0 or 1"):
        decode_value("x", {"b64": base64.b64encode(b"\x02").decode(), "type": "bool"})


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ({"b64": "", "type": "fp16"}, "decode base64 size:0; Given info: type:float16; type size:2; element nums:1"),
        (
            {"b64": "", "type": "fp16", "shape": [1, 1]},
            "decode base64 size:0; Given info: type:float16; type size:2; element nums:1",
        ),
        (
            {"b64": "AAAAAA==", "type": "int32", "shape": [2]},
            "decode base64 size:4; Given info: type:int32; type size:4; element nums:2",
        ),
        (
            {"b64": "AAAAAAAA", "type": "fp32"},
            "decode base64 size:6; Given info: type:float32; type size:4; element nums:1",
        ),
    ],
)
def test_b64_data_of_the_wrong_size_says_both_sizes(value: dict, detail: str) -> None:
    """MindSpore's tests look for "size is not matched" and for the sizes, with a shape or without."""
    with pytest.raises(MindSporeError) as caught:
        decode_value("x", value)
    assert caught.value.message == "Parser request failed, size is not matched, " + detail


B64_ABC = base64.b64encode(b"ABC").decode()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[{"b64": ""}, {"b64": ""}], ["a", "b"]], "json array, string or bytes type only support one item"),
        ([[{"b64": ""}, {"b64": ""}], [True, False]], "json array, string or bytes type only support one item"),
        ([{"b64": B64_ABC, "type": "str"}] * 2, "json array, string or bytes type only support one item"),
        (
            [{"b64": "AAAA", "type": "int32"}],
            "json array, item is object type, object only support string or bytes type",
        ),
        (
            [[{"b64": "AAAA", "type": "fp16"}]],
            "json array, item is object type, object only support string or bytes type",
        ),
        ([{"b64": "AAAA", "type": "zz"}], "json array, data type is unknown"),
    ],
)
def test_arrays_of_b64_objects_at_any_depth(value: list, message: str) -> None:
    """The first leaf decides, however deep: an object makes a str/bytes array of one item (MindSpore's tests)."""
    with pytest.raises(MindSporeError) as caught:
        decode_value("x", value)
    assert caught.value.message == "Parser request failed, " + message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "json value is null, it is not supported"),
        ([None, 1], "json array, data type is unknown"),
        ([[]], "json array, data type is unknown"),
        ([[], [1]], "json array, data type is unknown"),
        ({}, "json object, value is empty"),
        (
            {"b64": "", "type": "str", "shape": [], "x": 1},
            "json object, items size is more than 3, only support specified ['b64', 'type', 'shape']",
        ),
    ],
)
def test_values_of_no_type_answer_mindspore_s_messages(value: object, message: str) -> None:
    with pytest.raises(MindSporeError) as caught:
        decode_value("x", value)
    assert caught.value.message == "Parser request failed, " + message


def test_a_nested_one_item_b64_array_reaches_the_shape_check() -> None:
    with pytest.raises(MindSporeError) as caught:
        decode_value("x", [[{"b64": B64_ABC}]])
    assert "but given shape is [1, 1]" in caught.value.message
    assert decode_value("x", [{"b64": B64_ABC}]).shape == (1,)


def test_float32_outputs_print_at_their_shortest() -> None:
    tensor = Tensor.from_numpy("y", np.array([3.2, 4.3, 1e-8, 0.1], np.float32))
    assert encode_tensor(tensor) == [3.2, 4.3, 1e-8, 0.1]
    assert encode_tensor(Tensor.from_numpy("y", np.array([1.1], np.float16))) == [1.1]


def test_nest_by_shape_with_zero_dims() -> None:
    assert nest([], (0,)) == []
    assert nest([], (1, 0)) == [[]]
    assert nest([], (2, 0, 3)) == [[], []]
    assert nest([1, 2, 3, 4, 5, 6], (2, 3)) == [[1, 2, 3], [4, 5, 6]]
    assert nest([7], ()) == 7


_TYPES = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "fp16": np.float16,
    "fp32": np.float32,
    "fp64": np.float64,
    "bool": np.bool_,
}
shapes = st.lists(st.integers(0, 3), max_size=3)


@given(name=st.sampled_from(sorted(_TYPES)), shape=shapes, seed=st.integers(0, 2**32 - 1))
def test_b64_tensors_round_trip_for_every_type_and_shape(name: str, shape: list[int], seed: int) -> None:
    dims = list(shape)
    if 0 in dims:  # MindSpore allows a zero dim only with no non-zero dim after it
        dims = dims[: dims.index(0)] + [0] * (len(dims) - dims.index(0))
    dtype = np.dtype(_TYPES[name])
    rng = np.random.default_rng(seed)
    array = (rng.integers(0, 2, dims) if dtype == np.bool_ else rng.integers(0, 100, dims)).astype(dtype)
    tensor = decode_value("x", {"b64": base64.b64encode(array.tobytes()).decode(), "type": name, "shape": dims})
    tensor.validate()  # built without validation: it must pass it
    assert tensor.shape == tuple(dims)
    assert np.array_equal(tensor.as_numpy(), array)
    assert np.array_equal(np.array(encode_tensor(tensor), dtype=dtype).reshape(dims), array)


json_leaves = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.floats(-1e6, 1e6, allow_nan=False, width=32),
    st.booleans(),
)


@given(leaf=json_leaves, dims=st.lists(st.integers(1, 3), min_size=1, max_size=3))
def test_nested_json_arrays_round_trip(leaf: object, dims: list[int]) -> None:
    value = nest([leaf] * math.prod(dims), tuple(dims))
    tensor = decode_value("x", value)
    tensor.validate()
    assert tensor.shape == tuple(dims)
    if isinstance(leaf, float):
        expected = struct.unpack("<f", struct.pack("<f", leaf))[0]
        assert np.allclose(np.array(encode_tensor(tensor), dtype=np.float32), expected)
    else:
        assert encode_tensor(tensor) == value


@given(
    st.recursive(
        st.one_of(st.none(), json_leaves, st.text(max_size=3)), lambda c: st.lists(c, max_size=3), max_leaves=8
    )
)
def test_any_json_value_decodes_or_fails_with_a_mindspore_message(value: object) -> None:
    try:
        tensor = decode_value("x", value)
    except MindSporeError as err:
        assert err.message
    else:
        tensor.validate()
