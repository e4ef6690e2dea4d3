"""TorchServe's HTTP conventions, shared by its inference, management and metrics APIs.

Every response carries ``x-request-id`` and the no-cache headers; JSON is pretty-printed with a
2-space indent and a trailing newline (Gson's output); every error is
``{"code", "type", "message"}`` and closes the connection, as TorchServe's Netty handler does.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Final

from mypy_extensions import mypyc_attr

from ..api_docs import Reply
from ..errors import RequestTooLarge, ServeError
from ..http_messages import HeaderBlock, Request, Response
from ..router import Route

NO_CACHE_HEADERS: Final = {
    "Pragma": "no-cache",
    "Cache-Control": "no-cache; no-store, must-revalidate, private",
    "Expires": "Thu, 01 Jan 1970 00:00:00 UTC",
}


CORS_KEYS: Final = {
    "cors_allowed_origin": "Access-Control-Allow-Origin",
    "cors_allowed_methods": "Access-Control-Allow-Methods",
    "cors_allowed_headers": "Access-Control-Allow-Headers",
}

_COMMON_HEADERS: Final = dict(NO_CACHE_HEADERS)
"""Sent on every response: the no-cache headers, plus the CORS headers once :func:`configure_cors` has run."""


def configure_cors(properties: Mapping[str, str]) -> None:
    """Set once at start from ``cors_allowed_origin/_methods/_headers``: TorchServe sends each non-empty one on every
    response (a handler's own header wins) and has no preflight logic."""
    _COMMON_HEADERS.clear()
    _COMMON_HEADERS.update(NO_CACHE_HEADERS)
    _COMMON_HEADERS.update({header: properties[key] for key, header in CORS_KEYS.items() if properties.get(key)})
    global _COMMON_LINES, _OUR_NAMES
    _COMMON_LINES = _lines(_COMMON_HEADERS)
    _OUR_NAMES = _names(_COMMON_HEADERS)


def _clean(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def _lines(headers: Mapping[str, str]) -> str:
    return "".join(f"{_clean(name)}: {_clean(value)}\r\n" for name, value in headers.items())


def _names(headers: Mapping[str, str]) -> frozenset[str]:
    return frozenset(name.lower() for name in (*headers, "x-request-id"))


_COMMON_LINES = _lines(_COMMON_HEADERS)
""":data:`_COMMON_HEADERS` as header lines, for :func:`header_block`."""
_OUR_NAMES = _names(_COMMON_HEADERS)
"""The names of the headers every answer carries, lower-case: a handler header of one of them replaces ours."""
_FRAMING: Final = frozenset({"content-length", "transfer-encoding", "connection", "date"})
"""Headers the HTTP layer writes itself: a handler's are left out of :func:`header_block_with`'s block."""


def header_block(request_id: str, content_type: str = "") -> HeaderBlock:
    """What :func:`response_headers` holds (plus ``Content-Type`` when given), written out once: an inference
    answer's headers when the handler set none of its own."""
    if content_type:
        if type(content_type) is not str:
            content_type = str(content_type)
        if "\r" in content_type or "\n" in content_type:
            content_type = _clean(content_type)
        return HeaderBlock(f"x-request-id: {request_id}\r\n{_COMMON_LINES}Content-Type: {content_type}\r\n", True)
    return HeaderBlock(f"x-request-id: {request_id}\r\n{_COMMON_LINES}", False)


def header_block_with(request_id: str, handler_headers: Mapping[str, Any], content_type: str) -> HeaderBlock | None:
    """:func:`header_block` for an answer whose handler set headers of its own: ours, then the handler's in order
    (framing headers left out, CR and LF made spaces, ``content_type`` replacing the first Content-Type or added at
    the end): what the header map of ``_headers`` in :mod:`.torchserve_inference` writes. None when a handler header
    replaces one of ours or is not text: then that map is needed."""
    if content_type and len(handler_headers) == 1 and type(handler_headers.get("content-type")) is str:
        return header_block(request_id, content_type)  # only the content type, as the runtime sets it: no loop
    lines = [f"x-request-id: {request_id}\r\n", _COMMON_LINES]
    has_type = False
    placed = not content_type  # whether content_type is written already
    for name, value in handler_headers.items():
        if type(name) is not str or type(value) is not str:
            return None
        lower = name.lower()
        if lower in _OUR_NAMES:
            return None
        if lower == "content-type":
            if not placed:
                name, value, placed = "Content-Type", content_type, True
            elif content_type:
                continue  # setting the content type leaves one Content-Type
            has_type = True
        elif lower in _FRAMING:
            continue
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            name, value = _clean(name), _clean(value)
        lines.append(f"{name}: {value}\r\n")
    if not placed:
        lines.append(f"Content-Type: {_clean(str(content_type))}\r\n")
        has_type = True
    return HeaderBlock("".join(lines), has_type)


def _id_prefix() -> str:
    """The first four groups of this process's request ids: 80 random bits with UUID version 4 and RFC 4122's
    variant, so every id is a well-formed version-4 UUID."""
    digits = f"{random.SystemRandom().getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-"


_UUID4_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))  # the version nibble and the variant bits
_UUID4_SET: Final = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant
_ID_MASK: Final = (1 << 48) - 1


