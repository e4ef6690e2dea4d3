"""A ``multipart/form-data`` parser (RFC 7578 over RFC 2046) for a complete request body held in memory.

``parse_multipart(body, boundary)`` returns one ``Part`` per body part, in order; ``Part.data`` is a zero-copy
``memoryview`` slice of ``body`` and is never decoded (no ``Content-Transfer-Encoding`` handling, as TorchServe).
Anything it cannot parse unambiguously raises ``MultipartError`` (a ``ValueError``) naming the part (0-based) and
the byte offset, meant to become a 400.

Accepted, beyond the strict grammar:

- bare LF line endings anywhere a CRLF is expected (delimiter lines, header lines, the blank line ending the
  headers). A part's data ends before the LF of ``LF--boundary`` and one CR right before it, if any: with LF-only
  framing a part whose data ends in CR loses that CR (inherent to the framing);
- transport padding (spaces/tabs) after any delimiter, and a preamble and an epilogue (both ignored);
- a close delimiter at the very end of the body, without its CRLF (or LF); an empty form (``--B--`` only) gives ``[]``;
- a part whose headers are directly followed by the next delimiter (no CRLF before it): empty data;
- a part with an empty header section (delimiter line, blank line, data), or without ``Content-Disposition``:
  ``name`` is None; the disposition type itself ("form-data", "file", ...) is not checked;
- ``Content-Disposition`` parameters: quoted strings (only ``\\"`` and ``\\\\`` are unescaped, so a Windows path
  such as ``C:\\dir\\a.png`` survives), unquoted tokens, valueless parameters (ignored), case-insensitive names, and
  RFC 5987/2231 ``name*=``/``filename*=`` (UTF-8, ISO-8859-1 or US-ASCII) which take precedence over the plain ones;
  percent-escapes in plain values are left as sent (``%22`` stays ``%22``);
- header bytes beyond ASCII are decoded as UTF-8, falling back to latin-1;
- a boundary of 1..70 printable ASCII characters not ending in a space (RFC 2046 allows fewer characters).

Refused: a body without any delimiter or without the close delimiter (truncated); a delimiter followed by anything
but padding and a line ending (``--B--`` and ``--B`` followed by a space, tab, CR or LF are delimiters, while
``--Bx`` or ``--B-x`` at the start of a line are data, like ``--foobar`` is for the boundary ``foo``); a header section
not ended by a blank line (also when the next delimiter or the data comes first); obsolete line folding; header lines
without a colon, with an invalid name (e.g. space before the colon) or with a bare CR/NUL; more than ``MAX_HEADERS``
headers or ``MAX_HEADER_BYTES`` bytes in one header section; a repeated ``Content-Disposition`` or
``Content-Type`` header or a repeated parameter (other repeated headers are joined with ", "); malformed parameters;
more than ``max_parts`` parts.

Delimiters are found with ``bytes.find``; every byte is searched once, so parsing is linear in the body size.
A ``memoryview`` that does not span a whole ``bytes``/``bytearray`` is copied once (``find`` needs bytes).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

__all__ = ["MAX_HEADERS", "MAX_HEADER_BYTES", "MultipartError", "Part", "boundary_of", "parse_multipart"]

MAX_HEADER_BYTES = 8192  # one part's header section, line endings and the blank line included
MAX_HEADERS = 100

_BOUNDARY = re.compile(r"[ -~]{0,69}[!-~]")
_HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TAIL = re.compile(rb"[ \t]*+(?:\r?(\n)|\r?\Z)")  # after a boundary: padding, then a line ending or the end
_KIND = re.compile(r"[ \t]*+([^;]*+)")
_PARAM = re.compile(
    r';[ \t]*+(?:([^\s;="]++)[ \t]*+(?:=[ \t]*+(?:"((?:[^"\\]|\\.)*+)"|([^;"]*+)))?)?[ \t]*+(?=;|\Z)', re.S
)
_UNESCAPE = re.compile(r'\\([\\"])')
_EXT_CHARSETS = {"utf-8", "iso8859-1", "ascii"}
_SINGLE = {"content-disposition", "content-type"}


class MultipartError(ValueError):
    """A malformed multipart body or Content-Type; the message says what and where."""


class Headers(Mapping[str, str]):
    """A part's headers: case-insensitive lookup, iteration in the original spelling and order."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, tuple[str, str]]) -> None:
        self._items = items  # lower-case name -> (name as sent, value)

    def __getitem__(self, key: str) -> str:
        if not isinstance(key, str):
            raise KeyError(key)
        return self._items[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True, slots=True)
