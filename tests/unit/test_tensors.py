"""Tests for workers/tensors.py: datatypes, validation, BYTES framing, list and numpy forms, and tensors on the wire."""

from __future__ import annotations

import math
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from workers.frame_decoder import FrameDecoder
from workers.protocol import (
    ATTACH_MIN,
    ATTACHMENT_FLAG,
    HEADER,
    Attached,
    encode_parts,
    max_frame_size_for,
)
from workers.socket_channel import SocketChannel
from workers.tensors import (
    DATATYPES,
    ITEMSIZE,
    NUMPY_DTYPES,
    Tensor,
    TensorError,
    deserialize_bytes,
    serialize_bytes,
    tensor_map,
)

REPO = Path(__file__).resolve().parents[2]
NUMERIC = [datatype for datatype in DATATYPES if datatype != "BYTES"]
INTEGERS = {
    datatype: (0, 2 ** (8 * ITEMSIZE[datatype]) - 1)
    if datatype.startswith("U")
    else (-(2 ** (8 * ITEMSIZE[datatype] - 1)), 2 ** (8 * ITEMSIZE[datatype] - 1) - 1)
    for datatype in NUMERIC
    if "INT" in datatype
}


# --- strategies --------------------------------------------------------------------------------


def _bf16_value(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits << 16))[0]


def element_strategy(datatype: str) -> st.SearchStrategy[Any]:
    if datatype == "BOOL":
        return st.booleans()
    if datatype in INTEGERS:
        low, high = INTEGERS[datatype]
        return st.integers(low, high)
    if datatype == "FP16":
        return st.floats(width=16, allow_nan=False) | st.integers(-2048, 2048)
    if datatype == "FP32":
        return st.floats(width=32, allow_nan=False) | st.integers(-(2**24), 2**24)
    if datatype == "FP64":
        return st.floats(allow_nan=False) | st.integers(-(2**53), 2**53)
    if datatype == "BF16":  # exactly representable values: any bit pattern but a NaN
        return st.integers(0, 0xFFFF).filter(lambda bits: bits & 0x7FFF <= 0x7F80).map(_bf16_value)
    return st.binary(max_size=20) | st.text(max_size=10)


shapes = st.lists(st.integers(0, 4), max_size=4).map(tuple)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, tuple[int, ...], list[Any]]:
    datatype = draw(st.sampled_from(DATATYPES))
    shape = draw(shapes)
    count = math.prod(shape)
    values = draw(st.lists(element_strategy(datatype), min_size=count, max_size=count))
    return datatype, shape, values


def expected_list(datatype: str, values: list[Any]) -> list[Any]:
    if datatype == "BYTES":
        return [value.encode() if isinstance(value, str) else value for value in values]
    if datatype in ("FP16", "FP32", "FP64", "BF16"):
        return [float(value) for value in values]
    return values


def nest(values: list[Any], shape: tuple[int, ...]) -> Any:
    """Row-major nested lists of ``shape``; a scalar shape gives the bare value."""
    if not shape:
        return values[0]
    if len(shape) == 1:
        return list(values)
    step = math.prod(shape[1:])
    return [nest(values[index * step : (index + 1) * step], shape[1:]) for index in range(shape[0])]


# --- the datatypes -----------------------------------------------------------------------------


def test_datatypes_sizes_and_numpy_dtypes() -> None:
    assert DATATYPES == (
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BF16",
        "BYTES",
    )
    assert ITEMSIZE["BOOL"] == 1 and ITEMSIZE["BF16"] == 2 and "BYTES" not in ITEMSIZE
    for datatype, size in ITEMSIZE.items():
        if NUMPY_DTYPES[datatype] is not None:
            assert np.dtype(NUMPY_DTYPES[datatype]).itemsize == size
    assert NUMPY_DTYPES["BF16"] is None and np.dtype(NUMPY_DTYPES["BYTES"]) == np.dtype(object)


# --- BYTES framing -----------------------------------------------------------------------------


