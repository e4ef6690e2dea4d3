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
peer. :class:`~workers.frame_decoder.FrameDecoder` turns received bytes into messages (the frontend's asyncio side
reads into it directly); :class:`~workers.socket_channel.SocketChannel` is the worker's blocking side.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import msgpack

if TYPE_CHECKING:
    from .shared_ring import RingWriter

__all__ = [
    "ATTACHMENT_FLAG",
    "ATTACH_MIN",
    "Attached",
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER",
    "ITEM_FIELDS",
    "ITEM_OPTIONAL_FIELDS",
    "ITEM_WIRE_LENGTH",
    "JOB_FIELDS",
    "JOB_OPTIONAL_FIELDS",
    "JOB_WIRE_LENGTH",
    "MAX_FRAME_SIZE_LIMIT",
    "PROTOCOL_VERSION",
    "REQUIRED_FIELDS",
    "RING_REFERENCE",
    "RING_REFERENCE_HEADER",
    "SMALL_FRAME_SIZE",
    "ProtocolError",
    "attach",
    "check_item",
    "item_fault",
    "check_max_frame_size",
    "decode_payload",
    "encode",
    "encode_parts",
    "header_items",
    "item_to_wire",
    "job_from_wire",
    "job_to_wire",
    "max_frame_size_for",
]

PROTOCOL_VERSION: Final = 3
"""Sent by the worker in ``hello``; the frontend refuses a worker speaking another version.

2: ``load`` names its ``runtime``; a job carries ``method`` and optional ``url_path``, ``tensors``, ``parameters`` and
``outputs`` instead of fake headers; items may carry ``tensors`` and ``parameters``.

3: jobs and items travel as arrays of fixed positions (:func:`job_to_wire`, :func:`item_to_wire`), their optional
fields in one trailing map, and a job's headers and inputs as flat arrays: msgpack packs and unpacks a map's keys
and each small tuple at a cost that was about a tenth of the frontend's work per request. A ``chunk`` carries its
item in ``item``."""

HEADER: Final = struct.Struct("!I")
"""The frame header: the payload length as an unsigned 32-bit big-endian integer."""

ATTACHMENT_FLAG: Final = 0x8000_0000
"""Set in a frame header: the payload is an attachment (raw bytes) of the next message, not msgpack."""

MAX_FRAME_SIZE_LIMIT: Final = ATTACHMENT_FLAG - 1
"""The largest payload length the header can express beside its attachment flag (2 GiB - 1)."""

FRAME_SIZE_HEADROOM: Final = 64 * 1024 * 1024
"""Room for everything besides request bodies: responses, headers, tensors, msgpack overhead."""

TORCHSERVE_MAX_REQUEST_SIZE: Final = 6_553_500
"""TorchServe's default ``max_request_size`` in bytes."""

DEFAULT_MAX_FRAME_SIZE: Final = FRAME_SIZE_HEADROOM + 2 * TORCHSERVE_MAX_REQUEST_SIZE
"""64 MiB of headroom plus two default-sized TorchServe requests (80,215,864 bytes).

Servers with a larger ``max_request_size`` or ``batchSize`` should pass
:func:`max_frame_size_for` to both peers instead.
"""

SMALL_FRAME_SIZE: Final = 64 * 1024
"""Frames with a payload up to this size are assembled in the shared buffer of
:class:`~workers.frame_decoder.FrameDecoder`."""

ATTACH_MIN: Final = SMALL_FRAME_SIZE
"""Bodies of this many bytes or more are worth an attachment frame: below it, a copy costs less than the extra
header, and the frame is received into the shared buffer anyway."""

RING_REFERENCE: Final = struct.Struct("!II")
"""After :data:`RING_REFERENCE_HEADER`: the attachment's offset in the sender's shared memory ring and its length."""
RING_REFERENCE_HEADER: Final = struct.pack("!I", ATTACHMENT_FLAG)
"""An attachment frame of length 0 (never sent otherwise): the attachment is in the sender's shared memory ring, at
the :data:`RING_REFERENCE` that follows (:mod:`workers.shared_ring`)."""

_ATTACHMENT_EXT: Final = 0
_ATTACHMENT_MARK: Final = msgpack.ExtType(_ATTACHMENT_EXT, b"")


