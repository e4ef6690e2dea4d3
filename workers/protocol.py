"""Wire format shared by the frontend and its workers (see ``docs/protocol.md``).

The frontend and a worker talk over one private, connected Unix stream socket. Every message is
one frame::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +---------------------------------------------------------------+
    |              payload length N (uint32, big-endian)            |
    +---------------------------------------------------------------+
    |                                                               |
    :           payload: N bytes, exactly one msgpack map           :
    |                                                               |
    +---------------------------------------------------------------+

``N == 0`` and ``N > max_frame_size`` are errors, detected from the header alone. The payload is
a msgpack map with a ``str`` key ``kind`` naming one of :data:`REQUIRED_FIELDS` and carrying at
least that kind's fields. ``bin`` values decode to ``bytes``.

Large bodies travel beside the map, not inside it (:data:`ATTACH_MIN` bytes or more, marked
:class:`Attached` by the sender): each goes first in an *attachment frame*, whose header has the
top bit set (:data:`ATTACHMENT_FLAG`) and whose payload is the raw bytes, and the map that follows
holds ``ExtType(0, b"")`` where the body was, one per attachment, in order. The bytes then go from
the sender's own object to the socket and from the socket into the receiver's own ``bytearray``,
never through msgpack's buffers (two copies on each side). Any other ext type (timestamps
included), an attachment no map claims, or a map claiming one that was not sent, is an error.
Anything malformed raises :class:`ProtocolError`, the only error this module raises for bad data.

This module is pure: no environment reads, no torch, no policy about what to do with a broken
peer. :class:`FrameDecoder` serves the frontend's asyncio side (``asyncio.BufferedProtocol``);
:class:`SocketChannel` serves the worker's blocking side.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import msgpack

__all__ = [
    "ATTACHMENT_FLAG",
    "ATTACH_MIN",
    "Attached",
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER",
    "ITEM_FIELDS",
    "JOB_FIELDS",
    "MAX_FRAME_SIZE_LIMIT",
    "PROTOCOL_VERSION",
    "REQUIRED_FIELDS",
    "FrameDecoder",
    "ProtocolError",
    "SocketChannel",
    "attach",
    "decode_payload",
    "encode",
    "encode_parts",
    "max_frame_size_for",
]

PROTOCOL_VERSION = 1
"""Sent by the worker in ``hello``; the frontend refuses a worker speaking another version."""

HEADER = struct.Struct("!I")
"""The frame header: the payload length as an unsigned 32-bit big-endian integer."""

ATTACHMENT_FLAG = 0x8000_0000
"""Set in a frame header: the payload is an attachment (raw bytes) of the next message, not msgpack."""

MAX_FRAME_SIZE_LIMIT = ATTACHMENT_FLAG - 1
"""The largest payload length the header can express beside its attachment flag (2 GiB - 1)."""

FRAME_SIZE_HEADROOM = 64 * 1024 * 1024
"""Room for everything besides request bodies: responses, headers, tensors, msgpack overhead."""

TORCHSERVE_MAX_REQUEST_SIZE = 6_553_500
"""TorchServe's default ``max_request_size`` in bytes."""

DEFAULT_MAX_FRAME_SIZE = FRAME_SIZE_HEADROOM + 2 * TORCHSERVE_MAX_REQUEST_SIZE
"""64 MiB of headroom plus two default-sized TorchServe requests (80,215,864 bytes).

Servers with a larger ``max_request_size`` or ``batchSize`` should pass
:func:`max_frame_size_for` to both peers instead.
"""

SMALL_FRAME_SIZE = 64 * 1024
"""Frames with a payload up to this size are assembled in :class:`FrameDecoder`'s shared buffer."""

_SHARED_BUFFER_SIZE = 4 * SMALL_FRAME_SIZE

ATTACH_MIN = SMALL_FRAME_SIZE
"""Bodies of this many bytes or more are worth an attachment frame: below it, a copy costs less than the extra
header, and the frame is received into the shared buffer anyway."""

_ATTACHMENT_EXT = 0
_ATTACHMENT_MARK = msgpack.ExtType(_ATTACHMENT_EXT, b"")


class Attached:
    """A body to send as an attachment frame: put it where the bytes would go in a message."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = data


def attach(value: Any) -> Any:
    """``value`` marked :class:`Attached` when it is bytes-like and at least :data:`ATTACH_MIN` long, else itself."""
    if isinstance(value, bytes | bytearray) and len(value) >= ATTACH_MIN:
        return Attached(value)
    return value


ITEM_FIELDS = frozenset({"id", "status", "reason", "headers", "content_type"})
"""Fields of an item map (in ``result.items`` and as a ``chunk``); it also has ``body`` or ``error``."""

JOB_FIELDS = frozenset({"id", "request_id", "headers", "inputs", "method"})
"""Fields of a job map in ``infer.jobs``."""

REQUIRED_FIELDS: dict[str, frozenset[str]] = {
    "hello": frozenset({"version", "pid", "device"}),
    "load": frozenset(
        {
            "model_name",
            "model_version",
            "model_dir",
            "handler",
            "batch_size",
            "gpu_id",
            "envelope",
            "limit_max_image_pixels",
            "decode_input_request",
            "manifest",
            "model_yaml_config",
        }
    ),
    "loaded": frozenset({"status", "message"}),
    "infer": frozenset({"jobs"}),
    "result": frozenset({"items"}),
    "chunk": ITEM_FIELDS,
    "cancel": frozenset({"ids"}),
    "shutdown": frozenset(),
}
"""Top-level fields every message of a kind must carry, besides ``kind`` itself.

