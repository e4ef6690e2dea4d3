"""The worker's side of its socket: a blocking framed channel, read on one thread, written from any.

Reads take every frame the socket holds in one system call (through :class:`~workers.frame_decoder.FrameDecoder`);
small frames sent with ``hold=True`` leave together with the next one, so results of batches that arrived together
leave in one write.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from .frame_decoder import FrameDecoder
from .protocol import DEFAULT_MAX_FRAME_SIZE, check_max_frame_size, encode_parts

if TYPE_CHECKING:
    from .shared_ring import RingReader, RingWriter

MAX_IOVECS: Final = 512
"""At most this many pieces in one ``sendmsg`` (Linux takes 1024); more are joined first."""

HOLD_LIMIT: Final = 64 * 1024
"""Frames this large are written at once even when ``hold=True``: holding would save a system call but cost a copy."""


class SocketChannel:
    """Blocking framed channel over a connected stream socket, for the worker side.

    One thread reads with :meth:`recv`; any number of threads may :meth:`send` (a lock keeps each
    frame whole, so a handler thread can stream ``chunk`` frames while the reader thread waits for
    ``cancel``). Socket errors and timeouts propagate as ``OSError``; bad data raises
    :class:`ProtocolError`.
    """

    def __init__(
        self,
        sock: socket.socket,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        rings: tuple[RingWriter, RingReader] | None = None,
    ) -> None:
        self.sock = sock
        self.max_frame_size = check_max_frame_size(max_frame_size)
        self._send_lock = threading.Lock()
        self._ring: RingWriter | None = rings[0] if rings is not None else None
        """Our end of the shared memory ring the peer reads (:mod:`workers.shared_ring`): large bodies go there."""
        self._decoder = FrameDecoder(self.max_frame_size, rings[1] if rings is not None else None)
        self._ready: deque[dict] = deque()  # decoded, not yet returned
        self._held: list[bytes | bytearray | memoryview] = []  # frames sent with hold=True, for the next write
        self._held_bytes = 0
        self._held_since = 0.0
        self._poll = select.poll()  # readiness without a wait, whatever the socket's timeout
        self._poll.register(sock, select.POLLIN)

    def recv(self) -> dict | None:
        """Return the next message, or ``None`` on a clean end of stream at a frame boundary.

        Reads whatever the socket holds in one call, so frames that arrived together cost one system call; a large
        payload is received straight into its own buffer (:class:`FrameDecoder`). Raises :class:`ProtocolError`
        for a malformed frame, including ``"truncated frame"`` when the stream ends inside one, and a bad length
        before reading any of its payload.
        """
        ready = self._ready
        while not ready:
            buffer = self._decoder.get_buffer()
            if self._held and not self._poll.poll(0):  # never wait for the peer while it waits for what we hold
                self.flush()
            count = self.sock.recv_into(buffer)
            if count == 0:
                self._decoder.check_eof()
                return None
            ready.extend(self._decoder.buffer_updated(count))
        return ready.popleft()

    def readable(self) -> bool:
        """True if :meth:`recv` would not block for long: a message is decoded, or bytes (or the end of stream) are
        waiting."""
        return bool(self._ready) or bool(self._poll.poll(0))

    @property
    def has_ready(self) -> bool:
        """A message has been received and decoded: :meth:`recv` returns it without a system call."""
        return bool(self._ready)

    def held_for(self) -> float:
        """Seconds since the oldest frame still held (0 when none is)."""
        return time.monotonic() - self._held_since if self._held else 0.0

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    def send(self, message: Mapping[str, Any], hold: bool = False, checked: bool = True) -> None:
        """Encode ``message`` and write its frame whole; safe to call from several threads.

        ``hold=True`` keeps the frame to be written with the next frame sent without it (or :meth:`flush`, or a
        :meth:`recv` that would block), so results of batches that arrived together leave in one write. A frame
        larger than ``HOLD_LIMIT`` is never held. Frames always leave in the order they were sent.

        ``checked=False`` skips the kind and field check of a frame whose shape the caller fixes (a batch's result);
        the frontend checks every frame it receives anyway.

        A frame is encoded under the lock: its bodies enter the shared memory ring in the order the frames reach the
        socket, which is the order the frontend takes them out."""
        with self._send_lock:
            parts = encode_parts(message, self.max_frame_size, checked, self._ring)
            size = _held_size(parts) if hold else -1
            if size >= 0:
                if not self._held:
                    self._held_since = time.monotonic()
                self._held += parts
                self._held_bytes += size
                return
            if self._held:
                parts, self._held, self._held_bytes = [*self._held, *parts], [], 0
            self._send_parts(parts)

    def flush(self) -> None:
        """Write the held frames now."""
        with self._send_lock:
            if self._held:
                parts, self._held, self._held_bytes = self._held, [], 0
                self._send_parts(parts)

    def _send_parts(self, parts: list[bytes | bytearray | memoryview]) -> None:
        """One gathering write of ``parts`` (no join), finished with ``sendall`` if the kernel took only some."""
        if len(parts) > MAX_IOVECS:
            parts = [b"".join(parts)]
        sent = self.sock.sendmsg(parts)
        for part in parts:
            if sent >= len(part):
                sent -= len(part)
                continue
            self.sock.sendall(memoryview(part)[sent:])  # the rest of this part, then the parts after it
            sent = 0

    def close(self) -> None:
        """Shut the socket down (waking a thread blocked in :meth:`recv`) and close it."""
        with contextlib.suppress(OSError):  # already shut down, or the peer is gone
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def __enter__(self) -> SocketChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _held_size(parts: list[bytes | bytearray | memoryview]) -> int:
    """The bytes a frame's pieces would hold back, or -1 when they are too many or too large to hold (a body sent
    in the socket is). Bodies in the shared memory ring are not counted: the frame holds only their references,
    and a full ring sends the next body through the socket instead of waiting."""
    if len(parts) > 8:
        return -1
    total = 0
    for part in parts:
        total += len(part)
    return total if total < HOLD_LIMIT else -1