def _id_state_now() -> list[Any]:
    """This process's id prefix, its counter, and an odd multiplier that scrambles the counter (a bijection of 48
    bits: ids stay distinct, and their last group does not show how many requests were served between two)."""
    rng = random.SystemRandom()
    return [_id_prefix(), itertools.count(rng.getrandbits(48)), rng.getrandbits(48) | 1]


_id_state = _id_state_now()


def _new_process_ids() -> None:
    _id_state[:] = _id_state_now()


os.register_at_fork(after_in_child=_new_process_ids)


def new_request_id() -> str:
    """A version-4 UUID, as TorchServe's ``x-request-id``: a random prefix per process and, in the last group, a
    counter (48 bits, from a random start, scrambled by :func:`_id_state_now`'s multiplier).

    A request id needs to be unique, not secret: ``uuid.uuid4()`` costs a ``getrandom`` system call per request,
    and 128 fresh random bits formatted into groups cost 0.9 us; this costs a counter step and one format. Ids stay
    distinct across processes and restarts by the 80 random bits of the prefix.
    """
    prefix, counter, multiplier = _id_state
    return prefix + (next(counter) * multiplier & _ID_MASK).to_bytes(6, "big").hex()  # no format spec to parse


def response_headers(request_id: str) -> dict[str, str]:
    headers = {"x-request-id": request_id}
    headers.update(_COMMON_HEADERS)
    return headers


def json_body(value: Any) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode()


def json_response(value: Any, status: int = 200, request_id: str | None = None, close: bool = False) -> Response:
    headers = response_headers(request_id or new_request_id())
    headers["Content-Type"] = "application/json"
    return Response(status, headers, json_body(value), close=close)


def error_response(error: ServeError, request: Request | None = None) -> Response:
    """TorchServe's error shape; 413 is a bare status with an empty body, as TorchServe sends it. Errors close the
    connection, as TorchServe's Netty handler does."""
    request_id = new_request_id()
    if isinstance(error, RequestTooLarge):
        return Response(413, response_headers(request_id), close=True)
    body = {"code": error.status, "type": error.type_name, "message": error.message}
    return json_response(body, error.status, request_id, close=True)


OPTIONS: Final = frozenset({"OPTIONS"})
GET: Final = frozenset({"GET"})


@mypyc_attr(allow_interpreted_subclasses=True)
class TorchServeDialect:
    """What TorchServe's inference, management and metrics APIs share: the error shape and the
    API description (``OPTIONS /`` and ``GET /api-description``, served without a token)."""

    tag: ClassVar[str] = ""

    def __init__(self, api_description: Callable[[], dict[str, Any]]) -> None:
        self._api_description = api_description

    def description_routes(self) -> Iterator[Route]:
        for methods, path, operation in (
            (OPTIONS, "/", "apiDescription"),
            (GET, "/api-description", "api-description"),
        ):
            yield Route(
                methods,
                path,
                self.api_description,
                summary="Get openapi description.",
                operation_id=operation,
                tags=(self.tag,),
                responses={200: Reply("A openapi 3.0.1 descriptor", "ApiDescription"), 500: "Internal Server Error"},
                deprecated=methods is GET,
            )

    def error_response(self, error: ServeError, request: Request) -> Response:
        return error_response(error, request)

    async def api_description(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(self._api_description())
