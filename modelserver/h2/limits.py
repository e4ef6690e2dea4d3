"""What one client may cost a native gRPC listener: the limits every connection of the listener shares
(:class:`Limits`), and the two flood limits of a connection (answers not read back, streams reset).

The flood limits are nghttp2's defaults, which nginx, Apache httpd and curl ship: a client that exceeds them is not a
client in trouble but one that sends frames only to make the server work or hold buffers.
"""

from __future__ import annotations

import time
from typing import Any

MAX_QUEUED_ACKS = 1000
"""Frames the client's frames make this side send (PING and SETTINGS answers, RST_STREAM for its stream errors)
queued while it reads none of them, past which the connection is a flood (CVE-2019-9512, -9514, -9515) and ends
with ENHANCE_YOUR_CALM: each costs the client 9-17 bytes to send and this side a buffer to hold (nghttp2's
``max_outbound_ack``, grpc core's ``max_pending_induced_frames``)."""
RESET_BURST = 1000
RESET_RATE = 33.0
"""Streams the client may reset at once, and per second after that: a client that opens and resets streams faster
("rapid reset", CVE-2023-44487) costs this side a call's start each, outside MAX_CONCURRENT_STREAMS, and ends with
ENHANCE_YOUR_CALM (nghttp2's ``stream_reset_rate_limit``)."""
READ_SIZE = 1 << 20
"""The read buffer, shared by the connections of a listener. With 256 KiB a 1 MiB call took 4.4 reads of its client's
socket, each with its frame split across two reads (gathered in a buffer of its own, then copied into the message);
with 1 MiB, about 1.5 (callgrind: 174k fewer instructions in the frontend per 1 MiB call)."""


class ResetRate:
    """A token bucket of :data:`RESET_BURST` tokens refilled at :data:`RESET_RATE` a second: one per stream the
    client resets."""

    __slots__ = ("_stamp", "_tokens")

    def __init__(self) -> None:
        self._tokens = float(RESET_BURST)
        self._stamp = time.monotonic()

    def take(self) -> bool:
        """A token for one more reset; False when the client has used them all."""
        now = time.monotonic()
        tokens = min(float(RESET_BURST), self._tokens + (now - self._stamp) * RESET_RATE) - 1.0
        self._stamp = now
        if tokens < 0.0:
            return False
        self._tokens = tokens
        return True

    def refund(self) -> None:
        self._tokens = min(float(RESET_BURST), self._tokens + 1.0)


class Limits:
    """What every connection of a listener shares: the method table, the message size limits, the read buffer and
    the deadlines."""

    def __init__(
        self,
        methods: dict[str, Any],
        max_receive: int,
        max_send: int,
        max_streams: int = 256,
        *,
        handshake_timeout: float | None = None,
        write_timeout: float | None = None,
    ) -> None:
        self.methods = methods
        self.max_receive = max_receive
        self.max_send = max_send
        self.max_streams = max_streams
        self.handshake_timeout = handshake_timeout
        """Seconds a new connection has to send the HTTP/2 preface (``header_read_timeout``); None: no limit."""
        self.write_timeout = write_timeout
        """Seconds the client may read nothing while this side has bytes for it, or give a call's answer no window
        (``write_timeout``): then the connection, or the call, is ended. None: no limit."""
        self.read_view = memoryview(bytearray(READ_SIZE))
        """The read buffer of every connection of the listener: a read is parsed before the next one begins."""
