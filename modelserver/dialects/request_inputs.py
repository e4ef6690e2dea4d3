"""HTTP request bodies -> handler inputs, as TorchServe hands them to a handler.

- ``multipart/form-data``: one input per part (a repeated name: the last one wins); file parts
  keep their own content type, plain fields have content type "".
- ``application/x-www-form-urlencoded``: one input per field, content type "".
- anything else: the whole body as the input ``body``, with the request's mime type (parameters
  stripped). The bytes are passed through untouched: the frontend never decodes a body.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web

from ..errors import BadRequest, RequestTooLarge
from ..types import Input

FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


async def read_body(request: web.BaseRequest) -> bytes:
    """The whole body, refused with 413 before reading when ``Content-Length`` is already too large, and as soon as
    a chunked body grows past the limit.

    Not ``request.read()``, which gathers into a ``bytearray`` and copies that into ``bytes``: a body that arrived
    in one piece is passed on as the very object the parser made, a longer one costs one join."""
    limit = request.client_max_size
    length = request.content_length
    if length is not None and length > limit:
        raise RequestTooLarge()
    content = request.content
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


async def read_inputs(request: web.BaseRequest) -> list[Input]:
    mime = request.content_type if "Content-Type" in request.headers else ""
    if mime == MULTIPART:
        return await _multipart_inputs(request)
    body = await read_body(request)
    if mime == FORM_URLENCODED:
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return [(name, "", value.encode("utf-8")) for name, value in fields.items()]
    return [("body", mime, body)]


async def _multipart_inputs(request: web.BaseRequest) -> list[Input]:
    length = request.content_length
    if length is not None and length > request.client_max_size:
        raise RequestTooLarge()
    fields: dict[str, Input] = {}
    total = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            value = bytes(await part.read(decode=False))
            total += len(value)
            if total > request.client_max_size:
                raise RequestTooLarge()
            content_type = part.headers.get("Content-Type", "") if part.filename is not None else ""
            fields[part.name] = (part.name, content_type, value)
    except (ValueError, AssertionError) as err:
        raise BadRequest(f"Invalid multipart body: {err}") from err
    return list(fields.values())
