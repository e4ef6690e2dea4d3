"""gRPC over HTTP/2, the parts that are bytes and words: the 5-byte message prefix, ``grpc-timeout``, the header
blocks of an answer (its headers, its trailers, a trailers-only answer) and the metadata a call sees.

See gRPC's "PROTOCOL-HTTP2" document: a message is a compressed flag (0 or 1), its length (4 bytes, big-endian)
and its bytes; ``grpc-message`` is percent-encoded UTF-8; a ``-bin`` metadata value is base64.
"""

from __future__ import annotations

import base64
import re
import struct
import zlib
from collections.abc import Iterable
from typing import Any

from workers.buffers import unfilled_bytearray

from .hpack_io import encode_block, encode_literal

PREFIX = struct.Struct(">BI")
PREFIX_SIZE = 5

ENCODINGS = ("identity", "gzip", "deflate")
"""What a call's messages may be compressed with: gRPC's gzip and deflate (zlib's two formats), read with zlib."""
ACCEPT_ENCODING = ",".join(ENCODINGS)


ANSWER_HEADERS = encode_block(
    [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-accept-encoding", ACCEPT_ENCODING.encode())]
)
"""The headers of every answer that has messages: made once."""
TRAILERS_ONLY_HEADERS = encode_block([(b":status", b"200"), (b"content-type", b"application/grpc")])
"""What an answer without messages begins with, its trailers following in the same block."""
OK_TRAILERS = encode_literal(b"grpc-status", b"0")

_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}

