"""The supervisor's side of the control channels: which frontend is connected, and routing a call to every other
frontend and their replies back (the messages are described in :mod:`modelserver.control`)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .control import ControlChannel

logger = logging.getLogger("modelserver.supervisor")

MAX_CALL_TIMEOUT = 600.0


@dataclass
class _Call:
    origin: int
    origin_id: int
    waiting: set[int]
    values: list[list[Any]] = field(default_factory=list)
    errors: list[list[Any]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class Hub:
    """Routes ``call`` messages of ``count`` frontends (indexes ``0 .. count-1``).

    ``on_hello(index, pid, channel)`` and ``on_started(index)`` tell the supervisor about a frontend;
    ``on_left(index)`` that its channel closed.
    """

    def __init__(
        self,
        count: int,
        on_hello: Callable[[int, int, ControlChannel], None],
        on_started: Callable[[int], None],
    ) -> None:
        self.count = count
        self.channels: dict[int, ControlChannel] = {}
        self._on_hello = on_hello
        self._on_started = on_started
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count(1)

    def connection(self) -> ControlChannel:
        """A protocol for one accepted control socket; it knows its frontend once ``hello`` arrives."""
        state: dict[str, Any] = {"index": None}

        def on_message(message: dict[str, Any]) -> None:
            index = state["index"]
            if message["kind"] == "hello":
                index = message["index"]
                if not isinstance(index, int) or not 0 <= index < self.count or index in self.channels:
                    logger.error("Control connection says it is frontend %r: refused", index)
                    channel.close()
                    return
                state["index"] = index
                self.channels[index] = channel
                self._on_hello(index, int(message["pid"]), channel)
            elif index is None:
                logger.error("Control connection sent %r before hello: closed", message["kind"])
                channel.close()
            else:
                self._handle(index, message)

        def on_close() -> None:
            index = state["index"]
            if index is not None and self.channels.get(index) is channel:
                del self.channels[index]
                self._left(index)

        channel = ControlChannel(on_message, on_close)
        return channel

    def _handle(self, index: int, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "started":
            self._on_started(index)
        elif kind == "call":
            self._call(index, message)
        elif kind == "reply":
            self._reply(index, message)
        else:
            logger.error("Unexpected control message %r from frontend %d", kind, index)

    def _call(self, origin: int, message: dict[str, Any]) -> None:
        targets = {index for index in self.channels if index != origin}
        call_id = next(self._ids)
        call = _Call(origin, message["id"], set(targets))
        self._calls[call_id] = call
        ask = {"kind": "ask", "id": call_id, "op": message["op"], "args": message["args"]}
        for index in targets:
            self.channels[index].send(ask)
        timeout = message["timeout"]
        seconds = min(float(timeout), MAX_CALL_TIMEOUT) if isinstance(timeout, int | float) else 5.0
        call.timer = asyncio.get_running_loop().call_later(max(0.0, seconds), self._finish, call_id)
        if not targets:
            self._finish(call_id)

    def _reply(self, index: int, message: dict[str, Any]) -> None:
        call = self._calls.get(message["id"])
        if call is None or index not in call.waiting:
            return  # a reply after the call timed out
        call.waiting.discard(index)
        error = message.get("error")
        if error is not None:
            call.errors.append([index, str(error)])
        else:
            call.values.append([index, message["value"]])
        if not call.waiting:
            self._finish(message["id"])

    def _left(self, index: int) -> None:
        for call_id, call in list(self._calls.items()):
            if index in call.waiting:
                call.waiting.discard(index)
                if not call.waiting:
                    self._finish(call_id)

    def _finish(self, call_id: int) -> None:
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        if call.timer is not None:
            call.timer.cancel()
        answered = {index for index, _ in call.values} | {index for index, _ in call.errors}
        missing = [index for index in range(self.count) if index != call.origin and index not in answered]
        channel = self.channels.get(call.origin)
        if channel is not None:
            channel.send(
                {
                    "kind": "answers",
                    "id": call.origin_id,
                    "values": call.values,
                    "errors": call.errors,
                    "missing": missing,
                }
            )
