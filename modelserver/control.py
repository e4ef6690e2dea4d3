"""The control channel between the supervisor and its frontend processes (``frontend_processes`` > 1).

One Unix stream socket per frontend, to the supervisor, in a directory only this server's user can enter. The
frames are the workers' (``workers/protocol.py``: a 4-byte length, then one msgpack map), with kinds of their own:

* ``hello`` {index, pid}: a frontend's first message; ``setup`` {config, restart, count}: the supervisor's answer
  (the resolved configuration, whether this is a restart, how many frontends there are);
* ``started`` {}: the frontend has bound its listeners (the supervisor prints ``Model server started.`` once
  every frontend has);
* ``call`` {id, op, args, timeout}: a frontend asks every other frontend; the supervisor sends each an ``ask``
  {id, op, args}, collects their ``reply`` {id, value[, error]} and answers the caller with ``answers``
  {id, values, errors, missing}: ``[index, value]`` pairs, ``[index, message]`` pairs, and the indexes that did not
  answer within ``timeout`` seconds (not running, restarting, or stuck).

The supervisor only routes; what an ``op`` means is the frontends' business (:mod:`modelserver.cluster`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from workers.frame_decoder import FrameDecoder
from workers.protocol import ProtocolError, encode_parts

logger = logging.getLogger("modelserver.control")

MAX_CONTROL_FRAME = 256 * 1024 * 1024
"""Bounds a frame: a ``/metrics`` scrape of many models is a few MB."""

KINDS: Mapping[str, frozenset[str]] = {
    "hello": frozenset({"index", "pid"}),
    "setup": frozenset({"config", "restart", "count"}),
    "started": frozenset(),
    "call": frozenset({"id", "op", "args", "timeout"}),
    "ask": frozenset({"id", "op", "args"}),
    "reply": frozenset({"id", "value"}),
    "answers": frozenset({"id", "values", "errors", "missing"}),
}


def check(message: Any) -> dict[str, Any]:
    """``message`` if it is a map with a known ``kind`` and that kind's fields, else ProtocolError."""
    if not isinstance(message, dict):
        raise ProtocolError(f"a control message must be a map, got {type(message).__name__}")
    kind = message.get("kind")
    required = KINDS.get(kind) if isinstance(kind, str) else None
    if required is None:
        raise ProtocolError(f"unknown control message kind {kind!r}")
    missing = required.difference(message)
    if missing:
        raise ProtocolError(f"{kind!r} control message is missing {', '.join(sorted(missing))}")
    return message


def encode(message: Mapping[str, Any]) -> list[bytes | bytearray | memoryview]:
    """The frames of one control message, checked."""
    return encode_parts(check(dict(message)), MAX_CONTROL_FRAME, checked=False)


def decode(payload: bytes | bytearray | memoryview, max_frame_size: int = MAX_CONTROL_FRAME) -> dict[str, Any]:
    """One frame's payload as a checked control message; ProtocolError for anything else."""
    size = len(payload)
    try:
        message = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            ext_hook=_no_ext,
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
    return check(message)


def _no_ext(code: int, data: bytes) -> Any:
    raise ProtocolError(f"control messages carry no msgpack ext types (got {code})")


class ControlDecoder(FrameDecoder):
    """The workers' frame decoder with the control kinds; a control message never has attachment frames."""

    def _decode(self, payload: bytes | bytearray | memoryview) -> dict:
        if self._attachments:
            raise ProtocolError("control messages carry no attachment frames")
        return decode(payload, self.max_frame_size)


# -- blocking ends (a frontend's handshake, before its event loop runs) ----------------------------------------------


def send_blocking(sock: socket.socket, message: Mapping[str, Any]) -> None:
    sock.sendall(b"".join(bytes(part) for part in encode(message)))


def receive_blocking(sock: socket.socket, decoder: ControlDecoder) -> list[dict[str, Any]]:
    """The next message, and any that came with it (the supervisor may ask something right after the setup; the
    decoder keeps a partial one); ConnectionError when the peer closed first."""
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the control socket closed")
        messages = decoder.feed(data)
        if messages:
            return messages


# -- the asyncio end -------------------------------------------------------------------------------------------------


class ControlChannel(asyncio.BufferedProtocol):
    """Frames in and out of one control socket on the event loop. A malformed frame closes it."""

    def __init__(
        self,
        on_message: Callable[[dict[str, Any]], None],
        on_close: Callable[[], None],
        decoder: ControlDecoder | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_close = on_close
        self._decoder = decoder or ControlDecoder(MAX_CONTROL_FRAME)
        """A frontend's channel goes on with the decoder of its handshake, which may hold part of a message."""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            messages = self._decoder.buffer_updated(nbytes)
        except ProtocolError as err:
            logger.error("Malformed control frame: %s", err)
            self.close()
            return
        for message in messages:
            self._on_message(message)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_close()

    def send(self, message: Mapping[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(encode(message))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


@dataclass
class Answers:
    """What the other frontends answered to one call."""

    values: dict[int, Any] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Answers:
        return cls(
            {int(index): value for index, value in message["values"]},
            {int(index): str(text) for index, text in message["errors"]},
            [int(index) for index in message["missing"]],
        )


Handler = Callable[[Any], Awaitable[Any]]


class ControlLink:
    """A frontend's side of its control channel: calls to the other frontends, and answers to their asks.

    ``handlers`` maps an ``op`` to a coroutine function of the call's ``args`` whose result is the reply's value.
    A call with no running peer answers at once (every index missing); a closed channel fails pending calls so.
    """

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.channel: ControlChannel | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Answers]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, message: Mapping[str, Any]) -> None:
        if self.channel is not None:
            self.channel.send(message)

    async def call(self, op: str, args: Any = None, timeout: float = 5.0) -> Answers:
        if self.channel is None or self.channel.transport is None:
            return Answers()
        call_id = next(self._ids)
        future: asyncio.Future[Answers] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        self.channel.send({"kind": "call", "id": call_id, "op": op, "args": args, "timeout": timeout})
        try:
            return await future
        finally:
            self._pending.pop(call_id, None)

    def on_message(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "answers":
            future = self._pending.get(message["id"])
            if future is not None and not future.done():
                future.set_result(Answers.from_message(message))
        elif kind == "ask":
            task = asyncio.get_running_loop().create_task(self._answer(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            logger.error("Unexpected control message %r from the supervisor", kind)

    async def _answer(self, message: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"kind": "reply", "id": message["id"], "value": None}
        handler = self.handlers.get(message["op"])
        try:
            if handler is None:
                raise LookupError(f"unknown op {message['op']!r}")
            reply["value"] = await handler(message["args"])
        except Exception as err:  # the asking frontend gets the error; this one goes on
            logger.exception("Control op %s failed", message["op"])
            reply["error"] = f"{type(err).__name__}: {err}"
        self.send(reply)

    def closed(self) -> None:
        """The channel is gone: pending calls end with nobody having answered."""
        self.channel = None
        for future in self._pending.values():
            if not future.done():
                future.set_result(Answers())