class Part:
    """One body part, as sent."""

    name: str | None  # Content-Disposition name (None when absent)
    filename: str | None  # None when absent, "" when given empty
    content_type: str  # the Content-Type header as sent, "" when absent
    headers: Mapping[str, str]
    data: memoryview | bytes  # a slice of the parsed body, not a copy


def boundary_of(content_type_header: str) -> str:
    """The ``boundary`` parameter of a Content-Type header value, quoted or not."""
    try:
        _, params = _parse_params(content_type_header)
    except ValueError as err:
        raise MultipartError(f"invalid Content-Type header: {err}") from None
    boundary = params.get("boundary")
    if boundary is None:
        raise MultipartError("the Content-Type header has no boundary parameter")
    _check_boundary(boundary)
    return boundary


def parse_multipart(body: bytes | bytearray | memoryview, boundary: str, max_parts: int = 1000) -> list[Part]:
    """The parts of a whole ``multipart/form-data`` body, in order (see the module docstring for what is accepted)."""
    _check_boundary(boundary)
    data, view = _buffers(body)
    dash = b"--" + boundary.encode("ascii")
    found = _find_delimiter(data, 0, dash, -1)
    if found is None:
        raise MultipartError(f"no multipart delimiter {dash.decode()!r} in the body")
    _, pos, close = found
    parts: list[Part] = []
    while not close:
        index = len(parts)
        if index >= max_parts:
            raise MultipartError(f"more than {max_parts} parts")
        headers, start = _read_headers(data, pos, dash, index)
        found = _find_delimiter(data, start, dash, index)
        if found is None:
            raise MultipartError(f"part {index}: no delimiter after its data (from byte {start}): body truncated")
        end, pos, close = found
        parts.append(_make_part(headers, view[start:end], index))
    return parts


def _check_boundary(boundary: str) -> None:
    if not _BOUNDARY.fullmatch(boundary):
        raise MultipartError(
            f"invalid multipart boundary {boundary[:80]!r}: 1 to 70 printable ASCII characters, not ending in a space"
        )


def _buffers(body: bytes | bytearray | memoryview) -> tuple[bytes | bytearray, memoryview]:
    """Something ``find`` can search, and a memoryview over the same bytes to slice the parts from."""
    view = memoryview(body)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    if isinstance(body, bytes | bytearray):
        return body, view
    obj = view.obj
    if isinstance(obj, bytes | bytearray) and view.c_contiguous and view.nbytes == len(obj):
        return obj, view
    data = view.tobytes()
    return data, memoryview(data)


def _find_delimiter(data: bytes | bytearray, start: int, dash: bytes, index: int) -> tuple[int, int, bool] | None:
    """The first delimiter line at or after ``start``, at the start of a line: (end of the data before it, position
    after its line, whether it is the close delimiter), or None. ``start`` counts as the start of a line."""
    if data.startswith(dash, start) and (found := _delimiter_line(data, start, start + len(dash), index)):
        return start, *found
    delimiter = b"\n" + dash
    size, begin = len(delimiter), start
    while (at := data.find(delimiter, start)) >= 0:
        start = at + size  # no overlap: the boundary holds no LF
        # the cheap test first: hostile bodies may hold millions of "--boundaryX" lines
        if data[start : start + 1] in b"- \t\r\n" and (found := _delimiter_line(data, at + 1, start, index)):
            end = at - 1 if at > begin and data[at - 1] == 13 else at  # the CR of a CRLF
            return end, *found
    return None


def _delimiter_line(data: bytes | bytearray, begin: int, at: int, index: int) -> tuple[int, bool] | None:
    """``--boundary`` from ``begin`` to ``at`` at the start of a line: (position after the line, is close) or None when
    the line is data (``--boundaryX``). Raises when it is a delimiter followed by anything but padding + line end."""
    follow = data[at : at + 2]
    close = follow == b"--"
    if not close and (not follow or follow[0] not in b" \t\r\n"):
        if follow:
            return None
        raise MultipartError(f"{_which(index)} at byte {begin}: body truncated after it")
    tail = _TAIL.match(data, at + 2 if close else at)
    if tail is None:
        raise MultipartError(f"{_which(index)} at byte {begin}: only spaces/tabs and a line ending may follow it")
    if not close and tail.lastindex is None:
        raise MultipartError(f"{_which(index)} at byte {begin}: body truncated after it")
    return tail.end(), close