RESERVED = frozenset(
    {"content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "grpc-message-type"}
)
"""Headers of a call that are gRPC's own, not metadata for the service (pseudo-headers are not either)."""

OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED = 0, 1, 2, 3, 4
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 8, 12, 13, 14


class MessageTooLarge(Exception):
    def __init__(self, size: int, limit: int, bound: str = "") -> None:
        super().__init__(f"Received message larger than max ({bound}{size} vs. {limit})")


class CompressedMessage(Exception):
    """A message that cannot be read as the call's ``grpc-encoding`` says (the call ends INTERNAL)."""


def inflate(data: bytes | bytearray | memoryview, limit: int) -> bytes:
    """A compressed message's bytes, at most ``limit`` of them: inflating stops there (a small message that would
    inflate past the limit costs no more than the limit)."""
    inflater = zlib.decompressobj(32 + 15)  # a zlib or a gzip header, whichever the message has
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as err:
        raise CompressedMessage(f"Failed to decompress the message: {err}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise MessageTooLarge(len(out), limit, "at least ")
    if not inflater.eof:
        raise CompressedMessage("Failed to decompress the message: its compressed bytes end early")
    return out


def frame(message: bytes | bytearray | memoryview) -> bytes:
    """A message behind its prefix (not compressed)."""
    return PREFIX.pack(0, len(message)) + message


BIG_MESSAGE = 64 << 10
"""From this size on, a received message is assembled in a ``bytearray`` of its size and given as it is (no copy
to ``bytes``); a smaller one is ``bytes``."""


class MessageReader:
    """A call's request messages out of its DATA, in any split: each message is copied once, from the DATA
    where it is to the message's own buffer."""

    __slots__ = ("limit", "encoding", "_head", "_body", "_view", "_filled", "_compressed")

    def __init__(self, limit: int, encoding: str = "identity") -> None:
        self.limit = limit
        self.encoding = encoding
        """The call's ``grpc-encoding``: a message whose flag says compressed is inflated with it."""
        self._compressed = False
        self._head = bytearray()
        self._body: bytearray | None = None
        self._view: memoryview | None = None
        """A view of ``_body``: a slice assignment through it is a plain copy (a bytearray's own costs more)."""
        self._filled = 0

    @property
    def partial(self) -> bool:
        """Whether a message has begun and is not whole."""
        return bool(self._head) or self._body is not None

    def feed(self, data: bytes | memoryview) -> list[bytes | bytearray]:
        """The messages that ``data`` completes. Raises :class:`MessageTooLarge` as soon as a prefix announces more
        than ``limit`` bytes, and :class:`CompressedMessage` for a compressed one (only ``identity`` is
        accepted)."""
        size = len(data)
        body = self._body
        if body is not None:  # inside a message's bytes: the common case of a large message, kept short
            filled = self._filled
            if filled + size < len(body):
                self._view[filled : filled + size] = data  # type: ignore[index]
                self._filled = filled + size
                return []
        found: list[bytes | bytearray] = []
        pos = 0
        while pos < size:
            body = self._body
            if body is None:
                head = self._head
                if not head and size - pos >= PREFIX_SIZE:
                    compressed, length = PREFIX.unpack_from(data, pos)
                    pos += PREFIX_SIZE
                else:
                    taken = min(PREFIX_SIZE - len(head), size - pos)
                    head += data[pos : pos + taken]
                    pos += taken
                    if len(head) < PREFIX_SIZE:
                        break
                    compressed, length = PREFIX.unpack(head)
                    head.clear()
                if length > self.limit:
                    raise MessageTooLarge(length, self.limit)
                if compressed and self.encoding == "identity":
                    raise CompressedMessage("a compressed message, and the call's grpc-encoding is identity")
                self._compressed = bool(compressed)
                if length < BIG_MESSAGE and size - pos >= length:  # whole here: one copy to bytes
                    piece = data[pos : pos + length]
                    found.append(inflate(piece, self.limit) if compressed else bytes(piece))
                    pos += length
                    continue
                body = self._body = unfilled_bytearray(length)  # handed on only once every byte came
                self._view = memoryview(body)
                self._filled = 0
            taken = min(len(body) - self._filled, size - pos)
            self._view[self._filled : self._filled + taken] = data[pos : pos + taken]  # type: ignore[index]
            self._filled += taken
            pos += taken
            if self._filled == len(body):
                self._view.release()  # type: ignore[union-attr]
                self._body = self._view = None
                if self._compressed:
                    found.append(inflate(body, self.limit))
                else:
                    found.append(body if len(body) >= BIG_MESSAGE else bytes(body))
        return found

    def feed_many(self, pieces: list[memoryview]) -> list[bytes | bytearray]:
        """:meth:`feed` of each piece in turn. The pieces that fall inside a message being received, short of its
        end (most frames of a large message), are copied into it in one loop."""
        found: list[bytes | bytearray] = []
        index, count = 0, len(pieces)
        while index < count:
            view = self._view
            if view is not None:
                filled, end = self._filled, len(view)
                for piece in pieces[index:] if index else pieces:
                    after = filled + len(piece)
                    if after >= end:
                        break
                    view[filled:after] = piece
                    filled = after
                    index += 1
                self._filled = filled
                if index == count:
                    break
            found += self.feed(pieces[index])
            index += 1
        return found


SMALL_PIECE = 4096


def coalesce(pieces: list[Any]) -> tuple[list[bytes | memoryview], int]:
    """A message given as pieces (bytes-like, in order) as what to write: runs of small pieces joined, each large
    one a byte view of itself (not copied); and the message's size in bytes."""
    out: list[bytes | memoryview] = []
    small = bytearray()
    size = 0
    for piece in pieces:
        view = memoryview(piece)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        size += view.nbytes
        if view.nbytes < SMALL_PIECE:
            small += view
            continue
        if small:
            out.append(bytes(small))
            small.clear()
        out.append(view)
    if small:
        out.append(bytes(small))
    return out, size


def timeout_seconds(value: str) -> float | None:
    """``grpc-timeout``'s value (at most 8 digits and a unit) in seconds; None when malformed."""
    found = _TIMEOUT.fullmatch(value.strip())
    if found is None:
        return None
    return int(found.group(1)) * _UNITS[found.group(2)]


def percent_encode(message: str) -> bytes:
    """``grpc-message``'s encoding: UTF-8, with ``%`` and bytes outside printable ASCII as ``%XX``."""
    out = bytearray()
    for byte in message.encode("utf-8", "replace"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def metadata_bytes(key: str, value: str | bytes) -> tuple[bytes, bytes]:
    """A metadata pair as header bytes: a ``-bin`` key's value base64 without padding, others ASCII."""
    name = key.lower().encode("ascii")
    if name.endswith(b"-bin"):
        raw = value if isinstance(value, bytes) else value.encode("utf-8")
        return name, base64.b64encode(raw).rstrip(b"=")
    return name, value.encode("ascii", "replace") if isinstance(value, str) else value


def trailers(code: int, message: str = "", metadata: Iterable[tuple[str, Any]] = (), only: bool = False) -> bytes:
    """The trailers of an answer: ``grpc-status``, ``grpc-message`` when there is one, then ``metadata``. With
    ``only``, a trailers-only answer (no headers were sent): ``:status`` and ``content-type`` first."""
    if code == OK and not message and not metadata and not only:
        return OK_TRAILERS
    fields = [(b"grpc-status", str(code).encode())]
    if message:
        fields.append((b"grpc-message", percent_encode(message)))
    fields += [metadata_bytes(key, value) for key, value in metadata]
    block = b"".join(encode_literal(name, value) for name, value in fields)
    return TRAILERS_ONLY_HEADERS + block if only else block


def invocation_metadata(headers: list[tuple[str, str]]) -> tuple[tuple[str, str | bytes], ...]:
    """What a service sees as the call's metadata: the headers that are neither pseudo-headers nor gRPC's own,
    a ``-bin`` one's value decoded from base64 (bytes)."""
    found: list[tuple[str, str | bytes]] = []
    for name, value in headers:
        if name[:1] == ":" or name in RESERVED:
            continue
        if name.endswith("-bin"):
            try:
                found.append((name, base64.b64decode(value + "=" * (-len(value) % 4))))
            except ValueError:
                continue
        else:
            found.append((name, value))
    return tuple(found)