def test_bytes_layout_is_kserves() -> None:
    assert serialize_bytes([b"ab", "c"]) == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"
    assert serialize_bytes([]) == b""
    assert serialize_bytes([b""]) == b"\x00\x00\x00\x00"
    assert serialize_bytes([7, 1.5, None, "é"]) == b"".join(
        struct.pack("<I", len(raw)) + raw for raw in (b"7", b"1.5", b"None", "é".encode())
    )
    assert serialize_bytes([bytearray(b"x"), memoryview(b"yz")]) == b"\x01\0\0\0x\x02\0\0\0yz"


@given(st.lists(st.binary(max_size=300) | st.text(max_size=50), max_size=20))
def test_bytes_round_trip(elements: list[bytes | str]) -> None:
    encoded = [element.encode() if isinstance(element, str) else element for element in elements]
    assert deserialize_bytes(serialize_bytes(elements)) == encoded
    assert deserialize_bytes(bytearray(serialize_bytes(elements))) == encoded
    tensor = Tensor.from_list("s", "BYTES", [len(elements)], elements)
    assert tensor.to_list() == encoded and tensor.data == serialize_bytes(elements)


@pytest.mark.parametrize(
    ("buffer", "error"),
    [
        (b"\x01\x00\x00", "not a length"),
        (b"\x02\x00\x00\x00a", "needs 2 bytes, 1 are left"),
        (b"\x01\x00\x00\x00a\x00", "not a length"),
        (b"\xff\xff\xff\xff", "needs 4294967295 bytes"),
    ],
)
def test_deserialize_bytes_rejects_truncation(buffer: bytes, error: str) -> None:
    with pytest.raises(TensorError, match=error):
        deserialize_bytes(buffer)


# --- round trips -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_list_tensor_numpy_round_trip(case: tuple[str, tuple[int, ...], list[Any]]) -> None:
    datatype, shape, values = case
    tensor = Tensor.from_list("x", datatype, shape, values)
    assert (tensor.shape, tensor.element_count) == (shape, len(values))
    assert tensor.to_list() == expected_list(datatype, values)
    assert Tensor.from_list("x", datatype, list(shape), nest(values, shape)) == tensor
    array = tensor.as_numpy()
    assert array.shape == shape
    assert array.dtype == np.dtype({"BF16": "float32", "BYTES": object}.get(datatype) or NUMPY_DTYPES[datatype])
    assert array.reshape(-1).tolist() == expected_list(datatype, values)
    again = Tensor.from_numpy("x", array, "BF16" if datatype == "BF16" else None)
    assert again == tensor
    assert Tensor.from_wire(tensor.to_wire()) == tensor


@pytest.mark.parametrize("datatype", NUMERIC)
@pytest.mark.parametrize("shape", [(), (0,), (1, 0), (2, 0, 3), (3,), (2, 3)])
def test_scalar_and_zero_size_shapes(datatype: str, shape: tuple[int, ...]) -> None:
    count = math.prod(shape)
    values = [True] * count if datatype == "BOOL" else [1] * count
    tensor = Tensor.from_list("z", datatype, shape, values)
    assert tensor.byte_size == count * ITEMSIZE[datatype]
    assert tensor.element_count == count
    array = tensor.as_numpy()
    assert array.shape == shape and array.size == count
    assert Tensor.from_numpy("z", array, datatype) == tensor
    assert Tensor.from_wire(tensor.to_wire()) == tensor


@pytest.mark.parametrize("shape", [(), (0,), (1, 0), (2, 0, 3)])
def test_bytes_scalar_and_zero_size_shapes(shape: tuple[int, ...]) -> None:
    count = math.prod(shape)
    tensor = Tensor.from_list("s", "BYTES", shape, ["é"] * count if shape else "é")
    assert tensor.to_list() == ["é".encode()] * count
    array = tensor.as_numpy()
    assert array.shape == shape and array.dtype == object
    assert Tensor.from_numpy("s", array) == tensor


def test_a_bare_scalar_is_one_element() -> None:
    assert Tensor.from_list("s", "INT32", [], 5).to_list() == [5]
    assert Tensor.from_list("s", "INT32", (), [5]).as_numpy().shape == ()


