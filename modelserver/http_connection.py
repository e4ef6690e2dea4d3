"""One HTTP/1.1 connection: httptools (llhttp, the parser uvicorn uses) feeding :class:`~modelserver.http_request.
HttpRequest` objects to the listener, and answers written straight to the transport (:mod:`modelserver.
http_responses`).

Why not aiohttp's server: its request and response objects and their machinery cost more per request than the whole
rest of the frontend's work. Here a request costs the parser's callbacks, one small object, one wake-up of the
connection's task and one write. Reads go straight into the server's one read buffer (a buffered protocol): the
parser copies out what it hands on (the target, headers, body pieces), so a body is copied once on its way in, not
twice (the loop's own buffer to a ``bytes``, then that to the parser's pieces).

Requests on a connection are answered in order, one at a time; pipelined requests wait in a queue, and while one
waits the connection stops reading, so a pipelining client is held to one read buffer. A request is dispatched as
soon as its headers are here; its body keeps arriving while the handler runs (``read_body`` waits for it).

The connection keeps a state for the server's deadline sweep (:mod:`modelserver.http_server`): reading a request's
headers, reading its body, idle between requests, and whether a response is waiting for the client to read. The
stamps come from the server's coarse clock, so a request pays for no timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import httptools

from .errors import BadRequest, BodyTimeout, ClientGone
from .http_messages import Response
from .http_request import CONTINUE, HttpRequest
from .http_responses import simple_response, write_stream, write_whole

if TYPE_CHECKING:
    from .listener import Listener


class ConnectionHost:
    """What a connection needs of the server that accepted it (:class:`~modelserver.http_server.HttpServer` extends
    it). A base class rather than a protocol: compiled, a connection then reads its server's clock, loop and
    callbacks as fields (3k instructions a request fewer than looking them up by name)."""

    loop: asyncio.AbstractEventLoop
    listener: Listener
    clock: float
    """The loop's time at the last sweep: read-deadline stamps cost no clock read."""
    date_line: str
    timing: bool
    read_view: memoryview
    """Where every connection of the server reads (:data:`READ_SIZE` bytes); a read is parsed before the next."""
    observers: list[Callable[[int], None]]

    def opened(self, connection: HttpConnection) -> None:
        raise NotImplementedError

    def closed(self, connection: HttpConnection) -> None:
        raise NotImplementedError

    def answered(self, connection: HttpConnection, request: HttpRequest, status: int) -> None:
        raise NotImplementedError

    def cancelled(self, connection: HttpConnection, request: HttpRequest) -> None:
        raise NotImplementedError


logger = logging.getLogger("modelserver.http")

IDLE: Final = 0
HEADERS: Final = 1
BODY: Final = 2
"""What the parser is in the middle of: nothing (between requests), a request's head, a request's body."""
MAX_HEAD_BYTES: Final = 64 * 1024
"""The request line and headers together; more is answered 431.

httptools gathers a header's name and value inside itself and calls ``on_header`` only once the header is whole, so
counting in that callback would leave one endless header unbounded in memory. The bytes are counted per read
instead (:meth:`HttpConnection.data_received`): a head still incomplete after more than this many bytes beyond its
first read is refused at once; a head that completes is measured exactly when its reads were large enough for it
to be too long."""
_METHODS: Final[dict[bytes, str]] = {}
READ_SIZE: Final = 256 * 1024
"""A read's most: the size of the event loop's own read buffer (uvloop's)."""