Only presence is checked here; nested job and item maps and the value types are the receiver's
business (see :data:`JOB_FIELDS` and :data:`ITEM_FIELDS`).
"""


class ProtocolError(Exception):
    """A frame or message that breaks the protocol: the peer that sent it is broken."""


def max_frame_size_for(max_request_size: int, batch_size: int) -> int:
    """Return the frame limit for a server: 64 MiB headroom plus a full batch of maximal requests.

    It bounds each frame and also a message with its attachments (what the receiver holds before decoding it)."""
    if max_request_size < 0 or batch_size < 1:
        raise ValueError("max_request_size must be >= 0 and batch_size >= 1")
    return min(FRAME_SIZE_HEADROOM + max_request_size * batch_size, MAX_FRAME_SIZE_LIMIT)


def _check_max_frame_size(max_frame_size: int) -> int:
    if not 0 < max_frame_size <= MAX_FRAME_SIZE_LIMIT:
        raise ValueError(f"max_frame_size must be in 1..{MAX_FRAME_SIZE_LIMIT}, got {max_frame_size}")
    return max_frame_size


def _validate(message: Mapping[str, Any]) -> None:
    """Check that ``message`` has a known ``kind`` and that kind's required fields."""
    kind = message.get("kind")
    if not isinstance(kind, str):
        raise ProtocolError(f"message has no str 'kind' (got {type(kind).__name__})")
    required = REQUIRED_FIELDS.get(kind)
    if required is None:
        raise ProtocolError(f"unknown message kind {kind!r}")
    missing = required.difference(message.keys())
    if missing:
        raise ProtocolError(f"{kind!r} message is missing {', '.join(sorted(missing))}")


def encode(message: Mapping[str, Any], max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, checked: bool = True) -> bytes:
    """Return ``message`` as bytes ready for a single write: its attachment frames, if any, then its frame.

    Raises :class:`ProtocolError` if the message has no known ``kind`` or lacks a required field,
    holds a value msgpack cannot pack, or packs to more than ``max_frame_size`` bytes.
    ``checked=False`` skips the kind and field check, for a message built by code whose shape is fixed (the
    frontend's ``infer`` frame on the hot path); the receiver checks every frame anyway.
    """
    return b"".join(encode_parts(message, max_frame_size, checked))


def encode_parts(
    message: Mapping[str, Any], max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, checked: bool = True
) -> list[bytes | bytearray | memoryview]:
    """:func:`encode` as the pieces of a gathering write (``sendmsg``, ``writelines``): headers, the attached bodies
    as the very objects the caller gave, and the payload. Nothing is copied just to put four bytes in front of it.

    Raises :class:`ProtocolError` if the message (with its attachments) packs to more than ``max_frame_size``."""
    if checked:
        if not isinstance(message, Mapping):
            raise ProtocolError(f"a message must be a mapping, got {type(message).__name__}")
        _validate(message)
    packing = _packing
    try:
        payload = packing.packer.pack(message if isinstance(message, dict) else dict(message))
    except (TypeError, ValueError, OverflowError) as err:
        packing.packer.reset()
        packing.parts = []
        raise ProtocolError(f"cannot pack {message['kind']!r} message: {err}") from err
    size = len(payload)
    parts = packing.parts
    if parts:
        packing.parts = []
        size += sum(len(part) for part in parts[1::2])
    if size > max_frame_size:
        raise ProtocolError(f"{message['kind']!r} frame of {size} bytes exceeds {max_frame_size}")
    return [*parts, HEADER.pack(len(payload)), payload]


class _Packing(threading.local):
    """A msgpack ``Packer`` per thread, reused (``packb`` builds one per call), and the attachment frames of the
    message it is packing (its ``default`` hook meets each :class:`Attached` body)."""

    def __init__(self) -> None:
        self.parts: list[bytes | bytearray | memoryview] = []
        self.packer = msgpack.Packer(use_bin_type=True, autoreset=True, default=self.mark)

    def mark(self, value: Any) -> Any:
        if type(value) is Attached:
            self.parts.append(HEADER.pack(ATTACHMENT_FLAG | len(value.data)))
            self.parts.append(value.data)
            return _ATTACHMENT_MARK
        raise TypeError(f"can not serialize {type(value).__name__!r} object")


_packing = _Packing()


