"""A JSON request body parsed as :func:`json.loads` parses it, with less work for the usual body: by the frontend
for the protocols whose bodies it reads (MindSpore, Angel), and by the worker for a TorchServe handler's JSON input
(:func:`fast_loads`, then the standard library as TorchServe's worker calls it).

orjson (a dependency of ours, and KServe's own JSON codec) reads the body first: it parses a small body in a
fraction of the standard library's time. Its values are the standard library's except for two things it does
differently, so the fast path leaves them to :func:`json.loads`: orjson refuses what the standard library accepts
beyond strict JSON (``NaN``, ``1e400``, lone surrogates, a byte-order mark, UTF-16 and UTF-32, deep nesting), so any
orjson error hands the body over; and it reads an integer beyond 64 bits as a float, so a body holding a run of 19
digits or more (the shortest integer outside int64) is not given to it at all.

Without orjson (an installation that left it out): ``json.loads(bytes)`` first sniffs the encoding, then strips
whitespace around the document with two regular expression matches and goes through two wrappers before the C
scanner runs. A body that starts with ``{`` and a byte that is not NUL is UTF-8 to ``json.loads`` too; when it also
ends with ``}`` the scanner is called directly. A body the fast paths do not finish cleanly (whitespace after the
document, an error of any kind) goes through ``json.loads``, so its value or its exception is exactly that
function's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.scanner import make_scanner
from typing import Any, Final

_orjson_loads: Callable[[bytes | bytearray], Any] | None
try:
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - orjson is optional
    _orjson_loads = None

_scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed's stub names the class, not the decoder
_ZEROS: Final = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
"""A translation table: every digit becomes ``0`` and every other byte a space, so runs of digits stay runs."""
_RUN: Final = b"0" * 19
"""The shortest integer outside int64 (``-9223372036854775809``, ``9223372036854775808``) has 19 digits."""


NOT_FAST: Final = object()
"""What :func:`fast_loads` gives back for a body the standard library must parse."""


def fast_loads(body: bytes | bytearray) -> Any:
    """The body's value by orjson, or :data:`NOT_FAST` when orjson is missing or might differ (see above).

    Where orjson gives a value, it is also that of ``json.loads(body.decode("utf-8"))``: orjson takes only UTF-8
    without a byte-order mark, which both ways read alike."""
    if _orjson_loads is not None and body.translate(_ZEROS).find(_RUN) < 0:  # find: ``in`` tries an int first
        try:
            return _orjson_loads(body)
        except Exception:  # orjson.JSONDecodeError: the standard library decides
            pass
    return NOT_FAST


def loads(body: bytes) -> Any:
    """``json.loads(body)``."""
    if _orjson_loads is not None:
        value = fast_loads(body)
        if value is not NOT_FAST:
            return value
    elif body[:1] == b"{" and body[1:2] != b"\x00" and body[-1:] == b"}":
        try:
            text = body.decode("utf-8", "surrogatepass")
            value, end = _scan(text, 0)
        except Exception:
            return json.loads(body)
        if end == len(text):
            return value
    return json.loads(body)
