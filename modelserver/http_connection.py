"""One HTTP/1.1 connection: httptools (llhttp, the parser uvicorn uses) feeding :class:`~modelserver.http_request.
HttpRequest` objects to the listener, and responses written straight to the transport.

Why not aiohttp's server: its request and response objects and their machinery cost more per request than the whole
rest of the frontend's work. Here a request costs the parser's callbacks, one small object, one task and one write.

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
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING

import httptools

from .errors import BadRequest, ServeError
from .http_messages import Response, StreamingResponse
from .http_request import CONTINUE, BodyTimeout, HttpRequest

if TYPE_CHECKING:
    from .http_server import HttpServer

logger = logging.getLogger("modelserver.http")

IDLE, HEADERS, BODY = 0, 1, 2
"""What the parser is in the middle of: nothing (between requests), a request's head, a request's body."""
MAX_HEAD_BYTES = 64 * 1024
"""The request line and headers together; more is answered 431."""
LARGE_BODY = 16 * 1024
"""A response body at least this large is written on its own rather than copied behind the head."""

_REASONS = {status.value: status.phrase for status in HTTPStatus}
_METHODS: dict[bytes, str] = {}
_NO_BODY_STATUSES = frozenset({204, 304})
_HEADER_KINDS: dict[str, int] = {}
_PLAIN, _CONTENT_TYPE, _DROPPED = 0, 1, 2
"""How a handler's header is written: as given, noted as the content type, or left out (we frame the body)."""
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "date"})


def _header_kind(name: str) -> int:
    kind = _HEADER_KINDS.get(name)
    if kind is None:
        lower = name.lower()
        kind = _CONTENT_TYPE if lower == "content-type" else _DROPPED if lower in _FRAMING else _PLAIN
        if len(_HEADER_KINDS) < 4096:
            _HEADER_KINDS[name] = kind
    return kind


