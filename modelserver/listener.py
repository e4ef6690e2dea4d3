"""One HTTP listener: aiohttp's low-level server, our router, and the dialects mounted on it.

Every request goes: match method + path -> the guards (token authorization, :mod:`modelserver.auth`;
they see unmatched requests too) -> route (404 / 405 + ``Allow`` otherwise) -> the route's handler
-> the observers. A :class:`~modelserver.errors.ServeError` raised anywhere below is rendered by
the dialect that owns the route, in that dialect's error shape. aiohttp's access-log hook writes
``access_log.log`` after the response is sent (:mod:`modelserver.logs`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from aiohttp import web, web_protocol, web_request
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader

from . import logs
from .errors import MethodNotAllowed, ResourceNotFound, ServeError
from .router import Match, MatchKind, Route, Router

logger = logging.getLogger("modelserver.http")

RouteHandler = Callable[[web.BaseRequest, dict[str, str]], Awaitable[web.StreamResponse]]
Guard = Callable[[web.BaseRequest, Match], None]
"""Runs before dispatch (e.g. token auth); raises a ServeError to refuse the request."""
Observer = Callable[[web.BaseRequest, web.StreamResponse], None]
"""Runs after the handler with the response it returned (e.g. request counters); must be cheap."""


class Dialect(Protocol):
    """What a listener needs from a dialect: its routes and how it shows an error."""

    def routes(self) -> Iterable[Route]: ...

    def error_response(self, error: ServeError, request: web.BaseRequest) -> web.StreamResponse: ...


class Listener:
    """Routes requests for one address to the dialects mounted on it."""

    def __init__(
        self,
        name: str,
        dialects: Iterable[Dialect],
        max_request_size: int,
        guards: Sequence[Guard] = (),
        observers: Sequence[Observer] = (),
    ) -> None:
        self.name = name
        self.guards = list(guards)
        self.observers = list(observers)
        self.router = Router()
        self.dialects: list[Dialect] = []
        self._owner: dict[int, Dialect] = {}
        self._fallback: Dialect | None = None
        self.max_request_size = max_request_size
        for dialect in dialects:
            self.mount(dialect)

    def mount(self, dialect: Dialect) -> None:
        """Add a dialect's routes. A route that repeats one already here (same path shape, methods and operation id,
        like the API description that every TorchServe API has) is left out: the first dialect serves it."""
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
            for other in self.router.routes
        )

    def owners(self) -> Iterator[tuple[Route, Dialect]]:
        """Every route with the dialect that serves it."""
        for route in self.router.routes:
            yield route, self._owner[id(route)]

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        match = self.router.match(request.method, request.raw_path)
        route = match.route
        dialect = self._owner.get(id(route), self._fallback) if route is not None else self._fallback
        try:
            for guard in self.guards:
                guard(request, match)
            if match.kind is MatchKind.FULL:
                assert route is not None
                response = await route.handler(request, match.params)
            elif match.kind is MatchKind.METHOD_NOT_ALLOWED:
                raise MethodNotAllowed(match.allowed)
            else:
                raise ResourceNotFound()
        except ServeError as error:
            response = self._error(dialect, error, match, request)
        except Exception:
            logger.exception("Unexpected error handling %s %s", request.method, request.path)
            response = self._error(dialect, ServeError("Internal server error."), match, request)
        for observer in self.observers:
            observer(request, response)
        return response

    @staticmethod
    def _error(dialect: Dialect | None, error: ServeError, match: Any, request: web.BaseRequest) -> web.StreamResponse:
        if dialect is None:
            raise error
        response = dialect.error_response(error, request)
        if isinstance(error, MethodNotAllowed) and error.allowed:
            response.headers["Allow"] = match.allow_header()
        return response

    def make_server(self, **kwargs: Any) -> web.Server:
        """aiohttp's low-level server for this listener; the access log (:mod:`modelserver.logs`) is on when
        configured, unless ``access_log`` is given."""
        if "access_log" not in kwargs:
            kwargs.update(logs.access_log_arguments())
        max_size = self.max_request_size
        loop = asyncio.get_running_loop()

        def request_factory(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: web_protocol.RequestHandler,  # type: ignore[type-arg]
            writer: Any,
            task: Any,
        ) -> web.BaseRequest:
            return web_request.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=max_size)

        return web.Server(self.handle, request_factory=request_factory, **kwargs)  # type: ignore[arg-type]
