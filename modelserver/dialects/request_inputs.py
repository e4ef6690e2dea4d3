"""HTTP request bodies -> handler inputs, as TorchServe hands them to a handler.

- ``multipart/form-data``: one input per named part (a repeated name: the last one wins); file parts
  keep their own content type, plain fields have content type "".
- ``application/x-www-form-urlencoded``: one input per field, content type "".
- anything else: the whole body as the input ``body``, with the request's mime type (parameters
  stripped). The bytes are passed through untouched: the frontend never decodes a body.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from ..errors import BadRequest, RequestTooLarge
from ..http_messages import Request
from ..multipart import MultipartError, boundary_of, parse_multipart
from ..types import Input

FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


async def read_inputs(request: Request) -> list[Input]:
    mime = request.content_type
    if mime == MULTIPART:
        return await _multipart_inputs(request)
    body = await request.read_body()
    if mime == FORM_URLENCODED:
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return [(name, "", value.encode("utf-8")) for name, value in fields.items()]
    return [("body", mime, body)]


async def _multipart_inputs(request: Request) -> list[Input]:
    length = request.content_length
    if length is not None and length > request.max_body_size:
        raise RequestTooLarge()
    body = await request.read_body()
    try:
        parts = parse_multipart(body, boundary_of(request.headers.get("Content-Type", "")))
    except MultipartError as err:
        raise BadRequest(f"Invalid multipart body: {err}") from err
    fields: dict[str, Input] = {}
    for part in parts:
        if part.name is None:
            continue
        content_type = part.content_type if part.filename is not None else ""
        fields[part.name] = (part.name, content_type, bytes(part.data))
    return list(fields.values())
