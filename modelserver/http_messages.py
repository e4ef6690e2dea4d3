"""The HTTP request and response that dialects see: a small interface of our own, not aiohttp's objects.

A dialect reads a :class:`Request` (method, path, query, headers, a bounded body) and returns a
:class:`Response` (a whole body) or a :class:`StreamingResponse` (an async iterator of chunks, one
HTTP chunk each). The HTTP layer below (our own, on httptools:
:mod:`modelserver.http_connection`) builds the request and writes the response, so it can change
without touching any dialect. Both response classes are plain slotted objects: one is made per
request on the hot path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Protocol


class Query(Protocol):
    """The query string's parameters; a name may repeat."""

    def get(self, key: str, default: str | None = None) -> str | None: ...

    def getall(self, key: str, default: Iterable[str] = ...) -> list[str]: ...

    def __contains__(self, key: object) -> bool: ...

    def keys(self) -> Iterable[str]: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


class Request(Protocol):
    """What a dialect may know of an HTTP request."""

    method: str
    raw_path: str
    """The request target as sent: the path, still percent-encoded, and the query string."""
    raw_headers: list[bytes]
    """The headers as sent, names and values undecoded, flat: name, value, name, value... (a job carries them so to
    its worker, which decodes them only if its handler reads them: ``workers.protocol.header_items``)."""

    @property
    def path(self) -> str:
        """The decoded path, without the query string."""
        ...

    @property
    def query(self) -> Query: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Header values by case-insensitive name (the first value of a repeated header)."""
        ...

    def header_items(self) -> list[tuple[str, str]]:
        """Every header as sent, names in the client's case, decoded as ISO-8859-1."""
        ...

    def header_dict(self) -> dict[str, str]:
        """:meth:`header_items` as a dict (a repeated name: the last value wins): what a handler is shown."""
        ...

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case; ``""`` when the request has no ``Content-Type``."""
        ...

    @property
    def content_length(self) -> int | None: ...

    @property
    def max_body_size(self) -> int:
        """The listener's ``max_request_size``: :meth:`read_body` refuses larger bodies with 413."""
        ...

    async def read_body(self) -> bytes:
        """The whole body, or :class:`~modelserver.errors.RequestTooLarge` as soon as it is known to be too large."""
        ...

    def body_ready(self) -> bytes | None:
        """The whole body when all of it is here within ``max_body_size`` (the usual small request: no wait),
        else None: then :meth:`read_body` waits for it or refuses it."""
        ...


class HeaderBlock:
    """Response headers already written out as ``Name: value\r\n`` lines, by code that knows them to be clean: no CR
    or LF, none of the framing headers the HTTP layer writes itself. The hot path's answers carry the same few
    headers every time; checking and formatting them one by one per request cost more than the rest of the head."""

    __slots__ = ("has_type", "text")

    def __init__(self, text: str, has_type: bool) -> None:
        self.text = text
        self.has_type = has_type
        """Whether the lines include a ``Content-Type``."""


class Response:
    """A whole answer. ``close`` asks the HTTP layer to close the connection after it (TorchServe closes on errors)."""

    __slots__ = ("body", "close", "headers", "reason", "status")

    def __init__(
        self,
        status: int = 200,
        headers: Mapping[str, str] | HeaderBlock | None = None,
        body: bytes | bytearray | memoryview = b"",
        reason: str | None = None,
        close: bool = False,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.reason = reason
        self.close = close


class StreamingResponse:
    """An answer sent as HTTP/1.1 chunks, one per item of ``chunks``, each written and flushed as it comes.

    Status and headers leave with the first chunk. If ``chunks`` raises a
    :class:`~modelserver.errors.ServeError` mid-way (a worker died), the HTTP layer cuts the connection so the
    client sees a truncated body, never a clean end. When the client goes away, the HTTP layer closes ``chunks``
    (``aclose``), so a dialect's generator can cancel the work behind it in a ``finally``.
    """

    __slots__ = ("chunks", "headers", "reason", "status")

    def __init__(
        self,
        chunks: AsyncIterator[bytes | bytearray],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.headers = headers
        self.reason = reason


AnyResponse = Response | StreamingResponse


async def ready(response: AnyResponse) -> AnyResponse:
    """An answer made at once, as the awaitable a handler that hands back its coroutine returns."""
    return response
