"""Method + raw path -> route, for every listening address (design decision 1).

Patterns and request paths are :mod:`modelserver.route_patterns`' business (``{model_name}``, ``{path:path}``,
``:verb`` suffixes, TorchServe's path rules); this module holds routes and matches requests against them.

A route may be *shared* by several protocols: routes of the same path shape and the same methods that each name a
different ``protocol`` and the same ``model_param`` (``POST /v1/models/{model_name}:predict`` is TorchServe's,
KServe's and Angel's). The first one added is matched; the others are its variants, and :attr:`Match.variants`
maps each protocol to its route, so the caller can pick by the protocol of the model the path names.

A path that fits a route ending in a literal verb (``/v1/models/{m}:predict``) but not its method answers 405 even
when a less specific route (``GET /v1/models/{m}``) would take the method: model names cannot hold ``:``, so the path
names the verb route.

Matching costs one dict lookup on the first segment plus a few comparisons: routes are bucketed by their first
literal segment and then by segment count, and each bucket is pre-sorted by specificity. Among the routes that fit
the path, the most specific one that accepts the method wins; if none accepts it the answer is 405 with the union of
their methods. Specificity compares segments left to right: a literal beats a verb-suffixed parameter, which beats a
plain parameter, which beats a catch-all; so a route with an exact segment count beats a catch-all on the same
prefix.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .api_docs import Body, Param, Reply
from .route_patterns import CompiledPattern, Segment, compile_pattern, split_path

__all__ = [
    "ANY",
    "CompiledPattern",
    "Handler",
    "Match",
    "MatchKind",
    "Route",
    "Router",
    "Segment",
    "compile_pattern",
    "split_path",
]

Handler = Callable[..., Awaitable[Any]]

ANY: frozenset[str] = frozenset({"*"})
"""The method set of a route that accepts every method."""

_METHOD_RE = re.compile(r"[A-Z][A-Z0-9_-]*")

# --------------------------------------------------------------------------------------------------------------
# Routes


def _default_responses() -> Mapping[int, str | Reply]:
    return MappingProxyType({200: "OK"})


@dataclass(frozen=True)
class Route:
    """One entry of a route table: methods, pattern, handler, and the metadata the OpenAPI document is built from.

    ``methods`` may be given as any iterable of method names (they are upper-cased) or :data:`ANY`.
    """

    methods: frozenset[str]
    pattern: str
    handler: Handler
    summary: str = ""
    operation_id: str = ""
    tags: tuple[str, ...] = ()
    request_body: str | Body | None = None
    """The body's media type (any content), or a :class:`~modelserver.api_docs.Body`; None: no body documented."""
    responses: Mapping[int, str | Reply] = field(default_factory=_default_responses, hash=False)
    """Status -> a description (a 4xx/5xx then has the ``error_schema`` body, a 2xx any JSON) or a full Reply."""
    parameters: tuple[Param, ...] = ()
    """Query and header parameters, for the OpenAPI document (path parameters come from the pattern)."""
    param_docs: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Descriptions of path parameters that differ from the usual ones."""
    error_schema: str = "Error"
    """The component schema of this route's error bodies: its dialect's error shape."""
    description: str = ""
    deprecated: bool = False
    doc_methods: tuple[str, ...] = ()
    """The methods an any-method route is documented with (all the usual ones when empty)."""
    auth: str | None = None
    protocol: str | None = None
    """The protocol family this route belongs to, when it may share its path with other protocols' routes."""
    model_param: str | None = None
    """The path parameter naming the model: a shared route is resolved by that model's protocol."""
    compiled: CompiledPattern = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", _normalize_methods(self.methods, self.pattern))
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "parameters", tuple(self.parameters))
        object.__setattr__(self, "responses", _freeze_responses(self.responses, self.pattern))
        object.__setattr__(self, "compiled", compile_pattern(self.pattern))

    @property
    def accepts_any(self) -> bool:
        return self.methods == ANY


