"""Read the bytes TorchServe's ``create_predict_response`` builds: what its ``send_intermediate_predict_response``
writes to ``context.cl_socket``.

With the real ``torchserve`` package installed, a streaming handler calls TorchServe's own function, which encodes
the pieces in TorchServe's frontend-backend wire format and hands them to ``context.cl_socket.sendall``. Our
context's ``cl_socket`` decodes them here and forwards each piece as one of our ``chunk`` frames, so the handler
streams unchanged whichever ``ts`` it imported. The format (big-endian ``int32`` lengths, TorchServe 0.12)::

    status | len message | message
    per request:  len request_id | request_id | len content_type | content_type
                  | http status | len phrase | phrase | header count | (len key | key | len value | value)*
                  | len body | body
    -1 (end of list)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

_INT = struct.Struct("!i")


class WireFormatError(ValueError):
    """The bytes are not one complete TorchServe predict response."""


@dataclass
class WirePiece:
    """One request's part of a predict response."""

    request_id: str
    content_type: str
    status: int
    phrase: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class WireResponse:
    """A whole predict response: the batch-level ``code`` and ``message``, then one piece per listed request."""

    code: int
    message: str
    pieces: list[WirePiece]


class _Reader:
    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def int(self) -> int:
        end = self._pos + 4
        if end > len(self._view):
            raise WireFormatError("truncated TorchServe response: an int32 is cut short")
        (value,) = _INT.unpack_from(self._view, self._pos)
        self._pos = end
        return value

    def blob(self, length: int | None = None) -> bytes:
        length = self.int() if length is None else length
        end = self._pos + length
        if length < 0 or end > len(self._view):
            raise WireFormatError(f"truncated TorchServe response: a field of {length} bytes does not fit")
        value = bytes(self._view[self._pos : end])
        self._pos = end
        return value

    def text(self, length: int | None = None) -> str:
        return self.blob(length).decode("utf-8")

    def at_end(self) -> bool:
        return self._pos == len(self._view)


def decode_predict_response(data: bytes | bytearray | memoryview) -> WireResponse:
    """Parse one predict response; :class:`WireFormatError` if it is malformed, truncated or has trailing bytes."""
    reader = _Reader(data)
    try:
        code = reader.int()
        message = reader.text()
        pieces = []
        while (length := reader.int()) != -1:
            pieces.append(_piece(reader, length))
    except UnicodeDecodeError as exc:
        raise WireFormatError(f"a text field of the TorchServe response is not UTF-8: {exc}") from exc
    if not reader.at_end():
        raise WireFormatError("trailing bytes after the end of a TorchServe response")
    return WireResponse(code, message, pieces)


def _piece(reader: _Reader, request_id_length: int) -> WirePiece:
    request_id = reader.text(request_id_length)
    content_type = reader.text()
    status = reader.int()
    phrase = reader.text()
    headers = {}
    for _ in range(reader.int()):
        key = reader.text()
        headers[key] = reader.text()
    return WirePiece(request_id, content_type, status, phrase, headers, reader.blob())


def encode_predict_response(response: WireResponse) -> bytes:
    """The bytes of ``response`` in the same format (for ``ts.protocol.otf_message_handler`` of the shim)."""
    out = bytearray(_INT.pack(response.code))
    _put(out, response.message.encode("utf-8"))
    for piece in response.pieces:
        _put(out, piece.request_id.encode("utf-8"))
        _put(out, piece.content_type.encode("utf-8"))
        out += _INT.pack(piece.status)
        _put(out, piece.phrase.encode("utf-8"))
        out += _INT.pack(len(piece.headers))
        for key, value in piece.headers.items():
            _put(out, key.encode("utf-8"))
            _put(out, value.encode("utf-8"))
        _put(out, piece.body)
    out += _INT.pack(-1)
    return bytes(out)


def _put(out: bytearray, blob: bytes) -> None:
    out += _INT.pack(len(blob))
    out += blob
