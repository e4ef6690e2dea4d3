"""``ModelInfer``'s tensors on the wire without copies: the gRPC method's own (de)serializers.

A raw tensor is most of a ``ModelInferRequest`` (1 MiB of a 1 MiB call) and protobuf would copy it twice on the way
in (parsing, then reading the repeated ``bytes`` field) and twice on the way out (setting the field, serializing).
Here the request's top-level fields are walked once: every ``raw_input_contents`` entry (field 7) becomes a
``memoryview`` of the received bytes, and protobuf parses only what is left (names, shapes, parameters: small). The
answer is written the same way: the small fields are encoded here (and parameter maps by protobuf, whose
serialized entries are appended: protobuf merges concatenated fields), then each ``raw_output_contents`` entry
(field 6) is its tag, its length and the model's buffer, joined once.

Protobuf's wire format: a field is a varint key ``number << 3 | wire type`` and its value: a varint (type 0), 8
bytes (1), a varint length and that many bytes (2), or 4 bytes (5).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

RAW_INPUT_CONTENTS = 7
"""``ModelInferRequest.raw_input_contents``."""
_RAW_OUTPUT = b"\x32"  # ModelInferResponse.raw_output_contents: field 6, length-delimited
_MODEL_NAME, _MODEL_VERSION, _ID, _OUTPUTS = b"\x0a", b"\x12", b"\x1a", b"\x2a"
_NAME, _DATATYPE, _SHAPE = b"\x0a", b"\x12", b"\x1a"  # InferOutputTensor's fields 1-3


class WireError(ValueError):
    """Bytes that are not a protobuf message."""


def read_varint(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    value = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def split_request(data: bytes | bytearray) -> tuple[bytes | bytearray | memoryview, list[memoryview]]:
    """``(the request without its raw_input_contents, those contents as views of data)``; the first is ``data``
    itself when there are none."""
    view = memoryview(data)
    raw: list[memoryview] = []
    kept: list[memoryview] = []
    start = pos = 0
    end = len(data)
    while pos < end:
        field = pos
        key, pos = read_varint(data, pos)
        wire = key & 7
        if wire == 2:
            length, pos = read_varint(data, pos)
            if pos + length > end:
                raise WireError("a field runs past the end of the message")
            if key >> 3 == RAW_INPUT_CONTENTS:
                kept.append(view[start:field])
                raw.append(view[pos : pos + length])
                start = pos + length
            pos += length
        elif wire == 0:
            _, pos = read_varint(data, pos)
        elif wire == 1 or wire == 5:
            pos += 8 if wire == 1 else 4
        else:
            raise WireError(f"wire type {wire} is not one protobuf 3 writes")
    if pos != end:
        raise WireError("a field runs past the end of the message")
    if not raw:
        return data, raw
    kept.append(view[start:])
    return b"".join(kept), raw


def varint(value: int) -> bytes:
    """``value`` (0 <= value < 2**64) as a varint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, value: bytes) -> bytes:
    return tag + varint(len(value)) + value


def output_entry(name: str, datatype: str, shape: Sequence[int], parameters: bytes = b"") -> bytes:
    """An ``InferOutputTensor`` (without contents); ``parameters``: its serialized parameter map entries."""
    body = _field(_NAME, name.encode()) + _field(_DATATYPE, datatype.encode())
    if shape:
        body += _field(_SHAPE, b"".join(varint(dim & 0xFFFF_FFFF_FFFF_FFFF) for dim in shape))
    return _field(_OUTPUTS, body + parameters)


def response_bytes(
    model_name: str,
    model_version: str,
    request_id: str,
    parameters: bytes,
    outputs: Iterable[bytes],
    raw: Iterable[Any],
) -> bytes:
    """A ``ModelInferResponse`` with raw outputs: the small fields, the serialized parameter entries, the output
    entries of :func:`output_entry`, then one ``raw_output_contents`` entry per buffer in ``raw`` (bytes, bytearray
    or a memoryview of bytes)."""
    return b"".join(response_pieces(model_name, model_version, request_id, parameters, outputs, raw))


def response_pieces(
    model_name: str,
    model_version: str,
    request_id: str,
    parameters: bytes,
    outputs: Iterable[bytes],
    raw: Iterable[Any],
) -> list[Any]:
    """:func:`response_bytes` as the pieces that make it, in order, not joined: the raw buffers themselves, for a
    transport that writes pieces (:func:`joined` makes the bytes)."""
    parts = [_field(_MODEL_NAME, model_name.encode())]
    if model_version:
        parts.append(_field(_MODEL_VERSION, model_version.encode()))
    if request_id:
        parts.append(_field(_ID, request_id.encode()))
    parts.append(parameters)
    parts.extend(outputs)
    for buffer in raw:
        parts += (_RAW_OUTPUT, varint(len(buffer)), buffer)
    return parts


def joined(message: Any) -> Any:
    """A message a method answers in its own wire format as one bytes-like object: a list of pieces joined, any
    other answer as it is."""
    return b"".join(message) if type(message) is list else message