numeric_dtypes = st.sampled_from(
    ["?", "u1", "<u2", ">u2", "<u4", "<u8", "i1", "<i2", "<i4", ">i4", "<i8", "<f2", "<f4", ">f4", "<f8", ">f8"]
)


@settings(max_examples=200, deadline=None)
@given(
    array=numeric_dtypes.flatmap(
        lambda dtype: hnp.arrays(np.dtype(dtype), hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    ),
    view=st.sampled_from(["as is", "transposed", "strided", "reversed"]),
)
def test_numpy_round_trip_of_any_layout(array: np.ndarray, view: str) -> None:
    if view == "transposed":
        array = array.T
    elif view == "strided" and array.ndim:
        array = array[..., ::2]
    elif view == "reversed" and array.ndim:
        array = array[::-1]
    tensor = Tensor.from_numpy("n", array)
    assert tensor.datatype == {"b": "BOOL", "u": "UINT", "i": "INT", "f": "FP"}[array.dtype.kind] + (
        "" if array.dtype.kind == "b" else str(8 * array.dtype.itemsize)
    )
    back = tensor.as_numpy()
    assert back.shape == array.shape
    assert np.array_equal(back, array, equal_nan=array.dtype.kind == "f")
    assert back.tobytes() == np.ascontiguousarray(array, dtype=back.dtype).tobytes()  # bit-exact, NaNs included
    if array.dtype.kind == "f" and np.isnan(array).any():
        return  # through Python floats a NaN keeps no payload (struct packs FP16 NaNs as one pattern)
    listed = Tensor.from_list("n", tensor.datatype, array.shape, array.tolist())
    assert listed.to_list() == tensor.to_list()
    assert bytes(listed.data) == bytes(tensor.data)


def test_from_numpy_does_not_copy_contiguous_arrays_and_copies_others() -> None:
    array = np.arange(12, dtype="<f4").reshape(3, 4)
    tensor = Tensor.from_numpy("a", array)
    assert np.shares_memory(np.frombuffer(tensor.data, dtype="<f4"), array)
    strided = Tensor.from_numpy("b", array[:, ::2])
    assert strided.to_list() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    fortran = Tensor.from_numpy("c", np.asfortranarray(array))
    assert fortran.to_list() == list(map(float, range(12)))


def test_as_numpy_is_a_view_read_only_for_bytes_writable_for_bytearray() -> None:
    data = struct.pack("<4i", 1, 2, 3, 4)
    frozen = Tensor("t", "INT32", (2, 2), data).as_numpy()
    assert not frozen.flags.writeable and frozen.tolist() == [[1, 2], [3, 4]]
    buffer = bytearray(data)
    writable = Tensor("t", "INT32", (2, 2), buffer).as_numpy()
    writable[0, 0] = 9
    assert buffer[:4] == b"\x09\x00\x00\x00"


def test_from_numpy_with_a_datatype_casts_within_kind() -> None:
    assert Tensor.from_numpy("x", np.array([1.5, 2.0]), "FP32").to_list() == [1.5, 2.0]
    assert Tensor.from_numpy("x", np.array([1, 2]), "FP16").to_list() == [1.0, 2.0]
    assert Tensor.from_numpy("x", np.array([1, 2]), "BYTES").to_list() == [b"1", b"2"]
    with pytest.raises(TensorError, match="cannot be stored as INT8"):
        Tensor.from_numpy("x", np.array([1.5]), "INT8")
    with pytest.raises(TensorError, match="cannot be stored as BF16"):
        Tensor.from_numpy("x", np.array(["a"]), "BF16")
    with pytest.raises(TensorError, match="no Open Inference Protocol datatype"):
        Tensor.from_numpy("x", np.array([1j]))
    with pytest.raises(TensorError, match="unknown datatype"):
        Tensor.from_numpy("x", np.array([1]), "INT128")


def test_from_numpy_strings_and_objects_are_bytes() -> None:
    assert Tensor.from_numpy("u", np.array([["a", "bé"]])).to_list() == [b"a", "bé".encode()]
    assert Tensor.from_numpy("s", np.array([b"x\x00y"])).to_list() == [b"x\x00y"]
    mixed = np.array([b"\x00raw", "text", 3], dtype=object)
    tensor = Tensor.from_numpy("o", mixed)
    assert tensor.datatype == "BYTES" and tensor.to_list() == [b"\x00raw", b"text", b"3"]
    assert tensor.as_numpy().tolist() == [b"\x00raw", b"text", b"3"]


def test_bf16_rounds_the_float32_bits_to_nearest_even() -> None:
    def bits(value: float) -> int:
        return struct.unpack("<H", Tensor.from_list("b", "BF16", [1], [value]).data)[0]

    def from_bits(single: int) -> float:
        return struct.unpack("<f", struct.pack("<I", single))[0]

    assert bits(1.0) == 0x3F80
    assert bits(from_bits(0x3F808000)) == 0x3F80  # halfway, even below: down
    assert bits(from_bits(0x3F818000)) == 0x3F82  # halfway, odd below: up
    assert bits(from_bits(0x3F808001)) == 0x3F81  # above halfway: up
    assert bits(from_bits(0x7F7FFFFF)) == 0x7F80  # the largest float32 rounds to infinity
    assert bits(-math.inf) == 0xFF80
    assert math.isnan(Tensor.from_list("b", "BF16", [1], [math.nan]).to_list()[0])
    singles = np.array([from_bits(0x3F808000), from_bits(0x3F818000), 1.0, math.nan], dtype=np.float32)
    via_numpy = Tensor.from_numpy("b", singles, "BF16")
    assert via_numpy.data[:6] == struct.pack("<3H", 0x3F80, 0x3F82, 0x3F80)
    assert math.isnan(via_numpy.as_numpy()[3])
    assert via_numpy.as_numpy().dtype == np.float32


def test_fp16_special_values() -> None:
    tensor = Tensor.from_list("h", "FP16", [4], [65504.0, -0.0, math.inf, 6e-8])
    assert tensor.to_list()[:3] == [65504.0, -0.0, math.inf] and tensor.to_list()[3] > 0


def test_memoryview_data_is_viewed_as_bytes() -> None:
    words = memoryview(np.arange(3, dtype="<i4"))
    tensor = Tensor("m", "INT32", [3], words)
    assert tensor.byte_size == 12 and tensor.to_list() == [0, 1, 2]
    strided = memoryview(np.arange(6, dtype="<i4"))[::2]
    assert Tensor("m", "INT32", [3], strided).to_list() == [0, 2, 4]


# --- validation --------------------------------------------------------------------------------

INVALID: list[tuple[Callable[[], Any], str]] = [
    (lambda: Tensor("t", "FP8", [1], b"\x00"), "tensor 't': unknown datatype 'FP8'"),
    (lambda: Tensor(3, "FP32", [1], b"\x00" * 4), "name must be a str"),  # type: ignore[arg-type]
    (lambda: Tensor("t", "FP32", [-1], b""), "non-negative ints"),
    (lambda: Tensor("t", "FP32", [1.0], b"\x00" * 4), "non-negative ints"),  # type: ignore[list-item]
    (lambda: Tensor("t", "FP32", [True], b"\x00" * 4), "non-negative ints"),
    (lambda: Tensor("t", "FP32", 4, b"\x00" * 4), "shape must be a list"),  # type: ignore[arg-type]
    (lambda: Tensor("t", "FP32", [2], b"\x00" * 4), "FP32 data is 4 bytes, shape \\[2\\] needs 8"),
    (lambda: Tensor("t", "INT64", [], b""), "needs 8"),
    (lambda: Tensor("t", "UINT8", [0], b"\x00"), "needs 0"),
    (lambda: Tensor("t", "FP32", [1], [0.0]), "data must be bytes-like"),  # type: ignore[arg-type]
    (lambda: Tensor("t", "FP32", [1], "abcd"), "data must be bytes-like"),  # type: ignore[arg-type]
    (lambda: Tensor("t", "BOOL", [2], b"\x00\x02"), "BOOL data must be bytes 0 or 1"),
    (lambda: Tensor("t", "BYTES", [2], serialize_bytes([b"a"])), "holds 1 element\\(s\\), shape \\[2\\] needs 2"),
    (lambda: Tensor("t", "BYTES", [1], serialize_bytes([b"a", b"b"])), "more than 1 element"),
    (lambda: Tensor("t", "BYTES", [1], b"\x01\x00\x00\x00ab"), "tensor 't': BYTES data is truncated"),
    (lambda: Tensor("t", "BYTES", [0], b"\x00"), "tensor 't': BYTES data is truncated"),
    (lambda: Tensor("t", "FP32", [1], b"\x00" * 4, parameters=[1]), "parameters must be a map"),  # type: ignore[arg-type]
    (lambda: Tensor.from_list("t", "INT32", [2], [1, 1.5]), "element 1 \\(float 1.5\\) is not valid for INT32"),
    (lambda: Tensor.from_list("t", "INT32", [1], [True]), "element 0 \\(bool True\\) is not valid for INT32"),
    (lambda: Tensor.from_list("t", "FP32", [1], ["1.0"]), "element 0 \\(str '1.0'\\) is not valid for FP32"),
    (lambda: Tensor.from_list("t", "FP32", [1], [None]), "is not valid for FP32"),
    (lambda: Tensor.from_list("t", "FP64", [1], [False]), "is not valid for FP64"),
    (lambda: Tensor.from_list("t", "BOOL", [1], [1]), "element 0 \\(int 1\\) is not valid for BOOL"),
    (lambda: Tensor.from_list("t", "BYTES", [1], [1]), "is not valid for BYTES"),
    (lambda: Tensor.from_list("t", "INT8", [2], [1, 128]), "128 is out of range for INT8 \\(-128..127\\)"),
    (lambda: Tensor.from_list("t", "UINT8", [1], [-1]), "-1 is out of range for UINT8"),
    (lambda: Tensor.from_list("t", "UINT64", [1], [2**64]), "out of range for UINT64"),
    (lambda: Tensor.from_list("t", "INT64", [1], [-(2**63) - 1]), "out of range for INT64"),
    (lambda: Tensor.from_list("t", "FP16", [1], [65520.0]), "65520.0 is out of range for FP16"),
    (lambda: Tensor.from_list("t", "FP32", [1], [1e39]), "out of range for FP32"),
    (lambda: Tensor.from_list("t", "BF16", [1], [1e39]), "out of range for BF16"),
    (lambda: Tensor.from_list("t", "FP64", [1], [10**400]), "out of range for FP64"),
    (
        lambda: Tensor.from_list("t", "FP32", [2, 2], [1.0, 2.0, 3.0]),
        "3 element\\(s\\) given, shape \\[2, 2\\] needs 4",
    ),
    (lambda: Tensor.from_list("t", "FP32", [0], [1.0]), "1 element\\(s\\) given, shape \\[0\\] needs 0"),
    (lambda: Tensor.from_list("t", "INT4", [1], [1]), "unknown datatype 'INT4'"),
    (lambda: Tensor.from_wire([1, 2]), "a tensor must be a map"),
    (lambda: Tensor.from_wire({"name": "w", "datatype": "FP32", "shape": [1]}), "tensor 'w' is missing data"),
    (lambda: Tensor.from_wire({"name": "w", "datatype": "FP32", "shape": 1, "data": b""}), "shape must be a list"),
    (lambda: Tensor.from_wire({"name": "w", "datatype": "FP32", "shape": [1], "data": "abcd"}), "bytes-like"),
    (lambda: Tensor.from_wire({"name": "w", "datatype": "FP32", "shape": [1], "data": b"\0"}), "needs 4"),
]


@pytest.mark.parametrize(("make", "error"), INVALID, ids=[error for _, error in INVALID])
def test_invalid_tensors_raise_tensor_error_naming_the_tensor(make: Callable[[], Any], error: str) -> None:
    with pytest.raises(TensorError, match=error) as raised:
        make()
    assert isinstance(raised.value, ValueError)


def test_validate_checks_a_tensor_changed_after_construction() -> None:
    tensor = Tensor.from_list("t", "FP32", [2], [1.0, 2.0])
    tensor.shape = (3,)
    with pytest.raises(TensorError, match="needs 12"):
        tensor.validate()


def test_wire_form() -> None:
    tensor = Tensor.from_list("t", "INT16", [2], [1, -1], parameters={"content_type": "x"})
    assert tensor.to_wire() == {
        "name": "t",
        "datatype": "INT16",
        "shape": [2],
        "data": b"\x01\x00\xff\xff",
        "parameters": {"content_type": "x"},
    }
    assert "parameters" not in Tensor.from_list("t", "INT16", [0], []).to_wire()
    assert Tensor.from_wire(tensor.to_wire()) == tensor
    assert repr(tensor) == "Tensor('t', INT16, shape=[2], 4 bytes, parameters={'content_type': 'x'})"
    assert tensor != Tensor.from_list("t", "INT16", [2], [1, 0], parameters={"content_type": "x"})


def test_a_tensor_map_made_straight_is_the_wire_form_of_its_tensor() -> None:
    for data, parameters in ((b"\x01\x00\xff\xff", None), (b"\x00" * ATTACH_MIN, {"content_type": "str"})):
        count = len(data) // 2
        made = tensor_map("t", "INT16", [count], data, parameters)
        expected = Tensor("t", "INT16", [count], data, parameters).to_wire()
        assert set(made) == set(expected) and made["shape"] == expected["shape"] == [count]
        for wire in (made, expected):  # large data is marked to go as an attachment frame, small data as it is
            if len(data) >= ATTACH_MIN:
                assert type(wire["data"]) is Attached and wire["data"].data == data
            else:
                assert wire["data"] == data
        assert made.get("parameters") == parameters


def test_the_module_needs_no_numpy() -> None:
    script = (
        "import sys\n"
        "import workers.tensors as t\n"
        "assert 'numpy' not in sys.modules, 'importing workers.tensors imported numpy'\n"
        "sys.modules['numpy'] = None\n"
        "x = t.Tensor.from_list('x', 'BF16', [2], [[1.5], [2]])\n"
        "assert x.to_list() == [1.5, 2.0]\n"
        "assert t.Tensor.from_wire(x.to_wire()) == x\n"
        "assert t.Tensor.from_list('s', 'BYTES', [1], ['a']).to_list() == [b'a']\n"
        "try:\n"
        "    x.as_numpy()\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('as_numpy worked without numpy')\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=60)


# --- tensors in frames -------------------------------------------------------------------------


def every_kind_of_tensor() -> list[Tensor]:
    """Each numeric datatype small and large (>= ATTACH_MIN), BYTES small and large, scalars and zero sizes."""
    tensors = []
    rng = np.random.default_rng(7)
    for datatype in NUMERIC:
        dtype = NUMPY_DTYPES[datatype] or "<f4"
        count = ATTACH_MIN // ITEMSIZE[datatype] + 3
        if datatype == "BOOL":
            values = rng.integers(0, 2, count).astype(bool)
        elif np.dtype(dtype).kind == "f":
            values = rng.standard_normal(count).astype(dtype)
        else:
            values = rng.integers(0, 100, count).astype(dtype)
        tensors.append(Tensor.from_numpy(f"{datatype}-large", values, datatype))
        tensors.append(Tensor.from_numpy(f"{datatype}-small", values[:5].reshape(5, 1), datatype))
        tensors.append(Tensor.from_numpy(f"{datatype}-scalar", values[0], datatype))
        tensors.append(Tensor.from_numpy(f"{datatype}-empty", values[:0].reshape(2, 0, 3), datatype))
    tensors.append(Tensor.from_list("bytes-small", "BYTES", [2], [b"\x00\xff", "é"], parameters={"p": 1}))
    tensors.append(Tensor.from_list("bytes-large", "BYTES", [3], [b"a" * ATTACH_MIN, b"", "z"]))
    tensors.append(Tensor.from_list("bytes-empty", "BYTES", [1, 0], []))
    return tensors


def infer_of(tensors: list[Tensor]) -> dict[str, Any]:
    job = {
        "id": 1,
        "request_id": "r-1",
        "headers": {},
        "inputs": [],
        "method": "predict",
        "tensors": [tensor.to_wire() for tensor in tensors],
    }
    return {"kind": "infer", "jobs": [job]}


def received_tensors(message: dict[str, Any]) -> list[Tensor]:
    return [Tensor.from_wire(wire) for wire in message["jobs"][0]["tensors"]]


def check_arrival(sent: list[Tensor], received: list[Tensor]) -> None:
    assert received == sent
    for before, after in zip(sent, received, strict=True):
        if before.byte_size >= ATTACH_MIN:
            assert type(after.data) is bytearray  # an attachment: the receiver's own buffer, not copied again
        else:
            assert type(after.data) is bytes


def test_tensors_travel_as_attachments_through_encode_parts_and_frame_decoder() -> None:
    tensors = every_kind_of_tensor()
    parts = encode_parts(infer_of(tensors))
    large = [tensor for tensor in tensors if tensor.byte_size >= ATTACH_MIN]
    assert len(large) == len(NUMERIC) + 1
    headers = [HEADER.unpack(part)[0] for part in parts[:-2:2]]
    assert headers == [ATTACHMENT_FLAG | tensor.byte_size for tensor in large]
    assert all(attached is tensor.data for attached, tensor in zip(parts[1:-2:2], large, strict=True))  # not copied
    [message] = FrameDecoder().feed(b"".join(parts))
    check_arrival(tensors, received_tensors(message))


@contextmanager
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    left.settimeout(30)
    right.settimeout(30)
    try:
        yield left, right
    finally:
        left.close()
        right.close()


def receive_one(sock: socket.socket, decoder: FrameDecoder) -> dict[str, Any]:
    """The frontend's way: recv_into the buffer the decoder hands out until a message is complete."""
    while True:
        count = sock.recv_into(decoder.get_buffer())
        assert count, "the sender closed before a whole message arrived"
        messages = decoder.buffer_updated(count)
        if messages:
            assert len(messages) == 1
            return messages[0]


def send_in_thread(channel: SocketChannel, message: dict[str, Any]) -> threading.Thread:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            channel.send(message)
        except BaseException as err:  # reported by the caller
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_tensors_travel_through_a_socket_channel_to_a_frame_decoder() -> None:
    tensors = every_kind_of_tensor()
    with socket_pair() as (left, right):
        thread = send_in_thread(SocketChannel(left), infer_of(tensors))
        message = receive_one(right, FrameDecoder())
        thread.join(30)
        assert not thread.is_alive() and not thread.errors  # type: ignore[attr-defined]
    check_arrival(tensors, received_tensors(message))


def test_a_100_mb_fp32_tensor_round_trips_through_a_socketpair() -> None:
    started = time.monotonic()
    array = np.arange(25 * 2**20, dtype=np.float32)  # 100 MiB
    tensor = Tensor.from_numpy("big", array)
    limit = max_frame_size_for(tensor.byte_size, 1)
    with socket_pair() as (left, right):
        thread = send_in_thread(SocketChannel(left, limit), infer_of([tensor]))
        message = receive_one(right, FrameDecoder(limit))
        thread.join(30)
        assert not thread.is_alive() and not thread.errors  # type: ignore[attr-defined]
    [received] = received_tensors(message)
    assert type(received.data) is bytearray and received.byte_size == 100 * 2**20
    values = received.as_numpy()
    assert values.flags.writeable and np.shares_memory(values, np.frombuffer(received.data, dtype=np.uint8))
    assert np.array_equal(values, array)
    assert time.monotonic() - started < 5
