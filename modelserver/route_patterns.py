"""Route patterns: parsing ``/v1/models/{model_name}:predict`` once, and binding request segments to it.

A route pattern is a ``/``-separated list of segments:

* ``predictions`` - a literal segment (no ``{``, ``}``, ``:``, ``%``, ``?``, ``#`` or whitespace);
* ``{model_name}`` - a parameter that matches one non-empty segment;
* ``{url_path:path}`` - a catch-all, last segment only, that matches the rest of the path;
* a literal or a parameter followed by a verb, last segment only: ``{model_name}:predict`` (literal verb) or
  ``{version}:{method}`` (parameter verb). The request's last segment is split at its last ``:``.

Request paths follow TorchServe's rules (:func:`split_path`): the query string is ignored, the path is split on
``/``, trailing empty segments are dropped, an empty segment in the middle (a double slash) is kept and matches no
parameter, and each segment is percent-decoded after splitting, so ``%2F`` is data inside a segment. A path that does
not decode as UTF-8 matches nothing. Specificity (:attr:`Segment.rank`) compares segments left to right: a literal
beats a verb-suffixed parameter, which beats a plain parameter, which beats a catch-all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_LITERAL = r"[^{}:/%?#\s]+"
_SEGMENT_RE = re.compile(
    rf"(?:(?P<literal>{_LITERAL})|\{{(?P<param>{_IDENT})(?::(?P<converter>[^{{}}]*))?\}})"
    rf"(?::(?:(?P<verb_literal>{_LITERAL})|\{{(?P<verb_param>{_IDENT})\}}))?"
)

# Specificity of one pattern segment; higher wins.
_RANK_LITERAL = 6
_RANK_LITERAL_VERB = 5
_RANK_LITERAL_PARAM_VERB = 4
_RANK_PARAM_LITERAL_VERB = 3
_RANK_PARAM_PARAM_VERB = 2
_RANK_PARAM = 1
_RANK_TAIL = 0


# --------------------------------------------------------------------------------------------------------------
# Patterns


@dataclass(frozen=True, slots=True)
class Segment:
    """One parsed pattern segment: a literal or parameter base, an optional verb, or a catch-all tail."""

    literal: str | None = None
    param: str | None = None
    tail: bool = False
    verb_literal: str | None = None
    verb_param: str | None = None

    @property
    def has_verb(self) -> bool:
        return self.verb_literal is not None or self.verb_param is not None

    @property
    def rank(self) -> int:
        """How specific this segment is; see the module docstring."""
        if self.tail:
            return _RANK_TAIL
        if self.literal is not None:
            if self.verb_literal is not None:
                return _RANK_LITERAL_VERB
            return _RANK_LITERAL_PARAM_VERB if self.verb_param is not None else _RANK_LITERAL
        if self.verb_literal is not None:
            return _RANK_PARAM_LITERAL_VERB
        return _RANK_PARAM_PARAM_VERB if self.verb_param is not None else _RANK_PARAM

    def render(self, blank_names: bool = False) -> str:
        """The segment as an OpenAPI path template piece (``{name:path}`` becomes ``{name}``), or with the names
        blanked as a shape piece (``{}``; ``{*}`` for a catch-all, which never overlaps a one-segment parameter)."""
        if blank_names and self.tail:
            return "{*}"
        base = self.literal if self.literal is not None else _brace(self.param, blank_names)
        if self.verb_literal is not None:
            return f"{base}:{self.verb_literal}"
        if self.verb_param is not None:
            return f"{base}:{_brace(self.verb_param, blank_names)}"
        return base

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name in (self.param, self.verb_param) if name is not None)


def _brace(name: str | None, blank: bool) -> str:
    return "{" + ("" if blank or name is None else name) + "}"


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """A validated pattern, with the flat tuples the matcher walks on the hot path."""

    pattern: str
    segments: tuple[Segment, ...]
    param_names: tuple[str, ...]
    template: str
    """OpenAPI form of the pattern: ``/predictions/{m}/{v}/{url_path}``."""
    shape: str
    """The template with parameter names blanked (``/models/{}/{}``): two patterns of one shape overlap."""
    specificity: tuple[int, ...]
    first_literal: str | None
    """The first segment when it is a plain literal: the router's index key."""
    min_segments: int
    tail: str | None
    _literals: tuple[tuple[int, str], ...] = field(repr=False, compare=False)
    """(index, literal) of the plain literal segments after the first literal, which the router's index checks."""
    _params: tuple[tuple[int, str], ...] = field(repr=False, compare=False)
    _verb: tuple[int, str | None, str | None, str | None, str | None] | None = field(repr=False, compare=False)
    """(index, base literal, base parameter, verb literal, verb parameter) of a verb-suffixed last segment."""

    def fits(self, count: int) -> bool:
        """Whether a path of ``count`` segments has the right length for this pattern."""
        return count >= self.min_segments if self.tail is not None else count == self.min_segments

    def match_segments(self, segments: Sequence[str]) -> dict[str, str] | None:
        """The parameters if decoded ``segments`` match this pattern, else None."""
        if not self.fits(len(segments)):
            return None
        if self.first_literal is not None and segments[0] != self.first_literal:
            return None
        return self.bind(segments)

    def bind(self, segments: Sequence[str]) -> dict[str, str] | None:
        """Like :meth:`match_segments`, for segments whose count :meth:`fits` and whose first segment is already
        known to equal :attr:`first_literal` (the router's index guarantees both)."""
        for index, literal in self._literals:
            if segments[index] != literal:
                return None
        params: dict[str, str] = {}
        for index, name in self._params:
            value = segments[index]
            if not value:
                return None
            params[name] = value
        if self._verb is not None and not _bind_verb(segments, self._verb, params):
            return None
        if self.tail is not None:
            params[self.tail] = "/".join(segments[self.min_segments - 1 :])
        return params