class Attached:
    """A body to send as an attachment frame: put it where the bytes would go in a message."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = data


_BYTES_LIKE: Final = (bytes, bytearray)
"""For ``isinstance``: a tuple costs less than ``bytes | bytearray``, a union object made at every call."""


def attach(value: Any) -> Any:
    """``value`` marked :class:`Attached` when it is bytes-like and at least :data:`ATTACH_MIN` long, else itself.

    A C-contiguous ``memoryview`` of another format or shape is attached as a flat view of its bytes."""
    if isinstance(value, _BYTES_LIKE) and len(value) >= ATTACH_MIN:
        return Attached(value)
    if isinstance(value, memoryview) and value.nbytes >= ATTACH_MIN and value.c_contiguous:
        return Attached(value if value.format == "B" and value.ndim == 1 else value.cast("B"))
    return value


ITEM_FIELDS: Final = frozenset({"id", "status", "reason", "headers", "content_type"})
"""Fields of an item map (what a runtime answers a job with; :func:`item_to_wire`); it also has ``body`` or
``error``."""

ITEM_OPTIONAL_FIELDS: Final = frozenset({"body", "error", "tensors", "parameters"})
"""Fields an item map may carry besides :data:`ITEM_FIELDS`: ``body`` or ``error``, and output ``tensors`` (tensor
maps, ``workers/tensors.py``) and ``parameters`` (a map)."""

JOB_FIELDS: Final = frozenset({"id", "request_id", "headers", "inputs", "method"})
"""Fields of a job map (what a runtime is given; :func:`job_from_wire`)."""

JOB_OPTIONAL_FIELDS: Final = frozenset({"url_path", "tensors", "parameters", "outputs", "infer_id", "from_grpc"})
"""Fields a job map carries only when they are set: ``url_path`` (str), ``tensors`` (tensor maps), ``parameters``
(a map: the request's parameters), ``outputs`` (``{"name": str, "parameters"?: map}`` maps) and ``infer_id`` (str:
the id a client gave its inference request, e.g. the Open Inference Protocol's ``id``)."""

REQUIRED_FIELDS: Final[dict[str, frozenset[str]]] = {
    "hello": frozenset({"version", "pid", "device"}),
    "load": frozenset(
        {
            "model_name",
            "model_version",
            "model_dir",
            "handler",
            "runtime",
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
    "chunk": frozenset({"item"}),
    "cancel": frozenset({"ids"}),
    "pause": frozenset({"ids"}),
    "resume": frozenset({"ids"}),
    "shutdown": frozenset(),
}
"""Top-level fields every message of a kind must carry, besides ``kind`` itself.

Only presence is checked here; the job and item arrays inside are checked where they are read
(:func:`job_from_wire`, :func:`check_item` and :func:`item_fault`)."""


class ProtocolError(Exception):
    """A frame or message that breaks the protocol: the peer that sent it is broken."""


def max_frame_size_for(max_request_size: int, batch_size: int) -> int:
    """Return the frame limit for a server: 64 MiB headroom plus a full batch of maximal requests.

    It bounds each frame and also a message with its attachments (what the receiver holds before decoding it)."""
    if max_request_size < 0 or batch_size < 1:
        raise ValueError("max_request_size must be >= 0 and batch_size >= 1")
    return min(FRAME_SIZE_HEADROOM + max_request_size * batch_size, MAX_FRAME_SIZE_LIMIT)


def header_items(headers: Any) -> Iterable[tuple[str, str]]:
    """A job's ``headers`` as (name, value) strings: a map as given, or the request's headers as the frontend
    received them, a flat array of name, value, name, value... bytes, decoded as latin-1 (HTTP's bytes, one to one).
    The frontend sends them untouched so that decoding is paid only by a runtime that reads them, in the worker, not
    on the frontend's one event loop. A list of (name, value) pairs, and str in place of bytes, are read too (an
    in-process caller's)."""
    if not headers:
        return ()
    if type(headers) is not list and isinstance(headers, Mapping):
        return headers.items()
    if isinstance(headers[0], (tuple, list)):
        return [(_latin1(name), _latin1(value)) for name, value in headers]
    items: list[tuple[str, str]] = []
    for index in range(0, len(headers) - 1, 2):  # compiled, an index loop: no slices, no zip, no call a value
        name = headers[index]
        value = headers[index + 1]
        if type(name) is bytes and type(value) is bytes:
            items.append((name.decode("latin-1"), value.decode("latin-1")))
        else:
            items.append((_latin1(name), _latin1(value)))
    return items


def _latin1(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


JOB_WIRE_LENGTH: Final = 6
"""A job on the wire: ``[id, request_id, headers, inputs, method, optional]`` (docs/protocol.md)."""

ITEM_WIRE_LENGTH: Final = 7
"""An item on the wire: ``[id, status, reason, headers, content_type, body, optional]`` (docs/protocol.md)."""


def job_to_wire(
    job_id: int,
    request_id: str,
    headers: Any,
    inputs: Iterable[Any],
    method: str,
    optional: dict[str, Any] | None,
) -> list[Any]:
    """A job as the ``infer`` frame carries it: its inputs' (name, content type, value) flat, a large value marked
    to travel as an attachment; ``optional`` holds the fields of :data:`JOB_OPTIONAL_FIELDS` that are set, or None.
    An input is any (name, content type, value) sequence: a tuple, or a list as msgpack gives one back."""
    flat: list[Any] = []
    for name, content_type, value in inputs:
        flat.append(name)
        flat.append(content_type)
        flat.append(attach(value))
    return [job_id, request_id, headers, flat, method, optional]


def job_from_wire(wire: Any) -> dict[str, Any]:
    """A job array as a runtime is given it: a map of :data:`JOB_FIELDS` and the optional fields that were set, its
    inputs as (name, content type, value) tuples. Raises :class:`ProtocolError` for an array of another shape."""
    if type(wire) is not list or len(wire) != JOB_WIRE_LENGTH:
        raise ProtocolError(f"a job must be an array of {JOB_WIRE_LENGTH}, got {_shape(wire)}")
    job_id, request_id, headers, flat, method, optional = wire
    if type(job_id) is not int or type(flat) is not list or len(flat) % 3:
        raise ProtocolError("a job needs an int id and inputs as name, content type, value triples")
    job = {
        "id": job_id,
        "request_id": request_id,
        "headers": headers,
        "inputs": [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)],
        "method": method,
    }
    if optional is not None:
        if type(optional) is not dict or not JOB_OPTIONAL_FIELDS.issuperset(optional):
            raise ProtocolError(f"a job's optional fields must be a map of {sorted(JOB_OPTIONAL_FIELDS)}, or nil")
        job.update(optional)
    return job


def item_to_wire(item: Mapping[str, Any], attaching: bool = True) -> list[Any]:
    """A runtime's item map as the ``result`` and ``chunk`` frames carry it, a large body marked to travel as an
    attachment (unless not ``attaching``); ``error``, ``tensors`` (tensor maps) and ``parameters`` go in the trailing
    map when set."""
    body = item.get("body")
    optional: dict[str, Any] | None = None
    error = item.get("error")
    if error is not None:
        optional = {"error": error}
    tensors = item.get("tensors")
    if tensors is not None:  # an empty list too: the frontend tells "no output tensors" from "not a tensor answer"
        optional = optional or {}
        optional["tensors"] = tensors
    parameters = item.get("parameters")
    if parameters is not None:
        optional = optional or {}
        optional["parameters"] = parameters
    return [
        item["id"],
        item["status"],
        item["reason"],
        item["headers"],
        item["content_type"],
        body if body is None or not attaching else attach(body),
        optional,
    ]


def check_item(wire: Any) -> list[Any]:
    """``wire`` if it is an item array with an int id (the receiver reads its positions); else :class:`ProtocolError`.
    The other values are checked by :func:`item_fault`, for the one job."""
    if type(wire) is not list or len(wire) != ITEM_WIRE_LENGTH or type(wire[0]) is not int:
        raise ProtocolError(f"an item must be an array of {ITEM_WIRE_LENGTH} with an int id, got {_shape(wire)}")
    return wire


def item_fault(wire: list[Any]) -> str | None:
    """What is wrong with the values of an item array that :func:`check_item` passed, or None."""
    _, status, reason, headers, content_type, body, optional = wire
    if type(status) is not int or type(reason) is not str or type(content_type) is not str:
        return "status, reason and content type must be int, str and str"
    if type(headers) is not dict:
        return f"headers must be a map, got {type(headers).__name__}"
    if optional is not None and type(optional) is not dict:
        return f"the optional fields must be a map, got {type(optional).__name__}"
    if type(body) is not bytes and type(body) is not bytearray:
        if body is not None:
            return f"body must be bytes, got {type(body).__name__}"
        if optional is None or optional.get("error") is None:
            return "an answer needs a body or an error"
    return None


def _shape(value: Any) -> str:
    return f"an array of {len(value)}" if type(value) is list else type(value).__name__


def check_max_frame_size(max_frame_size: int) -> int:
    if not 0 < max_frame_size <= MAX_FRAME_SIZE_LIMIT:
        raise ValueError(f"max_frame_size must be in 1..{MAX_FRAME_SIZE_LIMIT}, got {max_frame_size}")
    return max_frame_size


_ONE_FIELD: Final[dict[str, str]] = {
    kind: next(iter(fields)) for kind, fields in REQUIRED_FIELDS.items() if len(fields) == 1
}
"""The kinds with one required field (``infer``, ``result``, ``chunk``...: every frame of the request path), by it."""


def _validate(message: Mapping[str, Any]) -> None:
    """Check that ``message`` has a known ``kind`` and that kind's required fields."""
    kind = message.get("kind")
    if type(kind) is str:
        field = _ONE_FIELD.get(kind)
        if field is not None and field in message:  # the usual frame: one lookup, no set of keys
            return
    if not isinstance(kind, str):
        raise ProtocolError(f"message has no str 'kind' (got {type(kind).__name__})")
    required = REQUIRED_FIELDS.get(kind)
    if required is None:
        raise ProtocolError(f"unknown message kind {kind!r}")
    if message.keys() >= required:  # the usual case, without building the set of missing fields
        return
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
    message: Mapping[str, Any],
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    checked: bool = True,
    ring: RingWriter | None = None,
) -> list[bytes | bytearray | memoryview]:
    """:func:`encode` as the pieces of a gathering write (``sendmsg``, ``writelines``): headers, the attached bodies
    as the very objects the caller gave, and the payload. Nothing is copied just to put four bytes in front of it.

    With ``ring`` (the sender's end of a shared memory ring, :mod:`workers.shared_ring`), each attached body that
    fits there is copied into it and only its reference goes into the pieces; the pieces must then be written, in
    the order encoded, on the socket whose peer reads that ring.

    Raises :class:`ProtocolError` if the message (with its attachments) packs to more than ``max_frame_size``; the
    ring is then as it was."""
    if checked:
        if not isinstance(message, Mapping):
            raise ProtocolError(f"a message must be a mapping, got {type(message).__name__}")
        _validate(message)
    packing = _thread_packing()
    packing.ring = ring
    saved = ring.save() if ring is not None else (0, 0)
    try:
        payload = packing.packer.pack(message if isinstance(message, dict) else dict(message))
        size = len(payload)
        parts = packing.parts
        if parts:
            size += packing.attached
        if size > max_frame_size:
            raise ProtocolError(f"{message['kind']!r} frame of {size} bytes exceeds {max_frame_size}")
    except BaseException as err:
        packing.packer.reset()
        packing.clear()
        if ring is not None:
            ring.restore(saved)  # the references will never be sent: their place is free again
        if isinstance(err, (TypeError, ValueError, OverflowError)):
            error = ProtocolError(f"cannot pack {message['kind']!r} message: {err}")
            error.__cause__ = err  # mypyc compiles `raise ... from` without the cause
            raise error from err
        raise
    finally:
        packing.ring = None  # the thread's packer keeps no peer's mapping alive
    if parts:
        packing.clear()
    return [*parts, HEADER.pack(len(payload)), payload]


class _Packing:
    """A msgpack ``Packer``, reused (``packb`` builds one per call), and the attachment frames of the message it is
    packing (its ``default`` hook meets each :class:`Attached` body). One per thread (:func:`_thread_packing`)."""

    def __init__(self) -> None:
        self.parts: list[bytes | bytearray | memoryview] = []
        self.attached = 0  # the attached bodies' bytes, wherever they travel
        self.ring: RingWriter | None = None  # where attached bodies go when they fit (None: the socket)
        self.packer = msgpack.Packer(use_bin_type=True, autoreset=True, default=self.mark)

    def mark(self, value: Any) -> Any:
        if type(value) is Attached:
            data = value.data
            size = len(data)
            ring = self.ring
            offset = ring.put(data) if ring is not None else -1
            if offset >= 0:
                self.parts.append(RING_REFERENCE_HEADER)
                self.parts.append(RING_REFERENCE.pack(offset, size))
            else:
                self.parts.append(HEADER.pack(ATTACHMENT_FLAG | size))
                self.parts.append(data)
            self.attached += size
            return _ATTACHMENT_MARK
        raise TypeError(f"can not serialize {type(value).__name__!r} object")

    def clear(self) -> None:
        self.parts = []
        self.attached = 0


_per_thread = threading.local()


def _thread_packing() -> _Packing:
    try:
        packing: _Packing = _per_thread.packing
    except AttributeError:
        packing = _per_thread.packing = _Packing()
    return packing


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
        # msgpack's defaults are str for strings, str map keys only, and every length bounded by the payload's
        # (msgpack is pinned); naming them costs more than the unpacking of a small frame. max_ext_len=0 refuses any
        # ext with data (a timestamp, which would be decoded without ext_hook) before it is read.
        message = msgpack.unpackb(payload, ext_hook=claim or _reject_ext, max_ext_len=0)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as err:
        error = ProtocolError(f"invalid msgpack payload: {err}")
        error.__cause__ = err  # mypyc compiles `raise ... from` without the cause
        raise error from err
    if claim is not None and claim.taken != len(claim.attachments):
        raise ProtocolError(f"{len(claim.attachments) - claim.taken} attachment(s) sent but not claimed")
    if not isinstance(message, dict):
        raise ProtocolError(f"payload is a msgpack {type(message).__name__}, not a map")
    _validate(message)
    return message