def _reject_ext(code: int, data: bytes) -> Any:
    if code == _ATTACHMENT_EXT and not data:
        raise ProtocolError("the message claims an attachment that was not sent")
    raise ProtocolError(f"msgpack ext type {code} is not allowed")


class _Claim:
    """The ``ext_hook`` of a message with attachments: each attachment mark takes the next attachment, in order."""

    __slots__ = ("attachments", "taken")

    def __init__(self, attachments: list[bytearray]) -> None:
        self.attachments = attachments
        self.taken = 0

    def __call__(self, code: int, data: bytes) -> bytearray:
        if code != _ATTACHMENT_EXT or data or self.taken == len(self.attachments):
            _reject_ext(code, data)
        self.taken += 1
        return self.attachments[self.taken - 1]


def decode_payload(
    payload: bytes | bytearray | memoryview,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    attachments: list[bytearray] | None = None,
) -> dict:
    """Decode one frame payload into a validated message dict.

    The payload must be exactly one msgpack map (no trailing bytes) with a known ``kind`` and its
    required fields. Strings are UTF-8 ``str``, ``bin`` is ``bytes``, map keys are ``str`` or
    ``bytes``; the attachment marks become the ``attachments`` (``bytearray``, not copied), which must
    all be claimed, and other ext types are refused. Raises :class:`ProtocolError` otherwise.
    """
    size = len(payload)
    if not 0 < size <= max_frame_size:
        raise ProtocolError(f"payload of {size} bytes is outside 1..{max_frame_size}")
    claim = _Claim(attachments) if attachments else None
    try:
        message = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            ext_hook=claim or _reject_ext,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size,
            max_ext_len=0,
        )
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as err:
        raise ProtocolError(f"invalid msgpack payload: {err}") from err
    if claim is not None and claim.taken != len(claim.attachments):
        raise ProtocolError(f"{len(claim.attachments) - claim.taken} attachment(s) sent but not claimed")
    if not isinstance(message, dict):
        raise ProtocolError(f"payload is a msgpack {type(message).__name__}, not a map")
    _validate(message)
    return message


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
        large payload:  [ filled ........................ | unfilled tail -> get_buffer ]

    Attachment frames are kept, each in a ``bytearray`` of its own, until the message that claims
    them arrives. Memory is bounded by ``max_frame_size`` (a frame, and a message's attachments in
    all). Zero and oversized lengths raise at once from the header. After any
    :class:`ProtocolError` the decoder stays failed and raises on every call.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = _check_max_frame_size(max_frame_size)
        self._shared = bytearray(_SHARED_BUFFER_SIZE)
        self._shared_view = memoryview(self._shared)
        self._start = 0  # first unconsumed byte in the shared buffer
        self._end = 0  # end of received bytes in the shared buffer
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
        elif len(self._shared) - self._end < SMALL_FRAME_SIZE + HEADER.size:
            self._compact()
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
        if not 0 <= nbytes <= len(self._shared) - self._end:
            raise ValueError(f"buffer_updated({nbytes}) exceeds the buffer handed out")
        self._end += nbytes
        messages: list[dict] = []
        while self._end - self._start >= HEADER.size:
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
        self._large = bytearray(length)
        self._large[:available] = self._shared_view[body_start : self._end]
        self._large_filled = available
        self._large_is_attachment = attachment
        self._start = self._end = 0


MAX_IOVECS = 512
"""At most this many pieces in one ``sendmsg`` (Linux takes 1024); more are joined first."""

HOLD_LIMIT = 64 * 1024
"""Frames this large are written at once even when ``hold=True``: holding would save a system call but cost a copy."""


class SocketChannel:
    """Blocking framed channel over a connected stream socket, for the worker side.

    One thread reads with :meth:`recv`; any number of threads may :meth:`send` (a lock keeps each
    frame whole, so a handler thread can stream ``chunk`` frames while the reader thread waits for
    ``cancel``). Socket errors and timeouts propagate as ``OSError``; bad data raises
    :class:`ProtocolError`.
    """

    def __init__(self, sock: socket.socket, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.sock = sock
        self.max_frame_size = _check_max_frame_size(max_frame_size)
        self._send_lock = threading.Lock()
        self._decoder = FrameDecoder(self.max_frame_size)
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

    def send(self, message: Mapping[str, Any], hold: bool = False) -> None:
        """Encode ``message`` and write its frame whole; safe to call from several threads.

        ``hold=True`` keeps the frame to be written with the next frame sent without it (or :meth:`flush`, or a
        :meth:`recv` that would block), so results of batches that arrived together leave in one write. A frame
        larger than ``HOLD_LIMIT`` is never held. Frames always leave in the order they were sent."""
        parts = encode_parts(message, self.max_frame_size)
        with self._send_lock:
            if hold and len(parts) == 2 and len(parts[1]) < HOLD_LIMIT:  # small, and no attachments
                if not self._held:
                    self._held_since = time.monotonic()
                self._held += parts
                self._held_bytes += len(parts[0]) + len(parts[1])
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