def _which(index: int) -> str:
    return "the first delimiter" if index < 0 else f"the delimiter after part {index}"


def _read_headers(data: bytes | bytearray, pos: int, dash: bytes, index: int) -> tuple[Headers, int]:
    """The header section starting at ``pos``: the headers and the position after the blank line that ends it."""
    limit = pos + MAX_HEADER_BYTES
    items: dict[str, tuple[str, str]] = {}
    count = 0
    while True:
        nl = data.find(b"\n", pos, limit)
        if nl < 0:
            if limit < len(data):
                raise MultipartError(f"part {index}: header section larger than {MAX_HEADER_BYTES} bytes")
            raise MultipartError(f"part {index}: header section not ended by a blank line: body truncated")
        line = bytes(data[pos : nl - 1 if nl > pos and data[nl - 1] == 13 else nl])
        at, pos = pos, nl + 1
        if not line:
            return Headers(items), pos
        count += 1
        if count > MAX_HEADERS:
            raise MultipartError(f"part {index}: more than {MAX_HEADERS} headers")
        if line[0] in b" \t":
            raise MultipartError(f"part {index}: obsolete header line folding at byte {at} is not supported")
        name, colon, raw = line.partition(b":")
        if not colon or not _HEADER_NAME.fullmatch(name):
            if line.startswith(dash):
                raise MultipartError(f"part {index}: no blank line between the delimiter and the next one at byte {at}")
            hint = " (invalid header name)" if colon else " (no blank line after the headers?)"
            raise MultipartError(f"part {index}: malformed header line {line[:60]!r} at byte {at}{hint}")
        raw = raw.strip(b" \t")
        if b"\r" in raw or b"\0" in raw:
            raise MultipartError(f"part {index}: CR or NUL in header line at byte {at}")
        key, value = name.decode("ascii"), _decode(raw)
        low = key.lower()
        if low in items:
            if low in _SINGLE:
                raise MultipartError(f"part {index}: repeated {key} header")
            value = f"{items[low][1]}, {value}"
        items[low] = (items.get(low, (key,))[0], value)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _make_part(headers: Headers, data: memoryview, index: int) -> Part:
    name = filename = None
    disposition = headers.get("content-disposition")
    if disposition is not None:
        try:
            _, params = _parse_params(disposition)
        except ValueError as err:
            raise MultipartError(f"part {index}: invalid Content-Disposition header: {err}") from None
        name, filename = params.get("name"), params.get("filename")
    return Part(name, filename, headers.get("content-type", ""), headers, data)


def _parse_params(value: str) -> tuple[str, dict[str, str]]:
    """``type; key=value; key="quoted"; key*=charset'lang'%xx``: the type and the parameters, keys lower-cased,
    ``key*`` decoded into ``key`` (and taking precedence). ValueError when malformed."""
    kind = _KIND.match(value)
    assert kind is not None  # matches the empty string
    pos = kind.end()
    plain: dict[str, str] = {}
    extended: dict[str, str] = {}
    while pos < len(value):
        param = _PARAM.match(value, pos)
        if param is None:
            raise ValueError(f"malformed parameter at character {pos}: {value[pos : pos + 40]!r}")
        pos = param.end()
        key, quoted, token = param.groups()
        if key is None or (quoted is None and token is None):
            continue  # an empty or valueless parameter
        key = key.lower()
        target = extended if key.endswith("*") else plain
        if key in target:
            raise ValueError(f"repeated parameter {key!r}")
        target[key] = _UNESCAPE.sub(r"\1", quoted) if quoted is not None else token.rstrip(" \t")
    for key, raw in extended.items():
        plain[key[:-1]] = _extended_value(key, raw)
    return kind.group(1).rstrip(" \t"), plain


def _extended_value(key: str, raw: str) -> str:
    """RFC 5987 ``charset'language'percent-encoded``."""
    charset, _, rest = raw.partition("'")
    _, quote2, encoded = rest.partition("'")
    if not quote2:
        raise ValueError(f"malformed {key} value {raw[:40]!r}: expected charset'language'value")
    try:
        codec = codecs.lookup(charset.strip()).name
    except LookupError:
        codec = ""
    if codec not in _EXT_CHARSETS:
        raise ValueError(f"unsupported charset {charset[:20]!r} in {key}")
    try:
        return unquote_to_bytes(encoded).decode(codec)
    except UnicodeDecodeError:
        raise ValueError(f"{key} value is not valid {charset}") from None