def _normalize_methods(methods: Iterable[str], pattern: str) -> frozenset[str]:
    names = frozenset({methods} if isinstance(methods, str) else methods)
    upper = frozenset(name.upper() for name in names)
    if not upper:
        raise ValueError(f"route {pattern!r}: no methods")
    if "*" in upper:
        if upper != ANY:
            raise ValueError(f"route {pattern!r}: '*' (any method) cannot be combined with other methods")
        return ANY
    bad = sorted(name for name in upper if not _METHOD_RE.fullmatch(name))
    if bad:
        raise ValueError(f"route {pattern!r}: invalid method name(s) {bad}")
    return upper


def _freeze_responses(responses: Mapping[int, str | Reply], pattern: str) -> Mapping[int, str | Reply]:
    frozen = MappingProxyType(dict(responses))
    if not frozen:
        raise ValueError(f"route {pattern!r}: at least one response is needed")
    for status, description in frozen.items():
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ValueError(f"route {pattern!r}: response status {status!r} is not an int in 100..599")
        if not isinstance(description, str | Reply):
            raise ValueError(f"route {pattern!r}: response {status} is neither a description nor a Reply")
    return frozen


# --------------------------------------------------------------------------------------------------------------
# Matching


class MatchKind(enum.Enum):
    FULL = "full"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class Match:
    """The router's answer. ``route`` and ``params`` are set for FULL; ``allowed`` for METHOD_NOT_ALLOWED only.

    The router remembers its answers and gives the same object for the same method and path again: treat
    ``params`` as read-only."""

    kind: MatchKind
    route: Route | None = None
    params: dict[str, str] = field(default_factory=dict, hash=False)
    allowed: frozenset[str] = frozenset()
    variants: Mapping[str, Route] | None = field(default=None, hash=False)
    """For a shared route: protocol -> route (``route`` is one of them, the first added); None otherwise."""

    def allow_header(self) -> str:
        """The value of the ``Allow`` header of a 405: ``"GET, PUT"``."""
        return ", ".join(sorted(self.allowed))


_FULL = MatchKind.FULL
_METHOD_NOT_ALLOWED = MatchKind.METHOD_NOT_ALLOWED
_NOT_FOUND = MatchKind.NOT_FOUND
_NO_METHODS: frozenset[str] = frozenset()
_new_object = object.__new__
_set_kind = Match.__dict__["kind"].__set__
_set_route = Match.__dict__["route"].__set__
_set_params = Match.__dict__["params"].__set__
_set_allowed = Match.__dict__["allowed"].__set__
_set_variants = Match.__dict__["variants"].__set__


def _full_match(route: Route, params: dict[str, str], variants: Mapping[str, Route] | None) -> Match:
    """``Match(FULL, route, params)`` at half the cost: a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__``, while the slot descriptors set the fields directly. The hot path's only shortcut."""
    match = _new_object(Match)
    _set_kind(match, _FULL)
    _set_route(match, route)
    _set_params(match, params)
    _set_allowed(match, _NO_METHODS)
    _set_variants(match, variants)
    return match


CACHED_MATCHES = 4096
CACHED_PATH_LENGTH = 256

# One candidate: the bound matcher, the accepted methods (None = any), the route, whether it ends in a literal verb.
_Entry = tuple[Callable[[Sequence[str]], dict[str, str] | None], frozenset[str] | None, Route, bool]
# Candidates by segment count: entry ``n`` for paths of n segments, the last entry for every longer path.
_Table = tuple[tuple[_Entry, ...], ...]


