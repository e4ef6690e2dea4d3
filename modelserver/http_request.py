"""One parsed HTTP request as dialects see it (:class:`~modelserver.http_messages.Request`), made by
:mod:`modelserver.http_connection` from httptools' callbacks.

Only what every request needs is done eagerly: the method, the raw target and the raw header list. The decoded
path, the query string's parameters and the case-insensitive header map are built on first use, because the
inference hot path reads none of them but one header. The body is gathered as the parser delivers it, bounded by
``max_request_size``; :meth:`HttpRequest.read_body` waits for its end (sending ``100 Continue`` first when the client
asked for it) and refuses an oversized body with 413.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from multidict import CIMultiDict, CIMultiDictProxy

from workers.protocol import header_items as decoded_headers

from .errors import RequestTooLarge
from .http_messages import Query

if TYPE_CHECKING:
    from yarl import URL

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpRequest:
    """A request on one connection; ``complete`` once its whole body is here."""

    __slots__ = (
        "_chunks",
        "_headers",
        "_url",
        "_waiter",
        "body_size",
        "complete",
        "continue_sent",
        "expect_continue",
        "failure",
        "keep_alive",
        "max_body_size",
        "method",
        "raw_content_type",
        "raw_headers",
        "raw_path",
        "send_continue",
        "started",
        "too_large",
        "version",
    )

    def __init__(
        self,
        method: str,
        raw_path: str,
        version: str,
        raw_headers: list[bytes],
        max_body_size: int,
        send_continue: Callable[[], None],
        raw_content_type: bytes | None = None,
        expect_continue: bool = False,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.version = version
        self.raw_headers = raw_headers
        self.raw_content_type = raw_content_type
        """The first ``Content-Type`` value as sent, which the connection noted while the parser read the head."""
        self.max_body_size = max_body_size
        self.send_continue = send_continue
        self.keep_alive = True
        self.expect_continue = expect_continue
        self.continue_sent = False
        self.complete = False
        self.too_large = False
        self.failure: BaseException | None = None
        self.body_size = 0
        self.started = 0.0
        self._chunks: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._headers: CIMultiDictProxy[str] | None = None
        self._url: URL | None = None

    # -- what the parser feeds ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """A piece of the body; past ``max_body_size`` the request is marked too large and the rest dropped."""
        if self.too_large:
            return
        size = self.body_size + len(data)
        if size > self.max_body_size:
            self.too_large = True
            self._chunks = []
            self._wake()
            return
        self.body_size = size
        self._chunks.append(data)

    def finish(self) -> None:
        self.complete = True
        self._wake()

    def abort(self, error: BaseException) -> None:
        """The body will never complete (the connection closed, or the client went silent)."""
        if not self.complete:
            self.failure = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the Request interface ------------------------------------------------------------------------

    @property
    def url(self) -> URL:
        url = self._url
        if url is None:
            from yarl import URL  # on first use: the inference routes never parse the URL this way

            raw = self.raw_path
            if raw.startswith("/"):  # origin form; "//x" is a path here, not a host
                path, _, query = raw.partition("#")[0].partition("?")
                url = URL.build(path=path, query_string=query, encoded=True)
            else:  # absolute form (or "*")
                url = URL(raw)
            self._url = url
        return url

    @property
    def path(self) -> str:
        return self.url.path

    @property
    def query(self) -> Query:
        return self.url.query  # type: ignore[return-value]  # a MultiDictProxy: get, getall, items

    @property
    def headers(self) -> Mapping[str, str]:
        headers = self._headers
        if headers is None:
            headers = self._headers = CIMultiDictProxy(
                CIMultiDict(
                    (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
                    for name, value in self.header_pairs()
                )
            )
        return headers

    def header(self, lower_name: bytes) -> bytes | None:
        """The first value of a header by its lower-case name, without building the header map."""
        raw = self.raw_headers
        for index in range(0, len(raw), 2):
            name = raw[index]
            if len(name) == len(lower_name) and name.lower() == lower_name:
                return raw[index + 1]
        return None

    def header_pairs(self) -> list[tuple[bytes, bytes]]:
        """The headers as sent, (name, value) in order."""
        raw = self.raw_headers
        return list(zip(raw[0::2], raw[1::2], strict=False))

    def header_items(self) -> list[tuple[str, str]]:
        return list(decoded_headers(self.raw_headers))  # the worker's decoding of the same flat list

    def header_dict(self) -> dict[str, str]:
        return dict(decoded_headers(self.raw_headers))

    @property
    def content_type(self) -> str:
        value = self.raw_content_type
        if value is None:
            return ""
        return value.decode("latin-1").partition(";")[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        value = self.header(b"content-length")
        return int(value) if value is not None else None  # the parser has checked it is a number

    async def read_body(self) -> bytes:
        """The whole body; 413 as soon as it is known to be too large."""
        if self.too_large:
            raise RequestTooLarge()
        if not self.complete:
            length = self.content_length
            if length is not None and length > self.max_body_size:
                self.too_large = True
                raise RequestTooLarge()
            if self.expect_continue and not self.continue_sent:
                self.continue_sent = True
                self.send_continue()
            while not self.complete and not self.too_large:
                if self.failure is not None:
                    raise self.failure
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
            if self.too_large:
                raise RequestTooLarge()
        chunks = self._chunks
        if not chunks:
            return b""
        if len(chunks) == 1:
            return chunks[0]
        body = b"".join(chunks)
        self._chunks = [body]
        return body

    def body_ready(self) -> bytes | None:
        if not self.complete or self.too_large:
            return None
        chunks = self._chunks
        if len(chunks) == 1:
            return chunks[0]
        if not chunks:
            return b""
        body = b"".join(chunks)
        self._chunks = [body]
        return body

    def __repr__(self) -> str:
        return f"<HttpRequest {self.method} {self.raw_path}>"
