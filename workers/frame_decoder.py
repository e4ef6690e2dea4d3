"""Incremental frame decoding for the frontend's asyncio side (and the worker's blocking reads): bytes in, messages
out, large payloads received straight into buffers of their own (docs/protocol.md, "Frames").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from mypy_extensions import mypyc_attr

from .buffers import unfilled_bytearray
from .protocol import (
    ATTACHMENT_FLAG,
    DEFAULT_MAX_FRAME_SIZE,
    HEADER,
    RING_REFERENCE,
    SMALL_FRAME_SIZE,
    ProtocolError,
    check_max_frame_size,
    decode_payload,
)

if TYPE_CHECKING:
    from .shared_ring import RingReader

_SHARED_BUFFER_SIZE: Final = 4 * SMALL_FRAME_SIZE
BOUNDARY_READ: Final = 8 * 1024 + HEADER.size
"""What one read may take at a frame boundary, with nothing pending: the usual frame whole (a batch of small jobs or
answers), and at most this much of a large payload, which is copied from the shared buffer into its own (the rest is
received in place). With the whole shared buffer handed out, a 1 MiB payload had its first 256 KiB copied (callgrind:
some 262k instructions a frame, in the frontend and again in the worker); with a small frame's 64 KiB, every 100 KiB
body had its first 64 KiB copied on each side of the hop. A larger frame takes a second read, which continues into
the rest of the shared buffer."""


def _frame_length(header: bytes | bytearray | memoryview, max_frame_size: int, offset: int = 0) -> tuple[int, bool]:
    """The payload length and whether the frame is an attachment."""
    (length,) = HEADER.unpack_from(header, offset)
    attachment = length >= ATTACHMENT_FLAG
    if attachment:
        length -= ATTACHMENT_FLAG
    if length == 0:
        raise ProtocolError("zero-length frame")
    if length > max_frame_size:
        raise ProtocolError(f"frame of {length} bytes exceeds max_frame_size {max_frame_size}")
    return length, attachment


@mypyc_attr(allow_interpreted_subclasses=True)  # the frontends' control channel extends it
class FrameDecoder:
    """Incremental frame decoder for the frontend's asyncio side.

    Use it from an ``asyncio.BufferedProtocol``::

        def get_buffer(self, sizehint):          return self.decoder.get_buffer(sizehint)
        def buffer_updated(self, nbytes):         for msg in self.decoder.buffer_updated(nbytes): ...
        def eof_received(self):                   self.decoder.check_eof()

    or call :meth:`feed` with received bytes. Small frames are assembled in one reusable buffer;
    once a header announces a payload larger than :data:`SMALL_FRAME_SIZE`, a ``bytearray`` of
    exactly that size is allocated and :meth:`get_buffer` hands out its unfilled tail, so the
    kernel writes the payload straight into place and the payload is decoded without a copy::

        shared buffer:  [ consumed | start .. partial frame .. end | free tail -> get_buffer ]
        at a boundary:  [ first BOUNDARY_READ bytes -> get_buffer | ... ]
        large payload:  [ filled ........................ | unfilled tail -> get_buffer ]

    Attachment frames are kept, each in a ``bytearray`` of its own, until the message that claims
    them arrives. Memory is bounded by ``max_frame_size`` (a frame, and a message's attachments in
    all). Zero and oversized lengths raise at once from the header. After any
    :class:`ProtocolError` the decoder stays failed and raises on every call.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, ring: RingReader | None = None) -> None:
        self.max_frame_size = check_max_frame_size(max_frame_size)
        self._ring = ring  # where the peer's ring references point (workers.shared_ring); None: it sends none
        self._shared = bytearray(_SHARED_BUFFER_SIZE)
        self._shared_view = memoryview(self._shared)
        self._start = 0  # first unconsumed byte in the shared buffer
        self._end = 0  # end of received bytes in the shared buffer
        self._handed_end = len(self._shared)  # where the last buffer handed out of the shared one ends
        self._large: bytearray | None = None  # payload of a large frame being received
        self._large_filled = 0
        self._large_is_attachment = False
        self._attachments: list[bytearray] = []  # received, waiting for the message that claims them
        self._attached_bytes = 0
        self._failed: ProtocolError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete message (0 at a message boundary)."""
        waiting = self._attached_bytes + HEADER.size * len(self._attachments)
        if self._large is not None:
            return waiting + HEADER.size + self._large_filled
        return waiting + self._end - self._start

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Return a non-empty writable buffer for the next received bytes (``sizehint`` is ignored)."""
        self._raise_if_failed()
        if self._large is not None:
            return memoryview(self._large)[self._large_filled :]
        if self._start == self._end:
            self._start = self._end = 0
            self._handed_end = BOUNDARY_READ
            return self._shared_view[:BOUNDARY_READ]
        if len(self._shared) - self._end < SMALL_FRAME_SIZE + HEADER.size:
            self._compact()
        self._handed_end = len(self._shared)
        return self._shared_view[self._end :]

    def buffer_updated(self, nbytes: int) -> list[dict]:
        """Account for ``nbytes`` written into the last :meth:`get_buffer`; return completed messages."""
        self._raise_if_failed()
        try:
            if self._large is not None:
                return self._large_updated(nbytes)
            return self._shared_updated(nbytes)
        except ProtocolError as err:
            self._failed = err
            raise

    def feed(self, data: bytes | bytearray | memoryview) -> list[dict]:
        """Copy ``data`` in through :meth:`get_buffer`/:meth:`buffer_updated`; return completed messages."""
        view = memoryview(data).cast("B")
        messages: list[dict] = []
        offset = 0
        while offset < len(view):
            buffer = self.get_buffer(len(view) - offset)
            count = min(len(buffer), len(view) - offset)
            buffer[:count] = view[offset : offset + count]
            offset += count
            messages.extend(self.buffer_updated(count))
        return messages

    def check_eof(self) -> None:
        """Call at end of stream: raise :class:`ProtocolError` if it ended inside a frame."""
        self._raise_if_failed()
        if self.pending:
            self._failed = ProtocolError(f"truncated frame: stream ended with {self.pending} bytes pending")
            raise self._failed

    def _raise_if_failed(self) -> None:
        if self._failed is not None:
            raise ProtocolError(f"decoder failed earlier: {self._failed}")

    def _compact(self) -> None:
        pending = self._end - self._start
        self._shared[:pending] = self._shared[self._start : self._end]
        self._start, self._end = 0, pending

    def _large_updated(self, nbytes: int) -> list[dict]:
        assert self._large is not None
        if not 0 <= nbytes <= len(self._large) - self._large_filled:
            raise ValueError(f"buffer_updated({nbytes}) exceeds the buffer handed out")
        self._large_filled += nbytes
        if self._large_filled < len(self._large):
            return []
        payload, self._large, self._large_filled = self._large, None, 0
        if self._large_is_attachment:
            self._attachments.append(payload)
            return []
        return [self._decode(payload)]

    def _shared_updated(self, nbytes: int) -> list[dict]:
        if not 0 <= nbytes <= self._handed_end - self._end:
            raise ValueError(f"buffer_updated({nbytes}) exceeds the buffer handed out")
        self._end += nbytes
        messages: list[dict] = []
        unpack = HEADER.unpack_from
        while self._end - self._start >= HEADER.size:
            (length,) = unpack(self._shared, self._start)
            if 0 < length <= self.max_frame_size:  # a message (an attachment's flag puts it above any maximum)
                attachment = False
            elif length == ATTACHMENT_FLAG:  # an attachment in the peer's shared memory ring: its reference follows
                if self._end - self._start < HEADER.size + RING_REFERENCE.size:
                    break
                self._take_from_ring()
                continue
            else:
                length, attachment = _frame_length(self._shared, self.max_frame_size, self._start)
                if attachment:
                    self._count_attachment(length)
            body_start = self._start + HEADER.size
            available = self._end - body_start
            if available >= length:
                payload = self._shared_view[body_start : body_start + length]
                self._start = body_start + length
                if attachment:
                    self._attachments.append(bytearray(payload))
                else:
                    messages.append(self._decode(payload))
            elif length > SMALL_FRAME_SIZE:
                self._start_large(length, body_start, attachment)
                break
            else:
                if attachment:  # counted again when the rest of it has arrived
                    self._attached_bytes -= length
                break
        return messages

    def _take_from_ring(self) -> None:
        ring = self._ring
        if ring is None:
            raise ProtocolError("a shared memory reference, but no shared memory with this peer")
        offset, length = RING_REFERENCE.unpack_from(self._shared, self._start + HEADER.size)
        self._count_attachment(length)
        try:
            body = ring.take(offset, length)
        except ValueError as err:
            error = ProtocolError(str(err))
            error.__suppress_context__ = True  # compiled, `from None` does not hide the context
            raise error from None
        self._attachments.append(body)
        self._start += HEADER.size + RING_REFERENCE.size

    def _count_attachment(self, length: int) -> None:
        self._attached_bytes += length
        if self._attached_bytes > self.max_frame_size:
            raise ProtocolError(
                f"attachments of {self._attached_bytes} bytes exceed max_frame_size {self.max_frame_size}"
            )

    def _decode(self, payload: bytes | bytearray | memoryview) -> dict:
        attachments = self._attachments
        if not attachments:
            return decode_payload(payload, self.max_frame_size)
        if len(payload) + self._attached_bytes > self.max_frame_size:
            raise ProtocolError(f"message with attachments exceeds max_frame_size {self.max_frame_size}")
        self._attachments, self._attached_bytes = [], 0
        return decode_payload(payload, self.max_frame_size, attachments)

    def _start_large(self, length: int, body_start: int, attachment: bool) -> None:
        """Move a large frame's partial payload out of the shared buffer into its own bytearray."""
        available = self._end - body_start
        self._large = unfilled_bytearray(length)  # decoded only once the whole payload is in
        memoryview(self._large)[:available] = self._shared_view[body_start : self._end]  # a bytearray's own slice
        # assignment would copy a memoryview into a new bytearray first
        self._large_filled = available
        self._large_is_attachment = attachment
        self._start = self._end = 0
