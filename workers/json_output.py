"""``json.dumps(value, indent=2)``, byte for byte, without the standard library's slow path.

TorchServe sends every handler output that is not bytes, str or a tensor as
``json.dumps(value, indent=2)``. With ``indent`` set, CPython 3.11 gives up its C encoder and walks
the value with Python generators: about 20 µs for a small prediction, often more than the handler.

:func:`dumps_indent2_bytes` first asks orjson (a dependency for this: 0.2 µs for a small prediction, 1.2 µs with the
checks below, against 2.8 µs for the writer below, compiled) and keeps its text when that text cannot differ from the
standard library's: ASCII only and no DEL (``json.dumps`` escapes both as ``\\uXXXX``), no ``null`` (orjson writes NaN
and the infinities so), no ``e-`` and no ``0.0000`` (orjson spells floats under 1e-4 as ``0.00001`` and ``2.5e-7`` where
``repr`` gives ``1e-05`` and ``2.5e-07``). A string that merely holds one of those takes the exact path too. orjson is
told to refuse subclasses, dataclasses and datetimes, and ``default`` refuses everything it does not know (numpy values
among them): those take the exact path as well.

:func:`dumps_indent2` is that exact path: the same text with one recursive function over the plain JSON types,
using the C string escaper for strings. Anything else (a subclass, a numpy scalar, a circular
reference, a non-string key it does not know) falls back to ``json.dumps`` itself, so the output,
and every error, is exactly the standard library's.

Known difference (docs/compatibility.md): orjson writes a ``uuid.UUID`` as its string, any ``Enum`` member as its
``.value`` and an ``orjson.Fragment`` as its JSON; ``json.dumps`` refuses the first, a plain ``Enum`` member and the
last (TorchServe then answers 503 "Unsupported model output data type."), and writes a ``str`` or ``int`` enum's
member as its content, which differs from ``.value`` only for an enum whose ``__new__`` sets another value.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any, Final

import orjson

_ORJSON_OPTIONS: Final = (
    orjson.OPT_INDENT_2
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
_ORJSON_DIFFERS: Final[tuple[bytes, ...]] = (b"null", b"e-", b"0.0000", b"\x7f")
"""What orjson's indented text may hold where ``json.dumps(indent=2)`` writes something else (module docstring)."""


def _refuse(_value: Any) -> Any:
    """orjson's ``default``: whatever it cannot write itself is the exact path's business."""
    raise TypeError


def dumps_indent2_bytes(value: Any) -> bytes:
    """``json.dumps(value, indent=2)`` as UTF-8 bytes (errors included): orjson's text where it is the same."""
    try:
        text = orjson.dumps(value, default=_refuse, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a non-str key, an int past 64 bits, a refused type, deep nesting
        text = b""
    if text and _same_as_json_dumps(text):
        return text
    return dumps_indent2(value).encode("utf-8")


def _same_as_json_dumps(text: bytes) -> bool:
    """Whether orjson's ``text`` cannot differ from ``json.dumps``' (module docstring)."""
    return text.isascii() and all(differs not in text for differs in _ORJSON_DIFFERS)


_INFINITY: Final = float("inf")


class _Fallback(Exception):
    """The value holds something only ``json.dumps`` knows how to treat exactly."""


_MAX_NESTING: Final = 64
"""Containers nested deeper go to ``json.dumps``, which bounds its own recursion: compiled (mypyc), this writer's
recursion is the C stack's, and a circular value would overflow it before the interpreter's limit is reached."""
_MAX_NEWLINE: Final = 1 + 2 * _MAX_NESTING


def dumps_indent2(value: Any) -> str:
    try:
        return _encode(value, "\n")
    except (_Fallback, RecursionError):
        return json.dumps(value, indent=2)


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)


def _key(key: Any) -> str:
    kind = type(key)
    if kind is str:
        return encode_basestring_ascii(key)
    if kind is int:
        return '"' + int.__repr__(key) + '"'
    if kind is float:
        return '"' + _float(key) + '"'
    if key is True:
        return '"true"'
    if key is False:
        return '"false"'
    if key is None:
        return '"null"'
    raise _Fallback


_SCALAR_WRITERS: Final = {int: int.__repr__, float: float.__repr__, str: encode_basestring_ascii}
"""The writers of a flat list's items, all of one type (a float list is checked for NaN and infinities after)."""


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _null(_value: None) -> str:
    return "null"


_SCALARS: Final[dict[type, Any]] = {str: encode_basestring_ascii, int: int.__repr__, float: _float, bool: _bool}
_SCALARS[type(None)] = _null
"""Every scalar's writer by its exact type: one lookup instead of a test per kind (a subclass is not here, and goes
to ``json.dumps``)."""


def _encode(value: Any, newline: str) -> str:
    kind = type(value)
    scalars = _SCALARS
    writer = scalars.get(kind)
    if writer is not None:
        return writer(value)
    if len(newline) > _MAX_NEWLINE:  # the newline carries the indentation: its length is the depth
        raise _Fallback
    inner = newline + "  "
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        separator = "," + inner
        first = type(value[0])
        if first in _SCALAR_WRITERS and all(type(item) is first for item in value):
            # a flat list of one scalar type, the common shape of a prediction
            text = separator.join(map(_SCALAR_WRITERS[first], value))
            if first is float and "n" in text:  # nan or inf: finite floats never spell an "n"
                text = separator.join(map(_float, value))
        else:
            text = separator.join([_encode(item, inner) for item in value])
        return "[" + inner + text + newline + "]"
    if kind is dict:
        if not value:
            return "{}"
        parts = []
        for key, item in value.items():
            writer = scalars.get(type(item))
            parts.append(
                (encode_basestring_ascii(key) if type(key) is str else _key(key))
                + ": "
                + (writer(item) if writer is not None else _encode(item, inner))
            )
        return "{" + inner + ("," + inner).join(parts) + newline + "}"
    raise _Fallback