def _clean(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def simple_response(status: int, version: str = "1.1") -> bytes:
    """A bare answer from the HTTP layer itself (400, 408, 431), closing the connection."""
    reason = _REASONS.get(status, "")
    body = reason.encode()
    return (
        f"HTTP/{version} {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class ClientGone(ConnectionError):
    """The client closed the connection, or the server cut it (a write timeout)."""


class HttpConnection(asyncio.Protocol):
    __slots__ = (
        "_current",
        "_dispatch",
        "_drain_waiter",
        "_headers",
        "_head_bytes",
        "_loop",
        "_max_body",
        "_parser",
        "_pending",
        "_read_paused",
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

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = server.loop
        self._dispatch = server.listener.dispatch
        self._max_body = server.listener.max_request_size
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self._pending: deque[HttpRequest] = deque()  # head complete, not yet answered; [0] is being answered
        self._current: HttpRequest | None = None  # the request whose bytes the parser is reading
        self._task: asyncio.Task[None] | None = None
        self._url: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
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

    def data_received(self, data: bytes) -> None:
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

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge()

    def on_headers_complete(self) -> None:
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
        )
        request.keep_alive = parser.should_keep_alive()
        if self._server.timing:
            request.started = self._loop.time()
        for name, value in self._headers:
            if len(name) == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
                request.expect_continue = True
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

    # -- answering -----------------------------------------------------------------------------------------------

    def _start(self, request: HttpRequest) -> None:
        self._task = self._loop.create_task(self._answer(request))

    def _next(self) -> None:
        """The head request is answered: start the next one, or wait idle (closing when draining)."""
        pending = self._pending
        pending.popleft()
        if self.closed:
            return
        if pending:
            self._start(pending[0])
            if len(pending) == 1 and self._read_paused and not self.draining:
                self._read_paused = False
                self.transport.resume_reading()  # type: ignore[union-attr]
            return
        self._task = None
        if self.draining:
            if self.reading == BODY:
                return  # cannot happen: a request in its body is in pending
            self.close()
            return
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        if self.reading == IDLE:
            self.read_stamp = self._server.clock

    async def _answer(self, request: HttpRequest) -> None:
        server = self._server
        try:
            response = await self._dispatch(request)
            status = response.status
            for observer in server.observers:
                observer(status)
            if type(response) is Response:
                closing = self._closing_after(request, response.close)
                self._write_whole(request, response, closing)
                complete = True
            else:
                closing = self._closing_after(request, False) or request.version != "1.1"
                complete = await self._stream(request, response, closing)  # type: ignore[arg-type]
            if self.write_paused and not closing:  # the client reads slowly: finish this answer before the next
                await self._drained()
        except (asyncio.CancelledError, ClientGone):
            server.cancelled(self, request)
            return
        except Exception:
            logger.exception("Unexpected error answering %s %s", request.method, request.raw_path)
            self.abort()
            return
        server.answered(self, request, status)
        if not complete:
            return
        if closing or not request.complete:
            # A body the handler did not read leaves the stream mid-message: the connection cannot be reused.
            self.close()
            return
        self._next()

    def _closing_after(self, request: HttpRequest, response_close: bool) -> bool:
        return response_close or not request.keep_alive or (self.draining and len(self._pending) <= 1)

    def _head(
        self, request: HttpRequest, status: int, reason: str | None, headers: Mapping[str, str] | None, closing: bool
    ) -> tuple[list[str], bool]:
        """The status line and the handler's headers (framing headers are ours); whether a Content-Type was given."""
        if reason is None:
            reason = _REASONS.get(status, "Unknown")
        elif "\r" in reason or "\n" in reason:
            reason = _clean(reason)
        lines = [f"HTTP/{request.version} {status} {reason}\r\n"]
        has_type = False
        if headers:
            try:
                names, values = "".join(headers), "".join(headers.values())
            except TypeError:  # a value that is not a string
                headers = {str(name): str(value) for name, value in headers.items()}
                names, values = "".join(headers), "".join(headers.values())
            unsafe = "\r" in names or "\n" in names or "\r" in values or "\n" in values
            for name, value in headers.items():
                kind = _header_kind(name)
                if kind == _DROPPED:
                    continue
                if kind == _CONTENT_TYPE:
                    has_type = True
                if unsafe:
                    name, value = _clean(name), _clean(value)
                lines.append(f"{name}: {value}\r\n")
        lines.append(self._server.date_line)
        if closing:
            if request.version == "1.1":
                lines.append("Connection: close\r\n")
        elif request.version == "1.0":
            lines.append("Connection: keep-alive\r\n")
        return lines, has_type

    def _write_whole(self, request: HttpRequest, response: Response, closing: bool) -> None:
        status = response.status
        lines, has_type = self._head(request, status, response.reason, response.headers, closing)
        body = response.body
        if status in _NO_BODY_STATUSES or status < 200:
            body = b""
        else:
            if not has_type:  # every answer says what it is, an empty one too (TorchServe's bare 413)
                lines.append("Content-Type: application/octet-stream\r\n")
            lines.append(f"Content-Length: {len(body)}\r\n")
            if request.method == "HEAD":
                body = b""
        lines.append("\r\n")
        head = "".join(lines).encode()
        transport = self.transport
        if transport is None or self.closed:
            raise ClientGone("the client went away")
        if len(body) < LARGE_BODY:
            transport.write(head + body if body else head)
        else:
            transport.write(head)
            transport.write(body)

    async def _stream(self, request: HttpRequest, response: StreamingResponse, closing: bool) -> bool:
        """Status and headers now, then one HTTP chunk per piece; waits while the client is not reading (the
        server's write deadline cuts a client that stays stuck). False when the stream failed and the connection
        was cut."""
        chunked = request.version == "1.1"
        lines, has_type = self._head(request, response.status, response.reason, response.headers, closing)
        if not has_type:
            lines.append("Content-Type: application/octet-stream\r\n")
        if chunked:
            lines.append("Transfer-Encoding: chunked\r\n")
        lines.append("\r\n")
        transport = self.transport
        assert transport is not None
        chunks = response.chunks
        head_only = request.method == "HEAD"
        try:
            transport.write("".join(lines).encode())
            async for chunk in chunks:
                if not chunk or head_only:
                    continue
                if self.closed:
                    raise ClientGone("the client went away")
                if not chunked:
                    transport.write(chunk)
                elif len(chunk) < LARGE_BODY:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    transport.write(b"%x\r\n" % len(chunk))
                    transport.write(chunk)
                    transport.write(b"\r\n")
                if self.write_paused:
                    await self._drained()
        except ServeError:
            # The work behind the stream failed (a worker died): cut the connection so the client sees a truncated
            # body, never a clean end.
            self.abort()
            return False
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        if chunked and not head_only:
            transport.write(b"0\r\n\r\n")
        return True

    async def _drained(self) -> None:
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
