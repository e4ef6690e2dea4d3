"""Writing answers: a whole one in one write, a streamed one as HTTP/1.1 chunks with backpressure, and the bare
answers the HTTP layer gives itself (400, 408, 431).

Framing is ours: a handler's ``Content-Length``, ``Transfer-Encoding``, ``Connection`` and ``Date`` are dropped, CR
and LF in its header names and values become spaces (no header injection), and an answer without a content type
says ``application/octet-stream`` (RFC 9110).
"""

from __future__ import annotations

from asyncio import Transport
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final, Protocol

from .errors import ClientGone, ServeError
from .http_messages import HeaderBlock, Response, StreamingResponse
from .http_request import HttpRequest


class StreamTarget(Protocol):
    """What a streamed answer needs of its connection (:class:`~modelserver.http_connection.HttpConnection`)."""

    transport: Transport | None
    closed: bool
    write_paused: bool

    @property
    def date_line(self) -> str: ...

    async def drained(self) -> None: ...

    def abort(self) -> None: ...


LARGE_BODY: Final = 16 * 1024
"""A response body at least this large is written on its own rather than copied behind the head."""

_REASONS: Final = {status.value: status.phrase for status in HTTPStatus}
_NO_BODY_STATUSES: Final = frozenset({204, 304})
_HEADER_KINDS: Final[dict[str, int]] = {}
_PLAIN, _CONTENT_TYPE, _DROPPED = 0, 1, 2
"""How a handler's header is written: as given, noted as the content type, or left out (we frame the body)."""
_FRAMING: Final = frozenset({"content-length", "transfer-encoding", "connection", "date"})
_KEEP_ALIVE: Final = "Connection: keep-alive\r\n"
_OCTET_STREAM: Final = "Content-Type: application/octet-stream\r\n"


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


def head_lines(
    request: HttpRequest,
    status: int,
    reason: str | None,
    headers: Mapping[str, str] | HeaderBlock | None,
    closing: bool,
    date: str,
) -> tuple[list[str], bool]:
    """The status line, the handler's headers (framing headers are ours), the date and the connection's fate; whether
    a Content-Type was given."""
    if reason is None:
        reason = _REASONS.get(status, "Unknown")
    elif "\r" in reason or "\n" in reason:
        reason = _clean(reason)
    lines = [f"HTTP/{request.version} {status} {reason}\r\n"]
    has_type = False
    if isinstance(headers, HeaderBlock):
        lines.append(headers.text)
        has_type = headers.has_type
    elif headers:
        try:
            names, values = "".join(headers), "".join(headers.values())
        except TypeError:  # a value that is not a string
            given: Mapping[Any, Any] = headers
            headers = {str(name): str(value) for name, value in given.items()}
            names, values = "".join(headers), "".join(headers.values())
        unsafe = "\r" in names or "\n" in names or "\r" in values or "\n" in values
        kinds = _HEADER_KINDS
        for name, value in headers.items():
            kind = kinds.get(name)
            if kind is None:
                kind = _header_kind(name)
            if kind == _DROPPED:
                continue
            if kind == _CONTENT_TYPE:
                has_type = True
            if unsafe:
                name, value = _clean(name), _clean(value)
            lines.append(f"{name}: {value}\r\n")
    lines.append(date)
    if closing:
        if request.version == "1.1":
            lines.append("Connection: close\r\n")
    elif request.version == "1.0":
        lines.append("Connection: keep-alive\r\n")
    return lines, has_type


def write_whole(transport: Transport, request: HttpRequest, response: Response, closing: bool, date: str) -> None:
    """A whole answer in one write (two for a large body, which is not copied behind the head)."""
    status = response.status
    headers = response.headers
    if type(headers) is HeaderBlock and status >= 200 and status not in _NO_BODY_STATUSES and not closing:
        # The hot path's answer in one format: what head_lines and the general case below would write.
        reason = response.reason
        if reason is None:
            reason = _REASONS.get(status, "Unknown")
        elif "\r" in reason or "\n" in reason:
            reason = _clean(reason)
        version = request.version
        body = response.body
        head = (
            f"HTTP/{version} {status} {reason}\r\n{headers.text}{date}"
            f"{_KEEP_ALIVE if version == '1.0' else ''}{'' if headers.has_type else _OCTET_STREAM}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        if request.method == "HEAD":
            transport.write(head)
        elif len(body) < LARGE_BODY:
            transport.write(head + body if body else head)
        else:
            transport.writelines((head, body))
        return
    lines, has_type = head_lines(request, status, response.reason, response.headers, closing, date)
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
    if len(body) < LARGE_BODY:
        transport.write(head + body if body else head)
    else:
        transport.writelines((head, body))


async def write_stream(
    connection: StreamTarget, request: HttpRequest, response: StreamingResponse, closing: bool
) -> bool:
    """Status and headers now, then one HTTP chunk per piece; waits while the client is not reading (the server's
    write deadline cuts a client that stays stuck). False when the stream failed and the connection was cut."""
    chunked = request.version == "1.1"
    lines, has_type = head_lines(
        request, response.status, response.reason, response.headers, closing, connection.date_line
    )
    if not has_type:
        lines.append("Content-Type: application/octet-stream\r\n")
    if chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    lines.append("\r\n")
    transport = connection.transport
    assert transport is not None
    chunks = response.chunks
    head_only = request.method == "HEAD"
    try:
        transport.write("".join(lines).encode())
        async for chunk in chunks:
            if not chunk or head_only:
                continue
            if connection.closed:
                raise ClientGone("the client went away")
            if not chunked:
                transport.write(chunk)
            elif len(chunk) < LARGE_BODY:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))  # type: ignore[str-format]  # %b takes any buffer
            else:
                transport.write(b"%x\r\n" % len(chunk))
                transport.write(chunk)
                transport.write(b"\r\n")
            if connection.write_paused:
                await connection.drained()
    except ServeError:
        # The work behind the stream failed (a worker died): cut the connection so the client sees a truncated body,
        # never a clean end.
        connection.abort()
        return False
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    if chunked and not head_only:
        transport.write(b"0\r\n\r\n")
    return True
