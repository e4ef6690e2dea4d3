"""HTTP request bodies -> handler inputs, as TorchServe hands them to a handler.

- ``multipart/form-data``: one input per named part (a repeated name: the last one wins); file parts
  keep their own content type, plain fields have content type "". A malformed body, or a part without a
  ``Content-Disposition`` name (no headers at all, say), is a 400 ``BadRequestException``: such a part cannot become
  an input, and dropping it would hand the handler a request without the data the client sent.
- ``application/x-www-form-urlencoded``: one input per field, content type "", the value's bytes as sent.
- anything else: the whole body as the input ``body``, with the request's mime type (parameters
  stripped). The bytes are passed through untouched: the frontend never decodes a body.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from ..errors import BadRequest, RequestTooLarge
from ..http_messages import Request
from ..http_request import HttpRequest
from ..multipart import MultipartError, boundary_of, parse_multipart
from ..types import Input

FORM_URLENCODED: Final = "application/x-www-form-urlencoded"
MULTIPART: Final = "multipart/form-data"


def query_inputs(request: Request) -> list[Input]:
    """The query parameters as inputs (content type ""), for the routes that pass them on (``/invocations``, the
    legacy ``/{m}/predict``); a body field of the same name comes later and wins."""
    return [(name, "", value.encode("utf-8")) for name, value in request.query.items()]


def ready_inputs(request: Request) -> list[Input] | None:
    """:func:`read_inputs` without a wait, for a plain body that is all here already (the usual small request);
    None otherwise (multipart, a form, a body still arriving or too large, a request not of this server's HTTP
    layer): then ``await read_inputs``."""
    if not isinstance(request, HttpRequest):  # narrowed: compiled, the request's fields are then read as fields
        return None
    mime = request.content_type
    if mime in (MULTIPART, FORM_URLENCODED):
        return None
    body = request.body_ready()
    return None if body is None else [("body", mime, body)]


async def read_inputs(request: Request) -> list[Input]:
    mime = request.content_type
    if mime == MULTIPART:
        return await _multipart_inputs(request)
    body = await request.read_body()
    if mime == FORM_URLENCODED:
        return form_inputs(body)
    return [("body", mime, body)]


def form_inputs(body: bytes) -> list[Input]:
    """One input per field; a value is the bytes its percent-escapes name, as TorchServe reads them (ISO-8859-1).

    Decoding through Latin-1 maps each byte to one character and back, so any bytes (UTF-8 text included) reach
    the handler exactly as sent. A field name is shown as UTF-8 when it is valid UTF-8.
    """
    fields = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1"))
    return [(_field_name(name), "", value.encode("latin-1")) for name, value in fields.items()]


def _field_name(name: str) -> str:
    try:
        return name.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return name


async def _multipart_inputs(request: Request) -> list[Input]:
    length = request.content_length
    if length is not None and length > request.max_body_size:
        raise RequestTooLarge()
    body = await request.read_body()
    try:
        parts = parse_multipart(body, boundary_of(request.headers.get("Content-Type", "")))
    except MultipartError as err:
        refused = BadRequest(f"Invalid multipart body: {err}")
        refused.__cause__ = err  # mypyc compiles `raise ... from` without the cause
        raise refused from err
    fields: dict[str, Input] = {}
    for index, part in enumerate(parts):
        if part.name is None:
            raise BadRequest(f"Invalid multipart body: part {index} has no Content-Disposition header with a name")
        content_type = part.content_type if part.filename is not None else ""
        fields[part.name] = (part.name, content_type, bytes(part.data))
    return list(fields.values())
