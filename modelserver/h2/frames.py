"""HTTP/2's frames (RFC 9113 section 4 and 6): their numbers, their 9-byte header, and the frames the server sends.

Only what a gRPC server needs: it never pushes, never sends PRIORITY, and answers with header blocks it encodes
itself (:mod:`.hpack_out`).
"""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""What a client sends first, before its SETTINGS frame."""

HEADER = struct.Struct(">IBI")
"""A frame's header: length (24 bits) and type (8) in one word, flags, stream id (the top bit reserved)."""
HEADER_SIZE = 9

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)

END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 section 7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

# Settings (RFC 9113 section 6.5.2).
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1
MAX_FRAME_LIMIT = 2**24 - 1

_SETTING = struct.Struct(">HI")
_U32 = struct.Struct(">I")
_GOAWAY = struct.Struct(">II")


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: its header, then ``payload`` (at most the peer's maximum frame size: the caller splits)."""
    return HEADER.pack((len(payload) << 8) | kind, flags, stream_id) + payload


def settings(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(key, value) for key, value in values.items()))


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """A SETTINGS frame's (identifier, value) pairs, in order (a later one of the same identifier wins)."""
    return [_SETTING.unpack_from(payload, offset) for offset in range(0, len(payload), 6)]


SETTINGS_ACK = frame(SETTINGS, ACK, 0)


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(code))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, _GOAWAY.pack(last_stream_id, code) + debug)


def ping_ack(opaque: bytes) -> bytes:
    return frame(PING, ACK, 0, opaque)


def u32(payload: bytes) -> int:
    """The 31-bit value of a 4-byte payload (WINDOW_UPDATE's increment; RST_STREAM's code uses all 32)."""
    return int(_U32.unpack_from(payload)[0])


def goaway_fields(payload: bytes) -> tuple[int, int]:
    """A GOAWAY's last stream id and error code."""
    last, code = _GOAWAY.unpack_from(payload)
    return last & MAX_WINDOW, code


def unpad(payload: bytes | memoryview, flags: int) -> bytes | memoryview | None:
    """A DATA or HEADERS payload without its padding; None when the pad length is longer than the payload."""
    if not flags & PADDED:
        return payload
    if not payload:
        return None
    pad = payload[0]
    if pad >= len(payload):
        return None
    return payload[1 : len(payload) - pad]
