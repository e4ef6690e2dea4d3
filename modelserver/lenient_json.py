"""JSON as TorchServe's Gson reads request bodies: lenient.

TorchServe parses a management body with ``Gson.fromJson``, which reads leniently, so its users send bodies that
strict JSON refuses. This reader accepts, besides strict JSON:

* names and strings in single quotes, or unquoted (a run of characters up to a delimiter);
* ``=`` or ``=>`` between a name and its value, ``;`` between pairs and array elements, a trailing separator;
* ``//`` and ``#`` line comments and ``/* */`` block comments;
* ``true``/``false``/``null`` in any case, and ``NaN``/``Infinity``;
* the ``)]}'`` anti-XSSI prefix.

Strict JSON gives the same value as :func:`json.loads`. Depth is bounded, so a hostile body cannot exhaust the stack.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["LenientJsonError", "loads"]

MAX_DEPTH = 200
_DELIMITERS = frozenset("/\\;#={}[]:, \t\f\r\n")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_KEYWORDS = {"true": True, "false": False, "null": None}
_SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_XSSI_PREFIX = ")]}'\n"


class LenientJsonError(ValueError):
    """The text is not JSON, even leniently read; the message says where."""


def loads(text: str) -> Any:
    reader = _Reader(text[len(_XSSI_PREFIX) :] if text.startswith(_XSSI_PREFIX) else text)
    value = reader.value(0)
    if reader.skip_space() is not None:
        raise reader.error("unexpected text after the value")
    return value


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def error(self, what: str) -> LenientJsonError:
        return LenientJsonError(f"{what} at character {self.at}")

    def skip_space(self) -> str | None:
        """Skip blanks and comments; the next character, or None at the end."""
        text, size = self.text, len(self.text)
        while self.at < size:
            char = text[self.at]
            if char in " \t\r\n\f":
                self.at += 1
            elif char == "#" or text.startswith("//", self.at):
                end = text.find("\n", self.at)
                self.at = size if end < 0 else end + 1
            elif text.startswith("/*", self.at):
                end = text.find("*/", self.at + 2)
                if end < 0:
                    raise self.error("unterminated comment")
                self.at = end + 2
            else:
                return char
        return None

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.error(f"nesting deeper than {MAX_DEPTH}")
        char = self.skip_space()
        if char is None:
            raise self.error("a value is missing")
        if char == "{":
            return self.object(depth + 1)
        if char == "[":
            return self.array(depth + 1)
        if char in "\"'":
            return self.quoted(char)
        return self.literal()

    def object(self, depth: int) -> dict[str, Any]:
        self.at += 1
        result: dict[str, Any] = {}
        while True:
            char = self.skip_space()
            if char == "}":
                self.at += 1
                return result
            if char is None:
                raise self.error("unterminated object")
            name = self.quoted(char) if char in "\"'" else self.unquoted()
            if not name and char not in "\"'":
                raise self.error("a name is missing")
            self.name_separator()
            result[name] = self.value(depth)
            char = self.skip_space()
            if char in (",", ";"):
                self.at += 1
            elif char != "}":
                raise self.error("expected ',' or '}'")

    def name_separator(self) -> None:
        char = self.skip_space()
        if char == ":":
            self.at += 1
        elif char == "=":
            self.at += 2 if self.text.startswith("=>", self.at) else 1
        else:
            raise self.error("expected ':' after a name")

    def array(self, depth: int) -> list[Any]:
        self.at += 1
        result: list[Any] = []
        while True:
            char = self.skip_space()
            if char == "]":
                self.at += 1
                return result
            if char is None:
                raise self.error("unterminated array")
            if char in (",", ";"):  # an empty element is Gson's null
                self.at += 1
                result.append(None)
                continue
            result.append(self.value(depth))
            char = self.skip_space()
            if char in (",", ";"):
                self.at += 1
            elif char != "]":
                raise self.error("expected ',' or ']'")

    def quoted(self, quote: str) -> str:
        text, pieces = self.text, []
        self.at += 1
        start = self.at
        while True:
            end = self._next_special(quote, start)
            if end < 0:
                raise self.error("unterminated string")
            pieces.append(text[start:end])
            if text[end] == quote:
                self.at = end + 1
                return "".join(pieces)
            self.at = end
            pieces.append(self.escape())
            start = self.at

    def _next_special(self, quote: str, start: int) -> int:
        ends = [i for i in (self.text.find(quote, start), self.text.find("\\", start)) if i >= 0]
        return min(ends) if ends else -1

    def escape(self) -> str:
        code = self.text[self.at + 1 : self.at + 2]
        if code == "u":
            digits = self.text[self.at + 2 : self.at + 6]
            code_point = _hex4(digits)
            if code_point is None:
                raise self.error("bad \\u escape")
            self.at += 6
            low = _hex4(self.text[self.at + 2 : self.at + 6]) if self.text.startswith("\\u", self.at) else None
            if 0xD800 <= code_point < 0xDC00 and low is not None and 0xDC00 <= low <= 0xDFFF:
                self.at += 6  # a surrogate pair is one character, as json.loads reads it
                return chr(0x10000 + ((code_point - 0xD800) << 10) + low - 0xDC00)
            return chr(code_point)
        if code == "\n":  # Gson keeps an escaped line break
            self.at += 2
            return "\n"
        if code not in _ESCAPES:
            raise self.error(f"bad escape \\{code}")
        self.at += 2
        return _ESCAPES[code]

    def unquoted(self) -> str:
        start, text, size = self.at, self.text, len(self.text)
        while self.at < size and text[self.at] not in _DELIMITERS:
            self.at += 1
        return text[start : self.at]

    def literal(self) -> Any:
        word = self.unquoted()
        if not word:
            raise self.error(f"unexpected {self.text[self.at]!r}")
        keyword = word.lower()
        if keyword in _KEYWORDS:
            return _KEYWORDS[keyword]
        if word in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[word]
        if _NUMBER.fullmatch(word):
            return json.loads(word)
        return word


def _hex4(digits: str) -> int | None:
    if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
        return None
    return int(digits, 16)
