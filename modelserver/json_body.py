"""A JSON request body parsed as :func:`json.loads` parses it, with less work for the usual object body.

``json.loads(bytes)`` first sniffs the encoding, then strips whitespace around the document with two regular
expression matches and goes through two wrappers before the C scanner runs. A body that starts with ``{`` and a
byte that is not NUL is UTF-8 to ``json.loads`` too; when it also ends with ``}`` the scanner is called directly. A
body the fast path does not finish cleanly (whitespace after the document, an error of any kind) goes through
``json.loads``, so its value or its exception is exactly that function's.
"""

from __future__ import annotations

import json
from json.scanner import make_scanner
from typing import Any

_scan = make_scanner(json.JSONDecoder())


def loads(body: bytes) -> Any:
    """``json.loads(body)``."""
    if body[:1] == b"{" and body[1:2] != b"\x00" and body[-1:] == b"}":
        try:
            text = body.decode("utf-8", "surrogatepass")
            value, end = _scan(text, 0)
        except Exception:
            return json.loads(body)
        if end == len(text):
            return value
    return json.loads(body)