def _bind_verb(
    segments: Sequence[str], verb: tuple[int, str | None, str | None, str | None, str | None], params: dict[str, str]
) -> bool:
    """Split the verb segment at its last ``:`` and match both halves (each a literal or a non-empty parameter)."""
    index, base_literal, base_param, verb_literal, verb_param = verb
    base, colon, suffix = segments[index].rpartition(":")
    if not colon:
        return False
    if base_literal is not None:
        if base != base_literal:
            return False
    elif base:
        params[base_param] = base  # type: ignore[index]  # a part without a literal has a parameter
    else:
        return False
    if verb_literal is not None:
        return suffix == verb_literal
    if suffix:
        params[verb_param] = suffix  # type: ignore[index]
        return True
    return False


def compile_pattern(pattern: str) -> CompiledPattern:
    """Validate ``pattern`` and compile it for matching; raise ValueError when it is malformed.

    >>> compiled = compile_pattern("/model/{name}/version/{version}:{method}")
    >>> compiled.param_names
    ('name', 'version', 'method')
    >>> compiled.template, compiled.shape
    ('/model/{name}/version/{version}:{method}', '/model/{}/version/{}:{}')
    >>> compiled.match_segments(["model", "lenet", "version", "1:predict"])
    {'name': 'lenet', 'version': '1', 'method': 'predict'}
    >>> compile_pattern("/predictions/{m}/{v}/{url_path:path}").match_segments(["predictions", "a", "1", "x", "y"])
    {'m': 'a', 'v': '1', 'url_path': 'x/y'}
    >>> compile_pattern("/v1/models/{model_name}:predict").match_segments(["v1", "models", "a:b:predict"])
    {'model_name': 'a:b'}
    >>> compile_pattern("/models/{m}/")
    Traceback (most recent call last):
    ...
    ValueError: route pattern '/models/{m}/': empty segment (a trailing or double '/')
    """
    texts = _split_pattern(pattern)
    segments = tuple(_parse_segment(pattern, text, index == len(texts) - 1) for index, text in enumerate(texts))
    names = tuple(name for segment in segments for name in segment.names)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"route pattern {pattern!r}: repeated parameter name(s) {', '.join(duplicates)}")
    return _assemble(pattern, segments, names)


