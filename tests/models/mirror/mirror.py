"""Answers every request with its input as bytes, always labelled ``application/octet-stream``: a model whose answers
are well-formed whatever it is sent, for the OpenAPI conformance test (``echo`` labels its answer with the request's
content type, so an echoed JSON ``""`` comes back as an empty "JSON" body)."""

import json


def _as_bytes(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


def handle(data, context):
    if data is None:
        return None
    replies = []
    for idx, row in enumerate(data):
        value = row.get("data", row.get("body", b""))
        context.set_response_content_type(idx, "application/octet-stream")
        replies.append(_as_bytes(value))
    return replies