class HttpConnection(asyncio.BufferedProtocol):
    __slots__ = (
        "_content_type",
        "_current",
        "_dispatch",
        "_expect",
        "_drain_waiter",
        "_headers",
        "_head_bytes",
        "_head_first_read",
        "_read_size",
        "_idle_waiter",
        "_loop",
        "_max_body",
        "_parser",
        "_pending",
        "_read_paused",
        "_read_view",
        "_server",
        "_task",
        "_url",
        "closed",
        "draining",
        "peer",
        "read_stamp",
        "reading",
        "transport",
        "write_paused",
        "write_stamp",
    )

    def __init__(self, server: ConnectionHost) -> None:
        self._server = server
        self._loop = server.loop
        self._dispatch = server.listener.dispatch
        self._max_body = server.listener.max_request_size
        self._parser = httptools.HttpRequestParser(self)
        self._read_view = server.read_view
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self._pending: deque[HttpRequest] = deque()  # head complete, not yet answered; [0] is being answered
        self._current: HttpRequest | None = None  # the request whose bytes the parser is reading
        self._task: asyncio.Task[None] | None = None  # answers the requests in turn, for the connection's life
        self._idle_waiter: asyncio.Future[None] | None = None  # what that task awaits while no request is here
        self._url: list[bytes] = []
        self._headers: list[bytes] = []  # name, value, name, value... as sent (HttpRequest.raw_headers)
        self._head_bytes = 0  # bytes of the reads the head being read has spanned so far, the one it began in too
        self._head_first_read = 0  # of those, the read it began in (which may hold earlier requests too)
        self._read_size = 0  # the read being parsed
        self._content_type: bytes | None = None  # the first Content-Type of the head being read
        self._expect = False  # whether that head asked for 100 Continue
        self._read_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.reading = IDLE
        self.read_stamp = server.clock
        self.write_paused = False
        self.write_stamp = 0.0
        self.draining = False
        self.closed = False

    # -- transport events ----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.read_stamp = self._server.clock
        self._server.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        gone = ClientGone("the client went away")
        for request in self._pending:
            request.abort(gone)
        if self._current is not None:
            self._current.abort(gone)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(gone)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        self._server.closed(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_stamp = self._server.clock

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_view[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """``data`` is read during the call only (the buffer is read into again): the parser's callbacks get copies."""
        self._read_size = size = len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An upgrade (h2c, websocket) we do not do: the request is answered as HTTP/1.1, then the connection ends.
            self._finish_reading()
        except httptools.HttpParserCallbackError as err:
            if isinstance(err.__context__, _HeadTooLarge):
                self._refuse(431)
            else:
                logger.error("Cannot take a request from %s: %r", self.peer, err.__context__)
                self._refuse(500)
        except httptools.HttpParserError:
            self._refuse(400)
            return
        if self.reading == HEADERS and not self.closed:  # the head goes on in the next read: count this one
            if not self._head_bytes:
                self._head_first_read = size
            self._head_bytes += size
            if self._head_bytes - self._head_first_read > MAX_HEAD_BYTES:
                self._refuse(431)

    def eof_received(self) -> bool:
        # The client closed its side: taken as gone (as aiohttp and nginx do), so its pending work is cancelled. A
        # client that only half-closes is rare, and cannot be told from one that left until a write fails.
        return False

    # -- parser callbacks ----------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.reading = HEADERS
        self.read_stamp = self._server.clock
        self._url = []
        self._headers = []
        self._head_bytes = 0
        self._head_first_read = 0
        self._content_type = None
        self._expect = False

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        headers.append(name)
        headers.append(value)
        size = len(name)
        # The two headers the HTTP layer itself reads are noted as they pass, sparing a search of the list later.
        if size == 12:
            if self._content_type is None and name.lower() == b"content-type":
                self._content_type = value
        elif size == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self._expect = True

    def on_headers_complete(self) -> None:
        if self._head_bytes + self._read_size > MAX_HEAD_BYTES and self._head_size() > MAX_HEAD_BYTES:
            raise _HeadTooLarge()
        parser = self._parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method)
        if method is None:
            method = raw_method.decode("ascii", "replace")
            if len(_METHODS) < 64:
                _METHODS[raw_method] = method
        url = self._url
        target = url[0] if len(url) == 1 else b"".join(url)
        request = HttpRequest(
            method,
            target.decode("utf-8", "surrogateescape"),
            parser.get_http_version(),
            self._headers,
            self._max_body,
            self._send_continue,
            self._content_type,
            self._expect,
        )
        request.keep_alive = parser.should_keep_alive()
        if self._server.timing:
            request.started = self._loop.time()
        self._current = request
        self.reading = BODY
        self.read_stamp = self._server.clock
        self._pending.append(request)
        if len(self._pending) == 1:
            self._start(request)
        elif not self._read_paused:  # pipelined behind a busy request: read no further until its turn
            self._read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        self.read_stamp = self._server.clock
        self._current.feed(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        request = self._current
        self._current = None
        self.reading = IDLE
        self.read_stamp = self._server.clock
        if request is not None:
            request.finish()
        if self.draining:
            self._stop_reading()

    def _head_size(self) -> int:
        """The request line's target and the headers' names and values, as TorchServe's limit counts them."""
        size = 0
        for piece in self._url:  # loops, compiled: sum(map(len, ...)) is a generic call a piece (every large read)
            size += len(piece)
        for piece in self._headers:
            size += len(piece)
        return size

    # -- answering -----------------------------------------------------------------------------------------------

    def _start(self, request: HttpRequest) -> None:
        """A request is first in line: wake the connection's answering task, started with the first request.

        One task serves every request of the connection in turn: a request costs a future and a wake-up, not a
        task of its own (whose creation and registration cost more than the rest of the HTTP layer's own work)."""
        waiter = self._idle_waiter
        if waiter is not None:
            self._idle_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        elif self._task is None or self._task.done():
            self._task = self._loop.create_task(self._serve())

    async def _serve(self) -> None:
        pending = self._pending
        while not self.closed:
            if not pending:
                waiter = self._idle_waiter = self._loop.create_future()
                try:
                    await waiter
                except asyncio.CancelledError:
                    return  # the connection was lost while idle
                continue
            if not await self._answer(pending[0]):
                return

    def _next(self) -> bool:
        """The head request is answered: go on to the next one, or wait idle (closing when draining). Whether the
        connection goes on serving."""
        pending = self._pending
        pending.popleft()
        if self.closed:
            return False
        if pending:
            if len(pending) == 1 and self._read_paused and not self.draining:
                self._read_paused = False
                self.transport.resume_reading()  # type: ignore[union-attr]
            return True
        if self.draining:
            if self.reading == BODY:
                return False  # cannot happen: a request in its body is in pending
            self.close()
            return False
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        if self.reading == IDLE:
            self.read_stamp = self._server.clock
        return True

    async def _answer(self, request: HttpRequest) -> bool:
        """Answer the head request; whether the connection can serve the next one."""
        server = self._server
        try:
            response = await self._dispatch(request)
            status = response.status
            for observer in server.observers:
                observer(status)
            if type(response) is Response:
                closing = self._closing_after(request, response.close)
                if self.closed:
                    raise ClientGone("the client went away")
                write_whole(self.transport, request, response, closing, server.date_line)  # type: ignore[arg-type]
                complete = True
            else:
                closing = self._closing_after(request, False) or request.version != "1.1"
                complete = await write_stream(self, request, response, closing)  # type: ignore[arg-type]
            if self.write_paused and not closing:  # the client reads slowly: finish this answer before the next
                await self.drained()
        except (asyncio.CancelledError, ClientGone):
            server.cancelled(self, request)
            return False
        except Exception:
            logger.exception("Unexpected error answering %s %s", request.method, request.raw_path)
            self.abort()
            return False
        server.answered(self, request, status)
        if not complete:
            return False
        if closing or not request.complete:
            # A body the handler did not read leaves the stream mid-message: the connection cannot be reused.
            self.close()
            return False
        return self._next()

    def _closing_after(self, request: HttpRequest, response_close: bool) -> bool:
        return response_close or not request.keep_alive or (self.draining and len(self._pending) <= 1)

    async def drained(self) -> None:
        """Wait until the client has read enough of what was written (``ClientGone`` if it left)."""
        if self.closed:
            raise ClientGone("the client went away")
        waiter = self._drain_waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._drain_waiter = None

    def _send_continue(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(CONTINUE)

    # -- closing -------------------------------------------------------------------------------------------------

    def _stop_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def _finish_reading(self) -> None:
        """Read no more: answer what was received, then close."""
        self.draining = True
        self._stop_reading()
        if not self._pending:
            self.close()

    def _refuse(self, status: int) -> None:
        """A malformed request: answer what came before it, then ``status``, and close."""
        self._stop_reading()
        current, self._current = self._current, None
        self.reading = IDLE
        if current is not None:
            if self._pending and current is self._pending[0]:
                current.abort(BadRequest("Malformed request body."))  # its handler is running: it answers 400
            elif current in self._pending:
                self._pending.remove(current)
        self.draining = True
        if not self._pending and self.transport is not None and not self.closed:
            self.transport.write(simple_response(status))
            self.close()

    def close(self) -> None:
        """Close after what was written has left."""
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def expire(self) -> None:
        """A deadline passed. A client that stopped reading is cut; one that stopped sending a request gets 408 (in
        its protocol's shape when the request's handler is waiting for the body); an idle one is closed."""
        if self.transport is None or self.closed:
            return
        if self.write_paused:
            self.abort()
            return
        current = self._current
        if self.reading == BODY and current is not None and self._pending and current is self._pending[0]:
            self._current = None
            self.reading = IDLE
            self.draining = True
            self._stop_reading()
            current.abort(BodyTimeout())
            return
        if self.reading != IDLE and not (self._pending and self._pending[0] is not current):
            self.transport.write(simple_response(408))
        self.close()

    def start_drain(self) -> None:
        """The server is stopping: answer the requests already received, the last one with ``Connection: close``."""
        self.draining = True
        if self.reading == HEADERS:  # a request only half here is not answered
            self._pending = deque(r for r in self._pending if r is not self._current)
            self._current = None
            self.reading = IDLE
        if not self._pending:
            self.close()
        elif self.reading != BODY:
            self._stop_reading()

    @property
    def date_line(self) -> str:
        return self._server.date_line

    @property
    def idle(self) -> bool:
        """Nothing received that is waiting for an answer."""
        return not self._pending

    @property
    def timed_read(self) -> bool:
        """Whether the request being read is on the clock: the one being answered, or the next one on an idle
        connection. A request pipelined behind a busy one waits on us, not on its client."""
        pending = self._pending
        if self.reading == HEADERS:
            return not pending
        return bool(pending) and pending[0] is self._current


class _HeadTooLarge(Exception):
    pass