class Router:
    """A route table: :meth:`add` routes at start-up, then :meth:`match` per request."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._routes: list[Route] = []
        self._variants: dict[int, dict[str, Route]] = {}
        self._tables: dict[str, _Table] = {}
        self._cache: dict[str, dict[str, Match]] = {}
        self._cached = 0
        self._fallback: _Table = ((), ())
        for route in routes:
            self.add(route)

    @property
    def routes(self) -> tuple[Route, ...]:
        """All routes in registration order."""
        return tuple(self._routes)

    def add(self, route: Route) -> None:
        """Register ``route``; ValueError if a route of the same shape already takes one of its methods, unless the
        two are variants of one shared route (see the module docstring)."""
        for other in self._routes:
            if other.compiled.shape == route.compiled.shape and _methods_overlap(other.methods, route.methods):
                if self._add_variant(other, route):
                    return
                raise ValueError(
                    f"route {_describe(route)} conflicts with {_describe(other)}: same path shape and method"
                )
        self._routes.append(route)
        self._rebuild()
        self._cache.clear()
        self._cached = 0

    def _add_variant(self, primary: Route, route: Route) -> bool:
        """Make ``route`` a variant of ``primary`` if they may share their path; a protocol is added only once."""
        if not (
            primary.protocol
            and route.protocol
            and primary.methods == route.methods
            and primary.model_param
            and primary.model_param == route.model_param
        ):
            return False
        variants = self._variants.setdefault(id(primary), {primary.protocol: primary})
        if route.protocol in variants:
            return False
        variants[route.protocol] = route
        self._cache.clear()
        self._cached = 0
        return True

    def variants(self, route: Route) -> Mapping[str, Route] | None:
        """The routes sharing ``route``'s path, by protocol; None when it is not shared."""
        return self._variants.get(id(route))

    def match(self, method: str, raw_path: str) -> Match:
        """Find the route for ``method`` and a raw request path (the query string, if any, is ignored).

        Answers are remembered per method and path (paths up to ``CACHED_PATH_LENGTH`` characters, at most
        ``CACHED_MATCHES`` of them, forgotten all at once when full): a server sees the same few paths again and
        again, and a remembered answer costs two dictionary lookups."""
        by_path = self._cache.get(method)
        if by_path is not None:
            found = by_path.get(raw_path)
            if found is not None:
                return found
        found = self._match(method, raw_path)
        if len(raw_path) <= CACHED_PATH_LENGTH:
            if self._cached >= CACHED_MATCHES:
                self._cache.clear()
                self._cached = 0
            self._cache.setdefault(method, {})[raw_path] = found
            self._cached += 1
        return found

    def _match(self, method: str, raw_path: str) -> Match:
        segments = split_path(raw_path)
        if segments is None:
            return Match(_NOT_FOUND)
        count = len(segments)
        table = self._tables.get(segments[0], self._fallback) if count else self._fallback
        candidates = table[count] if count < len(table) else table[-1]
        allowed: frozenset[str] | None = None
        verb_refused = False
        for bind, methods, route, literal_verb in candidates:
            params = bind(segments)
            if params is None:
                continue
            if methods is None or method in methods:
                if verb_refused:  # the path names a verb route (model names have no ':'): its 405, not a fallback
                    break
                return _full_match(route, params, self._variants.get(id(route)) if self._variants else None)
            allowed = methods if allowed is None else allowed | methods
            verb_refused = verb_refused or literal_verb
        if allowed is None:
            return Match(_NOT_FOUND)
        return Match(_METHOD_NOT_ALLOWED, allowed=allowed)

    def _rebuild(self) -> None:
        by_first: dict[str, list[Route]] = {}
        others: list[Route] = []
        for route in self._routes:
            key = route.compiled.first_literal
            if key is None:
                others.append(route)
            else:
                by_first.setdefault(key, []).append(route)
        self._fallback = _build_table(others)
        self._tables = {key: _build_table(routes + others) for key, routes in by_first.items()}


def _build_table(routes: list[Route]) -> _Table:
    """Candidates per segment count, each sorted most specific first (ties: registration order)."""
    ordered = sorted(routes, key=lambda route: route.compiled.specificity, reverse=True)
    longest = max((route.compiled.min_segments for route in routes), default=0)
    return tuple(
        tuple(_entry(route) for route in ordered if route.compiled.fits(count)) for count in range(longest + 2)
    )


def _entry(route: Route) -> _Entry:
    last = route.compiled.segments[-1] if route.compiled.segments else None
    literal_verb = last is not None and last.verb_literal is not None
    return (route.compiled.bind, None if route.accepts_any else route.methods, route, literal_verb)


def _methods_overlap(first: frozenset[str], second: frozenset[str]) -> bool:
    return first == ANY or second == ANY or not first.isdisjoint(second)


def _describe(route: Route) -> str:
    methods = "*" if route.accepts_any else ",".join(sorted(route.methods))
    return f"{methods} {route.pattern}"
