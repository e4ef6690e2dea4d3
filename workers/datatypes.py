"""The Open Inference Protocol's datatypes: element sizes, struct codes, numpy dtypes, and the ``BYTES`` framing.

The bottom of the tensor modules (:mod:`workers.tensors` builds on it, :mod:`workers.tensor_numpy` too), with no
import of its own beyond the standard library. ``BYTES`` elements use KServe's ``serialize_byte_tensor`` framing:
each element is a 4-byte little-endian length followed by its bytes, all concatenated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any


class TensorError(ValueError):
    """A tensor that breaks its datatype, shape or framing; the message names the tensor."""


# datatype: (bytes per element, struct code, numpy dtype); the struct codes are little-endian with standard sizes
_TABLE: dict[str, tuple[int, str, str | None]] = {
    "BOOL": (1, "?", "bool"),
    "UINT8": (1, "B", "u1"),
    "UINT16": (2, "H", "<u2"),
    "UINT32": (4, "I", "<u4"),
    "UINT64": (8, "Q", "<u8"),
    "INT8": (1, "b", "i1"),
    "INT16": (2, "h", "<i2"),
    "INT32": (4, "i", "<i4"),
    "INT64": (8, "q", "<i8"),
    "FP16": (2, "e", "<f2"),
    "FP32": (4, "f", "<f4"),
    "FP64": (8, "d", "<f8"),
    "BF16": (2, "H", None),
}

STRUCT_CODES: dict[str, str] = {datatype: code for datatype, (_, code, _) in _TABLE.items()}
"""The little-endian struct code of each fixed-size datatype (``BF16``: its bits as ``H``)."""

ITEMSIZE: dict[str, int] = {datatype: size for datatype, (size, _, _) in _TABLE.items()}
"""Bytes per element of each fixed-size datatype. ``BOOL`` elements are one byte, 0 or 1; ``BYTES`` has no fixed
size and is not listed."""

DATATYPES: tuple[str, ...] = (*ITEMSIZE, "BYTES")
"""Every datatype of the Open Inference Protocol."""

NUMPY_DTYPES: dict[str, str | None] = {**{datatype: row[2] for datatype, row in _TABLE.items()}, "BYTES": "object"}
"""The numpy dtype of each datatype (as a ``numpy.dtype`` argument). numpy has no bfloat16: ``as_numpy`` gives
``BF16`` as float32, and ``BYTES`` as an object array of ``bytes``."""

TENSOR_FIELDS = frozenset({"name", "datatype", "shape", "data"})
"""The fields of a tensor map on the wire; ``parameters`` (a map) is optional."""

Buffer = bytes | bytearray | memoryview


_LENGTH = struct.Struct("<I")
_MAX_ELEMENT = 0xFFFF_FFFF

# -- BYTES framing --------------------------------------------------------------------------------


def serialize_bytes(elements: Iterable[Any]) -> bytes:
    """KServe's ``BYTES`` layout: for each element a uint32 little-endian length, then the element.

    ``bytes`` (and ``bytearray``/``memoryview``) go as they are, ``str`` as UTF-8, anything else as ``str(x)`` in
    UTF-8."""
    parts: list[bytes] = []
    pack = _LENGTH.pack
    for element in elements:
        if isinstance(element, bytes):
            raw = element
        elif isinstance(element, bytearray | memoryview):
            raw = bytes(element)
        else:
            text = element if isinstance(element, str) else str(element)
            try:
                raw = text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise TensorError(f"BYTES element {text!r} is not encodable as UTF-8: {err}") from None
        if len(raw) > _MAX_ELEMENT:
            raise TensorError(f"BYTES element of {len(raw)} bytes is longer than a uint32 length can say")
        parts.append(pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def deserialize_bytes(buffer: Buffer) -> list[bytes]:
    """The elements of a ``BYTES`` buffer; :class:`TensorError` for a truncated length or element."""
    view = byte_view(buffer)
    return [bytes(view[start:end]) for start, end in walk_bytes(view, None)]


def walk_bytes(view: memoryview, limit: int | None) -> Iterable[tuple[int, int]]:
    """``(start, end)`` of each framed element; stops after ``limit`` elements (leaving the rest unchecked)."""
    size = len(view)
    offset = 0
    count = 0
    while offset < size and (limit is None or count < limit):
        if size - offset < _LENGTH.size:
            raise TensorError(f"BYTES data is truncated: {size - offset} byte(s) at offset {offset} are not a length")
        (length,) = _LENGTH.unpack_from(view, offset)
        start = offset + _LENGTH.size
        end = start + length
        if end > size:
            raise TensorError(
                f"BYTES data is truncated: element {count} at offset {offset} needs {length} bytes, "
                f"{size - start} are left"
            )
        yield start, end
        offset = end
        count += 1


def byte_view(buffer: Buffer) -> memoryview:
    view = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
    if view.format != "B" or view.ndim != 1:
        return memoryview(as_buffer(view))
    return view


def as_buffer(data: Any) -> Any:
    """A memoryview as a flat view of unsigned bytes (``len`` is then its byte size); other values as they are."""
    if not isinstance(data, memoryview) or (data.format == "B" and data.ndim == 1):
        return data
    if data.nbytes == 0:
        return b""
    if data.c_contiguous:
        try:
            return data.cast("B")
        except (TypeError, ValueError):  # a format memoryview cannot cast from
            pass
    return memoryview(data.tobytes())