def _split_pattern(pattern: str) -> list[str]:
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r}: must be a string starting with '/'")
    if pattern == "/":
        return []
    texts = pattern[1:].split("/")
    if "" in texts:
        raise ValueError(f"route pattern {pattern!r}: empty segment (a trailing or double '/')")
    return texts


def _parse_segment(pattern: str, text: str, last: bool) -> Segment:
    found = _SEGMENT_RE.fullmatch(text)
    if found is None:
        raise ValueError(
            f"route pattern {pattern!r}: bad segment {text!r}; expected a literal, {{name}} or {{name:path}}, "
            "optionally followed by :verb or :{name}, and a parameter must fill its whole segment"
        )
    converter = found["converter"]
    segment = Segment(
        literal=found["literal"],
        param=found["param"],
        tail=converter is not None,
        verb_literal=found["verb_literal"],
        verb_param=found["verb_param"],
    )
    if converter is not None and converter != "path":
        raise ValueError(f"route pattern {pattern!r}: unknown converter {converter!r}; only {{name:path}} exists")
    if segment.tail and segment.has_verb:
        raise ValueError(f"route pattern {pattern!r}: a {{name:path}} catch-all cannot carry a :verb")
    if (segment.tail or segment.has_verb) and not last:
        what = "a {name:path} catch-all" if segment.tail else "a :verb suffix"
        raise ValueError(f"route pattern {pattern!r}: {what} is allowed in the last segment only ({text!r})")
    return segment


def _assemble(pattern: str, segments: tuple[Segment, ...], names: tuple[str, ...]) -> CompiledPattern:
    last = segments[-1] if segments else None
    first = segments[0] if segments else None
    return CompiledPattern(
        pattern=pattern,
        segments=segments,
        param_names=names,
        template="/" + "/".join(segment.render() for segment in segments),
        shape="/" + "/".join(segment.render(blank_names=True) for segment in segments),
        specificity=tuple(segment.rank for segment in segments),
        first_literal=first.literal if first is not None and first.rank == _RANK_LITERAL else None,
        min_segments=len(segments),
        tail=last.param if last is not None and last.tail else None,
        _literals=tuple((i, s.literal) for i, s in enumerate(segments) if i and s.rank == _RANK_LITERAL),
        _params=tuple((i, s.param) for i, s in enumerate(segments) if s.rank == _RANK_PARAM),
        _verb=_verb_spec(segments),
    )


def _verb_spec(segments: tuple[Segment, ...]) -> tuple[int, str | None, str | None, str | None, str | None] | None:
    if not segments or not segments[-1].has_verb:
        return None
    last = segments[-1]
    return (len(segments) - 1, last.literal, last.param, last.verb_literal, last.verb_param)


def split_path(raw_path: str) -> list[str] | None:
    """Split a raw request path into decoded segments; None when it is not an absolute path or not UTF-8.

    >>> split_path("/predictions/my%2Fmodel/?x=1")
    ['predictions', 'my/model']
    >>> split_path("/"), split_path("//a"), split_path("/%ff")
    ([], ['', 'a'], None)
    """
    if "?" in raw_path:
        raw_path = raw_path[: raw_path.index("?")]
    if raw_path[:1] != "/":
        return None
    body = raw_path[1:].rstrip("/")  # trailing empty segments are dropped
    if not body:
        return []
    segments = body.split("/")
    if "%" in body or not body.isascii():
        try:
            return [_decode(segment) for segment in segments]
        except ValueError:  # UnicodeDecodeError / UnicodeEncodeError: not UTF-8
            return None
    return segments


def _decode(segment: str) -> str:
    """Percent-decode one segment as UTF-8, strictly; a lone surrogate (aiohttp's stand-in for a raw non-UTF-8
    byte in the request target) raises too."""
    if "%" not in segment and segment.isascii():
        return segment
    return unquote_to_bytes(segment).decode("utf-8")
