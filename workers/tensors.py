"""Typed tensors between the frontend and its workers, in the Open Inference Protocol's datatypes.

A :class:`Tensor` is a name, a datatype, a shape and one flat buffer of raw data, row-major and little-endian:
what the KServe v2 / Open Inference Protocol binary extension and Triton put on the wire. ``BYTES`` tensors use
the same framing as KServe's ``serialize_byte_tensor``: each element is a 4-byte little-endian length followed by
its bytes, all concatenated::

    serialize_bytes([b"ab", "c"]) == b"\\x02\\x00\\x00\\x00ab\\x01\\x00\\x00\\x00c"

On the wire a tensor is a map (:meth:`Tensor.to_wire`, :meth:`Tensor.from_wire`; docs/protocol.md) whose data
travels as an attachment frame when it is large, so it arrives in a ``bytearray`` of its own, never copied again.

This module is pure and imports nothing heavy: the frontend uses it on its hot path. numpy is imported only
inside :meth:`Tensor.as_numpy` and :meth:`Tensor.from_numpy`; the JSON-style list form (:meth:`Tensor.from_list`,
:meth:`Tensor.to_list`) needs only ``struct``. Every malformed tensor raises :class:`TensorError` (a
``ValueError``) naming the tensor; the frontend answers it with 400.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from .datatypes import (
    DATATYPES,
    ITEMSIZE,
    NUMPY_DTYPES,
    STRUCT_CODES,
    TENSOR_FIELDS,
    Buffer,
    TensorError,
    as_buffer,
    byte_view,
    deserialize_bytes,
    serialize_bytes,
    walk_bytes,
)
from .protocol import ATTACH_MIN, attach

__all__ = [
    "DATATYPES",
    "ITEMSIZE",
    "NUMPY_DTYPES",
    "TENSOR_FIELDS",
    "Tensor",
    "TensorError",
    "TensorMap",
    "deserialize_bytes",
    "serialize_bytes",
    "tensor_map",
]


_INT_RANGES = {
    datatype: (0, 2 ** (8 * size) - 1) if datatype[0] == "U" else (-(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1)
    for datatype, size in ITEMSIZE.items()
    if "INT" in datatype
}
_FLOATS = frozenset({"FP16", "FP32", "FP64", "BF16"})
_FAST_TYPES = {"BOOL": {bool}, "BYTES": {str, bytes}, **dict.fromkeys(_FLOATS, {int, float})}  # else {int}
_LENGTH = struct.Struct("<I")
_MAX_ELEMENT = 0xFFFF_FFFF
_new_object = object.__new__


# -- the tensor -----------------------------------------------------------------------------------


class Tensor:
    """One named tensor: ``datatype`` (see :data:`DATATYPES`), ``shape`` and its raw ``data``.

    ``data`` is ``bytes``, a ``bytearray`` or a ``memoryview`` of the row-major, little-endian elements (``BYTES``:
    the length-prefixed framing of :func:`serialize_bytes`). The constructor validates everything
    (:meth:`validate`) and raises :class:`TensorError`. A ``memoryview`` of another format is viewed as bytes.
    """

    __slots__ = ("data", "datatype", "name", "parameters", "shape")

    def __init__(
        self,
        name: str,
        datatype: str,
        shape: Iterable[int],
        data: Buffer,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.datatype = datatype
        self.shape = _shape(name, shape)
        self.data = as_buffer(data)
        self.parameters = parameters
        self.validate()

    @property
    def element_count(self) -> int:
        """The product of the shape (1 for the scalar shape ``()``)."""
        return math.prod(self.shape)

    @property
    def byte_size(self) -> int:
        """Bytes of ``data`` (for ``BYTES``, with the length prefixes)."""
        return len(self.data)

    def validate(self) -> None:
        """Raise :class:`TensorError` unless the datatype is known, the shape is non-negative ints and ``data``
        holds exactly ``element_count`` elements (fixed-size: ``element_count * itemsize`` bytes, BOOL bytes 0 or
        1; ``BYTES``: that many framed elements and nothing left over)."""
        name = self.name
        if not isinstance(name, str):
            raise TensorError(f"a tensor name must be a str, got {type(name).__name__}")
        if self.datatype not in DATATYPES:
            raise TensorError(f"tensor {name!r}: unknown datatype {self.datatype!r}; known: {', '.join(DATATYPES)}")
        self.shape = _shape(name, self.shape)
        data = self.data
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TensorError(f"tensor {name!r}: data must be bytes-like, got {type(data).__name__}")
        if self.parameters is not None and not isinstance(self.parameters, dict):
            raise TensorError(f"tensor {name!r}: parameters must be a map, got {type(self.parameters).__name__}")
        count = self.element_count
        itemsize = ITEMSIZE.get(self.datatype)
        if itemsize is None:
            try:
                found = sum(1 for _ in walk_bytes(byte_view(data), count + 1))
            except TensorError as err:
                raise TensorError(f"tensor {name!r}: {err}") from None
            if found != count:
                more = "more than " if found > count else ""
                raise TensorError(
                    f"tensor {name!r}: BYTES data holds {more}{min(found, count)} element(s), "
                    f"shape {list(self.shape)} needs {count}"
                )
            return
        expected = count * itemsize
        if len(data) != expected:
            raise TensorError(
                f"tensor {name!r}: {self.datatype} data is {len(data)} bytes, shape {list(self.shape)} needs "
                f"{expected} ({count} x {itemsize})"
            )
        if self.datatype == "BOOL" and _non_bool_bytes(data):
            raise TensorError(f"tensor {name!r}: BOOL data must be bytes 0 or 1")

    @classmethod
    def trusted(
        cls,
        name: str,
        datatype: str,
        shape: tuple[int, ...],
        data: Buffer,
        parameters: dict[str, Any] | None = None,
    ) -> Tensor:
        """A tensor of fields the caller built to fit each other (a codec that packed ``data`` itself, for ``shape``
        and ``datatype``), made without :meth:`validate`: on a hot path the checks cost more than the packing."""
        tensor = _new_object(cls)
        tensor.name = name
        tensor.datatype = datatype
        tensor.shape = shape
        tensor.data = data
        tensor.parameters = parameters
        return tensor

    # -- wire form ----------------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """The tensor map of docs/protocol.md; data of ``ATTACH_MIN`` bytes or more is marked to go as an
        attachment frame."""
        data = self.data
        if type(data) is not bytes or len(data) >= ATTACH_MIN:  # small bytes, the usual data, go as they are
            data = attach(data)
        wire: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": list(self.shape), "data": data}
        if self.parameters is not None:
            wire["parameters"] = self.parameters
        return wire

    @classmethod
    def from_wire(cls, wire: Any) -> Tensor:
        """Validate a tensor map from a peer; its ``data`` (an attachment's ``bytearray``) is kept, not copied."""
        if not isinstance(wire, Mapping):
            raise TensorError(f"a tensor must be a map, got {type(wire).__name__}")
        missing = TENSOR_FIELDS.difference(wire.keys())
        if missing:
            raise TensorError(f"tensor {wire.get('name')!r} is missing {', '.join(sorted(missing))}")
        shape = wire["shape"]
        if not isinstance(shape, list | tuple):
            raise TensorError(f"tensor {wire['name']!r}: shape must be a list, got {type(shape).__name__}")
        return cls(wire["name"], wire["datatype"], shape, wire["data"], wire.get("parameters"))

    # -- list form (JSON), no numpy -------------------------------------------------------------------

    @classmethod
    def from_list(
        cls, name: str, datatype: str, shape: Iterable[int], data: Any, parameters: dict[str, Any] | None = None
    ) -> Tensor:
        """A tensor from flat or nested (row-major) lists, as JSON carries them.

        Elements must suit the datatype: ``bool`` for BOOL only; ``int`` in range for the integer types; ``int`` or
        ``float`` for the floating types (FP16 and FP32 values beyond their range are errors, values between are
        rounded to nearest); ``str`` or ``bytes`` for BYTES. A scalar (shape ``()``) may be given bare."""
        if datatype not in DATATYPES:
            raise TensorError(f"tensor {name!r}: unknown datatype {datatype!r}; known: {', '.join(DATATYPES)}")
        dims = _shape(name, shape)
        flat = _flatten(data)
        count = math.prod(dims)
        if len(flat) != count:
            raise TensorError(f"tensor {name!r}: {len(flat)} element(s) given, shape {list(dims)} needs {count}")
        _check_types(name, datatype, flat)
        return cls(name, datatype, dims, _encode(name, datatype, flat), parameters)

    def to_list(self) -> list[Any]:
        """The elements, flat and row-major, as Python values: bools, ints, floats, or ``bytes`` for BYTES."""
        if self.datatype == "BYTES":
            return deserialize_bytes(self.data)
        count = self.element_count
        if self.datatype == "BF16":
            halves = struct.unpack(f"<{count}H", self.data)
            return list(struct.unpack(f"<{count}f", struct.pack(f"<{count}I", *(half << 16 for half in halves))))
        return list(struct.unpack(f"<{count}{STRUCT_CODES[self.datatype]}", self.data))

    # -- numpy ----------------------------------------------------------------------------------------

    def as_numpy(self) -> Any:
        """The tensor as a numpy array of its shape.

        Fixed-size types are a view of ``data`` (no copy): read-only when ``data`` is ``bytes``, writable when it is
        a ``bytearray``. ``BF16`` becomes a float32 array (a copy, as numpy has no bfloat16) and ``BYTES`` an object
        array of ``bytes``."""
        from .tensor_numpy import to_numpy

        return to_numpy(self.datatype, self.shape, self.data)

    @classmethod
    def from_numpy(
        cls, name: str, array: Any, datatype: str | None = None, parameters: dict[str, Any] | None = None
    ) -> Tensor:
        """A tensor of ``array`` (anything ``numpy.asarray`` takes).

        ``datatype`` defaults to the one of the array's dtype (object, str and bytes arrays: ``BYTES``); given, the
        array is cast to it if numpy casts that kind safely or within its kind (float64 to FP32, int to FP32, not
        float to INT8). A C-contiguous array of the right dtype is not copied: ``data`` is a view of its memory;
        other arrays are copied in row-major order."""
        from .tensor_numpy import numpy_fields

        datatype, shape, data = numpy_fields(name, array, datatype)
        return cls(name, datatype, shape, data, parameters)

    # -- value semantics ------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return NotImplemented
        return (
            self.name == other.name
            and self.datatype == other.datatype
            and self.shape == other.shape
            and self.parameters == other.parameters
            and self.data == other.data
        )

    __hash__ = None  # type: ignore[assignment]  # data may be mutable

    def __repr__(self) -> str:
        extra = f", parameters={self.parameters!r}" if self.parameters is not None else ""
        return f"Tensor({self.name!r}, {self.datatype}, shape={list(self.shape)}, {len(self.data)} bytes{extra})"


# -- helpers --------------------------------------------------------------------------------------


def _shape(name: Any, shape: Any) -> tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise TensorError(f"tensor {name!r}: shape must be a list of ints, got {type(shape).__name__}") from None
    for dim in dims:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise TensorError(f"tensor {name!r}: shape {list(dims)} must hold non-negative ints")
    return dims


def _non_bool_bytes(data: Buffer) -> bool:
    """True if ``data`` holds a byte other than 0 and 1."""
    raw = data if isinstance(data, bytes | bytearray) else bytes(data)
    return bool(raw.translate(None, b"\x00\x01"))


_NESTED = frozenset({list, tuple})


def _flatten(data: Any) -> list[Any]:
    """Row-major elements of nested lists (or tuples); a bare value is one element."""
    if not isinstance(data, list | tuple):
        return [data]
    flat = data if type(data) is list else list(data)
    while not _NESTED.isdisjoint(map(type, flat)):  # C-speed test for any list or tuple element
        level: list[Any] = []
        for element in flat:
            if isinstance(element, list | tuple):
                level.extend(element)
            else:
                level.append(element)
        flat = level
    return flat


def _accepts(datatype: str, value: Any) -> bool:
    if datatype == "BOOL":
        return isinstance(value, bool)
    if datatype == "BYTES":
        return isinstance(value, str | bytes | bytearray)
    if isinstance(value, bool):
        return False
    if datatype in _FLOATS:
        return isinstance(value, int | float)
    return isinstance(value, int)


def _check_types(name: str, datatype: str, flat: list[Any]) -> None:
    if set(map(type, flat)) <= _FAST_TYPES.get(datatype, {int}):
        return
    for index, value in enumerate(flat):
        if not _accepts(datatype, value):
            raise TensorError(
                f"tensor {name!r}: element {index} ({type(value).__name__} {value!r}) is not valid for {datatype}"
            )


def _encode(name: str, datatype: str, flat: list[Any]) -> bytes:
    if datatype == "BYTES":
        return serialize_bytes(flat)
    if datatype == "BOOL":
        return bytes(flat)
    count = len(flat)
    bounds = _INT_RANGES.get(datatype)
    if bounds is not None and flat:
        low, high = bounds
        if min(flat) < low or max(flat) > high:
            bad = next(value for value in flat if not low <= value <= high)
            raise TensorError(f"tensor {name!r}: {bad} is out of range for {datatype} ({low}..{high})")
    if datatype == "BF16":
        singles = _pack(name, "BF16", "f", flat)  # a float32 first: beyond its range is an error
        words = struct.unpack(f"<{count}I", singles)
        return struct.pack(f"<{count}H", *map(_bf16_bits, words))
    return _pack(name, datatype, STRUCT_CODES[datatype], flat)


def _pack(name: str, datatype: str, code: str, flat: list[Any]) -> bytes:
    try:
        return struct.pack(f"<{len(flat)}{code}", *flat)
    except (OverflowError, struct.error):
        for value in flat:
            try:
                struct.pack(f"<{code}", value)
            except (OverflowError, struct.error):
                raise TensorError(f"tensor {name!r}: {value!r} is out of range for {datatype}") from None
        raise


def _bf16_bits(single: int) -> int:
    """The upper 16 bits of a float32 bit pattern, rounded to nearest even; a NaN stays a (quiet) NaN."""
    if single & 0x7FFF_FFFF > 0x7F80_0000:
        return (single >> 16) | 0x0040
    return (single + 0x7FFF + ((single >> 16) & 1)) >> 16


TensorMap = dict[str, Any]
"""A tensor as the worker protocol carries it (docs/protocol.md): what :meth:`Tensor.to_wire` and :func:`tensor_map`
make."""


def tensor_map(
    name: str, datatype: str, shape: list[int], data: bytes, parameters: dict[str, Any] | None = None
) -> TensorMap:
    """The map :meth:`Tensor.to_wire` makes, straight from fields that fit each other (a codec that packed ``data``
    itself for ``shape`` and ``datatype``): a request's tensor that only travels to the worker then costs no
    :class:`Tensor` in between. A :class:`~modelserver.types.Job` takes it in place of the tensor."""
    wire: TensorMap = {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "data": data if type(data) is bytes and len(data) < ATTACH_MIN else attach(data),
    }
    if parameters is not None:
        wire["parameters"] = parameters
    return wire
