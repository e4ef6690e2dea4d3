"""One gRPC call on the native transport: what the service sees (:class:`CallContext`, the same methods of
grpc.aio's servicer context that this server's services use) and the call's state on its connection
(:class:`Call`: its messages in, its task, its deadline).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

from .grpc_wire import MessageReader, invocation_metadata


class AbortError(Exception):
    """A service's ``await context.abort(...)``: the call ends with this status."""

    def __init__(self, code: int, details: str, metadata: tuple[tuple[str, Any], ...]) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.metadata = metadata


def code_number(code: Any) -> int:
    """A status as a number: grpc's ``StatusCode`` (whose value is ``(number, name)``) or a number."""
    value = getattr(code, "value", code)
    return int(value[0] if isinstance(value, tuple) else value)


class CallContext:
    """What a service method gets as ``context``."""

    __slots__ = ("_headers", "_metadata", "_deadline", "_peer", "code", "details", "trailing")

    def __init__(self, headers: list[tuple[str, str]], deadline: float | None, peer: str) -> None:
        self._headers = headers
        self._metadata: tuple[tuple[str, str | bytes], ...] | None = None
        self._deadline = deadline
        self._peer = peer
        self.code: int | None = None
        self.details = ""
        self.trailing: tuple[tuple[str, Any], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        if self._metadata is None:
            self._metadata = invocation_metadata(self._headers)
        return self._metadata

    async def abort(self, code: Any, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        raise AbortError(code_number(code), details, tuple(trailing_metadata or ()))

    def set_code(self, code: Any) -> None:
        self.code = code_number(code)

    def set_details(self, details: str) -> None:
        self.details = details

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailing = tuple(metadata or ())

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def peer(self) -> str:
        return self._peer


class Method:
    """A served method: its coroutine (or async generator), how its messages are read and written, its kind."""

    __slots__ = ("path", "call", "deserialize", "serialize", "client_streams", "server_streams")

    def __init__(
        self,
        path: str,
        call: Callable[..., Any],
        deserialize: Callable[[bytes | bytearray], Any] | None,
        serialize: Callable[[Any], bytes] | None,
        client_streams: bool,
        server_streams: bool,
    ) -> None:
        self.path = path
        self.call = call
        self.deserialize = deserialize
        self.serialize = serialize
        self.client_streams = client_streams
        self.server_streams = server_streams


class Call:
    """A call's state on its connection."""

    __slots__ = (
        "stream_id",
        "method",
        "context",
        "reader",
        "messages",
        "queued",
        "owed",
        "remote_done",
        "headers_sent",
        "finished",
        "task",
        "timer",
        "waiter",
    )

    def __init__(
        self, stream_id: int, method: Method, context: CallContext, max_receive: int, encoding: str = "identity"
    ) -> None:
        self.stream_id = stream_id
        self.method = method
        self.context = context
        self.reader = MessageReader(max_receive, encoding)
        self.messages: collections.deque[bytes | bytearray] = collections.deque()
        self.queued = 0
        """Bytes of whole messages the service has not taken yet (a streaming request)."""
        self.owed = 0
        """Bytes received and not yet given back to the client's window (held while too much is queued)."""
        self.remote_done = False
        self.headers_sent = False
        self.finished = False
        """The call's end (its trailers, or a reset) is sent or decided: nothing more goes out."""
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def requests(self, taken: Callable[[int], None]) -> AsyncIterator[Any]:
        """The request messages of a client-streaming call as they come (deserialized); ``taken`` is told each
        message's size so the client's window can be given back."""
        deserialize = self.method.deserialize
        while True:
            if self.messages:
                message = self.messages.popleft()
                self.queued -= len(message)
                taken(len(message))
                yield deserialize(message) if deserialize else message
            elif self.remote_done:
                return
            else:
                self.waiter = asyncio.get_running_loop().create_future()
                await self.waiter
                self.waiter = None
