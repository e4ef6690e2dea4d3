"""One HTTP listener: our router and the dialects mounted on it, over our request/response interface.

Every request goes: match method + path -> for a route shared by several protocols, the variant of
the protocol of the model the path names (the server's default protocol for an unknown model) ->
the guards (token authorization, :mod:`modelserver.auth`; they see unmatched requests too) -> the
route's handler (404 / 405 + ``Allow`` when nothing matched). A
:class:`~modelserver.errors.ServeError` raised anywhere below is rendered by the dialect that owns
the chosen route, in that dialect's error shape. The HTTP server below (:mod:`modelserver.http_connection`)
builds the request, calls :meth:`Listener.dispatch` and the observers, and writes the response.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Protocol

from .errors import MethodNotAllowed, ResourceNotFound, ServeError
from .http_messages import AnyResponse, HeaderBlock, Request, Response
from .router import Match, MatchKind, Route, Router

logger = logging.getLogger("modelserver.http")

RouteHandler = Callable[[Request, dict[str, str]], Awaitable[AnyResponse]]
Guard = Callable[[Request, "Route | None"], None]
"""Runs before dispatch with the route chosen (None when nothing matched), e.g. token auth; raises a ServeError to
refuse the request."""
Observer = Callable[[int], None]
"""Runs after the handler with the status of the response it returned (e.g. request counters); must be cheap."""
ProtocolOf = Callable[[str], "str | None"]
"""The protocol of a model by name (None for an unknown model)."""


class Dialect(Protocol):
    """What a listener needs from a dialect: its routes and how it shows an error."""

    def routes(self) -> Iterable[Route]: ...

    def error_response(self, error: ServeError, request: Request) -> Response: ...


class Listener:
    """Routes requests for one address to the dialects mounted on it."""

    def __init__(
        self,
        name: str,
        dialects: Iterable[Dialect],
        max_request_size: int,
        guards: Sequence[Guard] = (),
        observers: Sequence[Observer] = (),
        protocol_of: ProtocolOf | None = None,
        default_protocol: str = "torchserve",
    ) -> None:
        self.name = name
        self.guards = list(guards)
        self.observers = list(observers)
        self.router = Router()
        self.dialects: list[Dialect] = []
        self.protocol_of = protocol_of
        self.default_protocol = default_protocol
        self._owner: dict[int, Dialect] = {}
        self._fallback: Dialect | None = None
        self.max_request_size = max_request_size
        for dialect in dialects:
            self.mount(dialect)

    def mount(self, dialect: Dialect) -> None:
        """Add a dialect's routes. A route that repeats one already here (same path shape, methods and operation id,
        like the API description that every TorchServe API has) is left out: the first dialect serves it. A route
        of another protocol on the same path and methods becomes a variant of a shared route (:mod:`.router`)."""
        self.dialects.append(dialect)
        self._fallback = self._fallback or dialect
        for route in dialect.routes():
            if self._repeats(route):
                continue
            self.router.add(route)
            self._owner[id(route)] = dialect

    def _repeats(self, route: Route) -> bool:
        return any(
            other.compiled.shape == route.compiled.shape
            and other.methods == route.methods
            and other.operation_id == route.operation_id
            and other.protocol == route.protocol
            for other in self.router.routes
        )

    def owners(self) -> Iterator[tuple[Route, Dialect]]:
        """Every route (a shared route's variants too) with the dialect that serves it."""
        for route in self.router.routes:
            variants = self.router.variants(route)
            for each in variants.values() if variants else (route,):
                yield each, self._owner[id(each)]

    def choose(self, match: Match) -> Route | None:
        """The route that serves a match: for a shared route, the variant of the named model's protocol."""
        route = match.route
        variants = match.variants
        if variants is None or route is None:
            return route
        name = match.params.get(route.model_param or "")
        protocol = self.protocol_of(name) if self.protocol_of is not None and name else None
        return variants.get(protocol or self.default_protocol) or variants.get(self.default_protocol) or route

    async def dispatch(self, request: Request) -> AnyResponse:
        match = self.router.match(request.method, request.raw_path)
        route = match.route if match.variants is None else self.choose(match)
        try:
            for guard in self.guards:
                guard(request, route)
            if route is not None:
                return await route.handler(request, match.params)
            if match.kind is MatchKind.METHOD_NOT_ALLOWED:
                raise MethodNotAllowed(match.allowed)
            raise ResourceNotFound()
        except ServeError as error:
            return self._error(self._dialect_of(route), error, match, request)
        except Exception:
            logger.exception("Unexpected error handling %s %s", request.method, request.path)
            return self._error(self._dialect_of(route), ServeError("Internal server error."), match, request)

    def _dialect_of(self, route: Route | None) -> Dialect | None:
        """The dialect that shows a route's errors (the first mounted one for a request no route took)."""
        return self._owner.get(id(route), self._fallback) if route is not None else self._fallback

    @staticmethod
    def _error(dialect: Dialect | None, error: ServeError, match: Match, request: Request) -> Response:
        if dialect is None:
            raise error
        response = dialect.error_response(error, request)
        if isinstance(error, MethodNotAllowed) and error.allowed:
            current = response.headers
            if isinstance(current, HeaderBlock):
                response.headers = HeaderBlock(f"{current.text}Allow: {match.allow_header()}\r\n", current.has_type)
            else:
                headers = dict(current or {})
                headers["Allow"] = match.allow_header()
                response.headers = headers
        return response
