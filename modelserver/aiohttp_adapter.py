"""aiohttp's low-level server under our request and response interface (:mod:`modelserver.http_messages`).

:class:`AiohttpRequest` shows an aiohttp request to dialects as a :class:`~modelserver.http_messages.Request`;
:func:`send` turns a dialect's :class:`~modelserver.http_messages.Response` or
:class:`~modelserver.http_messages.StreamingResponse` into aiohttp's response objects. Nothing above this
module (router, dialects, core) imports aiohttp's web objects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web, web_protocol, web_request
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader

from . import logs
from .errors import RequestTooLarge, ServeError
from .http_messages import AnyResponse, Query, Response, StreamingResponse

if TYPE_CHECKING:
    from .listener import Listener

_CONTENT_TYPE = hdrs.CONTENT_TYPE
_OCTET_STREAM = "application/octet-stream"


class AiohttpRequest:
    """One aiohttp request, as dialects see it."""

    __slots__ = ("_raw", "max_body_size", "method", "raw_path")

    def __init__(self, raw: web.BaseRequest, max_body_size: int) -> None:
        self._raw = raw
        self.method = raw.method
        self.raw_path = raw.raw_path
        self.max_body_size = max_body_size

    @property
    def path(self) -> str:
        return self._raw.path

    @property
    def query(self) -> Query:
        return self._raw.query  # type: ignore[return-value]  # a MultiDictProxy: get, getall, items

    @property
    def headers(self) -> Mapping[str, str]:
        return self._raw.headers

    def header_items(self) -> list[tuple[str, str]]:
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self._raw.raw_headers]

    def header_dict(self) -> dict[str, str]:
        return {name.decode("latin-1"): value.decode("latin-1") for name, value in self._raw.raw_headers}

    @property
    def content_type(self) -> str:
        raw = self._raw
        return raw.content_type if "Content-Type" in raw.headers else ""

    @property
    def content_length(self) -> int | None:
        return self._raw.content_length

    async def read_body(self) -> bytes:
        """The whole body, refused with 413 before reading when ``Content-Length`` is already too large, and as soon
        as a chunked body grows past the limit.

        Not aiohttp's ``request.read()``, which gathers into a ``bytearray`` and copies that into ``bytes``: a body
        that arrived in one piece is passed on as the very object the parser made, a longer one costs one join."""
        limit = self.max_body_size
        raw = self._raw
        length = raw.content_length
        if length is not None and length > limit:
            raise RequestTooLarge()
        content = raw.content
        first = await content.readany()
        if not first:
            return b""
        if len(first) > limit:
            raise RequestTooLarge()
        chunk = await content.readany()
        if not chunk:
            return first
        chunks, size = [first, chunk], len(first) + len(chunk)
        while size <= limit and (chunk := await content.readany()):
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise RequestTooLarge()
        return b"".join(chunks)


def make_server(listener: Listener, **kwargs: Any) -> web.Server:
    """aiohttp's low-level server for ``listener``; the access log (:mod:`modelserver.logs`) is on when configured,
    unless ``access_log`` is given."""
    if "access_log" not in kwargs:
        kwargs.update(logs.access_log_arguments())
    max_size = listener.max_request_size
    loop = asyncio.get_running_loop()
    dispatch = listener.dispatch
    observers = listener.observers

    def request_factory(
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: web_protocol.RequestHandler,  # type: ignore[type-arg]
        writer: Any,
        task: Any,
    ) -> web.BaseRequest:
        return web_request.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=max_size)

    async def handle(raw: web.BaseRequest) -> web.StreamResponse:
        response = await dispatch(AiohttpRequest(raw, max_size))
        for observer in observers:
            observer(response.status)
        if type(response) is Response:
            return whole(response)
        return await stream(raw, response)  # type: ignore[arg-type]

    return web.Server(handle, request_factory=request_factory, **kwargs)  # type: ignore[arg-type]


def whole(response: Response) -> web.Response:
    """aiohttp's response for a whole answer. Every answer carries a ``Content-Type``: aiohttp adds
    ``application/octet-stream`` to a non-empty body that has none, and so do we to an empty one (TorchServe's bare
    413, a handler's empty answer)."""
    answer = web.Response(status=response.status, reason=response.reason, body=response.body, headers=response.headers)
    if not response.body and _CONTENT_TYPE not in answer.headers:
        answer.headers[_CONTENT_TYPE] = _OCTET_STREAM
    if response.close:
        answer.force_close()
    return answer


async def send(raw: web.BaseRequest, response: AnyResponse) -> web.StreamResponse:
    """aiohttp's response for ``response``; a streamed one is written here, chunk by chunk."""
    if type(response) is Response:
        return whole(response)
    assert isinstance(response, StreamingResponse)
    return await stream(raw, response)


async def stream(raw: web.BaseRequest, response: StreamingResponse) -> web.StreamResponse:
    """Write a streamed answer: headers with the first chunk, then one HTTP chunk per item, each flushed."""
    answer = web.StreamResponse(status=response.status, reason=response.reason, headers=response.headers)
    answer.enable_chunked_encoding()
    chunks = response.chunks
    try:
        await answer.prepare(raw)
        async for chunk in chunks:
            if chunk:
                await answer.write(chunk)
    except ServeError:
        # The work behind the stream failed (a worker died): cut the connection so the client sees a truncated
        # chunked body, never a clean end (aiohttp's own write_eof then fails quietly on the closed transport).
        if raw.transport is not None:
            raw.transport.abort()
        return answer
    finally:
        await _close(chunks)
    with contextlib.suppress(ConnectionError):
        await answer.write_eof()
    return answer


async def _close(chunks: Any) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()
