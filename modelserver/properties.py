"""Java ``.properties`` syntax, as read by ``java.util.Properties.load``, and ``$$ENV$$`` substitution.

TorchServe reads ``config.properties`` (and its config snapshots) with ``Properties.load``, so a drop-in must
parse the same text into the same keys and values, quirks included:

* a *natural line* ends at ``\\n``, ``\\r`` or ``\\r\\n``; its leading spaces, tabs and form feeds are skipped;
* a natural line whose first other character is ``#`` or ``!`` is a comment, and a comment never continues;
* a line ending in an odd number of backslashes continues on the next natural line, whose leading whitespace is
  dropped; a blank continuation line ends the logical line instead;
* the key ends at the first unescaped ``=``, ``:``, space, tab or form feed; whitespace around the separator is
  skipped, and one ``=`` or ``:`` after whitespace still counts as the separator; the value keeps trailing spaces;
* ``\\t \\n \\r \\f`` and ``\\uXXXX`` are escapes, and a backslash before any other character just drops out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

__all__ = ["PropertiesSyntaxError", "parse_properties", "substitute_env"]

_WHITESPACE = " \t\f"
_SEPARATORS = "=:"
_NEWLINE_KEEP = re.compile(r"(\r\n|\r|\n)")
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
# TorchServe's pattern is \$\$([^$]+[^$])\$\$: the name has at least two characters and no "$".
_ENV_REFERENCE = re.compile(r"\$\$([^$]{2,})\$\$")


class ConfigError(Exception):
    """A configuration problem that stops startup; the message names the key (or file) and the bad value."""


class PropertiesSyntaxError(ValueError):
    """The text cannot be read as Java properties (only a malformed ``\\uXXXX`` escape does that)."""


def parse_properties(text: str) -> dict[str, str]:
    """Parse ``text`` exactly as ``java.util.Properties.load`` would; a later duplicate key wins."""
    result: dict[str, str] = {}
    for line_number, line in _logical_lines(text):
        key, value = _split_key_value(line)
        try:
            result[_unescape(key)] = _unescape(value)
        except PropertiesSyntaxError as err:
            raise PropertiesSyntaxError(f"line {line_number}: {err}") from None
    return result


def substitute_env(value: str, environ: Mapping[str, str], *, key: str | None = None) -> str:
    """Replace every ``$$NAME$$`` in ``value`` with ``environ[NAME]``.

    The replacement is literal (Java's ``appendReplacement`` would interpret ``$`` and ``\\`` in it; we do not).
    A missing variable is a startup error naming it, and the key when ``key`` is given.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            where = f" (in the value of {key!r})" if key is not None else ""
            raise ConfigError(f"Invalid Environment Variable {name}: it is referenced as $${name}$${where} but not set")
        return environ[name]

    return _ENV_REFERENCE.sub(replace, value)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(natural line number, logical line)`` with continuations joined and comments dropped."""
    pieces = _NEWLINE_KEEP.split(text)
    natural, terminators = pieces[0::2], pieces[1::2]
    index = 0
    while index < len(natural):
        start = index
        line = natural[index].lstrip(_WHITESPACE)
        index += 1
        if not line or line[0] in "#!":
            continue
        joined, index = _join_continuations(line, natural, terminators, index)
        if joined is not None:
            yield start + 1, joined


def _join_continuations(line: str, natural: list[str], terminators: list[str], index: int) -> tuple[str | None, int]:
    """Join ``line`` with the natural lines it continues into; return the logical line and the next index.

    The trailing backslash of each continued line is removed; other escapes are left for ``_unescape``.
    This mirrors the ``LineReader`` of JDK 9+, whose only notion of "at the start of a line" is "nothing
    collected yet". So a line that is just a backslash collects nothing, and the next natural line starts
    afresh (it may be blank or a comment); but if the text ends right there, Java reports an empty line.
    """
    joined = ""
    while _continues(line):
        joined += line[:-1]
        if _text_ends_after(index, natural, terminators):
            return joined, index
        if not joined:
            return None, index
        line = natural[index].lstrip(_WHITESPACE)
        index += 1
        if not line:  # a blank continuation line ends the logical line
            return joined, index
    return joined + line, index


def _text_ends_after(index: int, natural: list[str], terminators: list[str]) -> bool:
    """True if the text ends right after natural line ``index - 1`` and at most one line-break character."""
    if index == len(natural):
        return True
    return index == len(natural) - 1 and natural[index] == "" and terminators[index - 1] != "\r\n"


def _continues(line: str) -> bool:
    """True if ``line`` ends in an odd number of backslashes."""
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_key_value(line: str) -> tuple[str, str]:
    """Split a logical line (escapes intact) into its raw key and raw value."""
    key_end = len(line)
    value_start = len(line)
    has_separator = False
    escaped = False
    for position, char in enumerate(line):
        if not escaped and (char in _SEPARATORS or char in _WHITESPACE):
            key_end = position
            value_start = position + 1
            has_separator = char in _SEPARATORS
            break
        escaped = char == "\\" and not escaped
    while value_start < len(line):
        char = line[value_start]
        if char not in _WHITESPACE:
            if has_separator or char not in _SEPARATORS:
                break
            has_separator = True
        value_start += 1
    return line[:key_end], line[value_start:]


def _unescape(raw: str) -> str:
    """Resolve backslash escapes the way ``Properties.loadConvert`` does."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    position = 0
    while position < len(raw):
        char = raw[position]
        position += 1
        if char != "\\":
            out.append(char)
            continue
        if position == len(raw):  # a lone trailing backslash cannot come out of _logical_lines; drop it
            break
        char = raw[position]
        position += 1
        if char == "u":
            out.append(_decode_unicode_escape(raw[position : position + 4]))
            position += 4
        else:
            out.append(_SIMPLE_ESCAPES.get(char, char))
    return _join_surrogates("".join(out))


def _decode_unicode_escape(digits: str) -> str:
    if len(digits) != 4 or not _HEX_DIGITS.issuperset(digits):
        raise PropertiesSyntaxError(f"Malformed \\uxxxx encoding: \\u{digits}")
    return chr(int(digits, 16))


def _join_surrogates(text: str) -> str:
    """Turn UTF-16 surrogate pairs written as two ``\\u`` escapes into the one character Java means."""
    if not any("\ud800" <= char <= "\udfff" for char in text):
        return text
    return _SURROGATE_PAIR.sub(lambda m: m.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le"), text)
