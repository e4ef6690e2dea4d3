"""TorchServe's token authorization (``TokenAuthorization.java``, ``TokenAuthorizationHandler.java``).

On by default. At start three keys are made, each 6 random bytes as URL-safe base64 (8 characters):
``management``, ``inference`` and ``API``. They are written to ``key_file.json`` in the server's working
directory, mode 0600::

    {"management": {"key": "...", "expiration time": "2024-02-16T21:12:24.801167Z"},
     "inference": {"key": "...", "expiration time": "..."},
     "API": {"key": "..."}}

The management and inference keys expire ``token_expiration_min`` minutes (60; a float) after they were made; the
API key never does. A request carries ``Authorization: Bearer <key>``. The inference key opens every inference
route, ``/ping`` included; the management key every management route; the metrics port and the API description
(``OPTIONS /``, ``GET /api-description``) need none. ``/token?type=management|inference`` on the management port
takes the API key and makes a new key (and expiry) of that type. Any failure is a 400 ``InvalidKeyException``.

Our addition for containers: ``MODELSERVER_TOKEN`` (or ``MODELSERVER_TOKEN_FILE``, a file holding it) is a fixed
token accepted for every scope besides the generated keys. It never expires and is removed from the server's
environment at start, so model workers do not inherit it.

Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import math
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ConfigError, ServerConfig
from .dialects import torchserve_http as http
from .errors import ServeError
from .http_messages import Request, Response
from .router import ANY, Route

if TYPE_CHECKING:
    from .listener import Dialect, Listener

__all__ = [
    "API",
    "INFERENCE",
    "KEY_FILE_NAME",
    "MANAGEMENT",
    "PUBLIC",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "InvalidKey",
    "TokenApi",
    "TokenAuthorization",
    "TokenGuard",
    "from_config",
]

logger = logging.getLogger("modelserver.auth")

INFERENCE = "inference"
MANAGEMENT = "management"
API = "API"
PUBLIC = "none"
"""A ``Route.auth`` value that opens the route without a token."""

KEY_FILE_NAME = "key_file.json"
TOKEN_ENV = "MODELSERVER_TOKEN"
TOKEN_FILE_ENV = "MODELSERVER_TOKEN_FILE"
DEFAULT_EXPIRATION_MINUTES = 60.0
_SHORT_FIXED_TOKEN = 16

AUTHORIZATION_FAILED = "Token Authorization failed. Token either incorrect, expired, or not provided correctly"
AUTHENTICATION_FAILED = "Token Authentication failed. Token either incorrect, expired, or not provided correctly"

_BEARER = re.compile(r"Bearer\s+(\S+)", re.ASCII)
_API_DESCRIPTION_PATTERNS = frozenset({"/", "/api-description"})


class InvalidKey(ServeError):
    status = 400
    type_name = "InvalidKeyException"

    def __init__(self, message: str = AUTHORIZATION_FAILED) -> None:
        super().__init__(message)


def new_key() -> str:
    """6 random bytes, URL-safe base64: 8 characters, as TorchServe makes them."""
    return base64.urlsafe_b64encode(secrets.token_bytes(6)).decode("ascii")


def bearer_token(header: str | None) -> str | None:
    """The token of ``Bearer <token>`` (the whole header must match ``^Bearer\\s+(\\S+)$``), else None."""
    if header is None:
        return None
    found = _BEARER.fullmatch(header)
    return found[1] if found is not None else None


def iso_instant(timestamp: float) -> str:
    """Java's ``Instant.toString()``: UTC, ``Z``, and 0, 3 or 6 fraction digits as the value needs."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    micros = moment.microsecond
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if micros == 0:
        return text + "Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


@dataclass(frozen=True, slots=True)
class _Key:
    value: str
    expires: float | None
    """Epoch seconds; None for the API key, which never expires."""
    header: str = ""
    """``Bearer <value>``: the usual header, compared whole so that the hot path needs no regular expression."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "header", f"Bearer {self.value}")


class TokenAuthorization:
    """The three keys, their expiry, the key file, and the optional fixed token.

    ``clock`` (epoch seconds) and ``make_key`` are injectable for tests. Keys exist from construction on; the key
    file is written by :meth:`write_key_file` (at server start) and rewritten on every regeneration.
    """

    def __init__(
        self,
        key_file: Path,
        expiration_minutes: float = DEFAULT_EXPIRATION_MINUTES,
        fixed_token: str | None = None,
        clock: Callable[[], float] = time.time,
        make_key: Callable[[], str] = new_key,
    ) -> None:
        self.key_file = key_file
        self._lifetime = int(expiration_minutes * 60)  # TorchServe: (long) (minutes * 60) seconds
        self._fixed_header = None if fixed_token is None else f"Bearer {fixed_token}"
        self._clock = clock
        self._make_key = make_key
        self._keys = {
            MANAGEMENT: self._fresh(),
            INFERENCE: self._fresh(),
            API: _Key(make_key(), None),
        }
        self.changed: Callable[[], Awaitable[None]] | None = None
        """With several frontend processes: hands a regenerated key to every other frontend before ``/token``
        answers."""

    def _fresh(self) -> _Key:
        return _Key(self._make_key(), self._clock() + self._lifetime)

    # -- checking (the hot path) ----------------------------------------------------------------

    def allows(self, scopes: Iterable[str], header: str | None) -> bool:
        """Whether the ``Authorization`` header carries a valid, unexpired key of one of ``scopes``.

        The header is first compared whole with ``Bearer <key>``; only a header spaced otherwise (a tab, two spaces)
        is parsed with TorchServe's pattern ``^Bearer\\s+(\\S+)$`` and compared again in that form.
        """
        if header is None or not header.isascii():
            return False
        for scope in scopes:
            key = self._keys[scope]
            if hmac.compare_digest(header, key.header):
                return key.expires is None or self._clock() < key.expires
        fixed = self._fixed_header
        if fixed is not None and hmac.compare_digest(header, fixed):
            return True
        token = bearer_token(header)
        if token is None:
            return False
        canonical = f"Bearer {token}"
        return canonical != header and self.allows(scopes, canonical)

    # -- keys and the key file ------------------------------------------------------------------

    def regenerate(self, scope: str) -> None:
        """A new key and expiry for ``management`` or ``inference``; the key file is rewritten first (on failure
        the old key stays in force and OSError propagates)."""
        if scope not in (MANAGEMENT, INFERENCE):
            raise ValueError(f"only the management and inference keys can be regenerated, not {scope!r}")
        keys = {**self._keys, scope: self._fresh()}
        self._write(keys)
        self._keys = keys
        logger.info("Token authorization: the %s key was regenerated", scope)

    def shared(self) -> dict[str, Any]:
        """The keys (and the fixed token) as data, for the other frontend processes: one server, one set of keys."""
        keys = {scope: [key.value, key.expires] for scope, key in self._keys.items()}
        fixed = self._fixed_header.removeprefix("Bearer ") if self._fixed_header is not None else None
        return {"keys": keys, "fixed": fixed}

    def adopt(self, shared: Mapping[str, Any]) -> None:
        """Use the keys another process made (:meth:`shared`); the key file is that process's to write."""
        self._keys = {scope: _Key(str(value), expires) for scope, (value, expires) in shared["keys"].items()}
        if "fixed" in shared:
            fixed = shared["fixed"]
            self._fixed_header = None if fixed is None else f"Bearer {fixed}"

    def key_file_document(self) -> dict[str, Any]:
        return _document(self._keys)

    def write_key_file(self) -> None:
        """Write ``key_file.json`` at start. A failure stops the server (ConfigError), unless a fixed token is set:
        then the generated keys are unusable but the fixed token still opens every API."""
        try:
            self._write(self._keys)
        except OSError as err:
            if self._fixed_header is None:
                raise ConfigError(
                    f"token authorization: cannot write {self.key_file}: {err.strerror}; start the server in a "
                    f"writable directory, set {TOKEN_ENV}, or disable token authorization"
                ) from None
            logger.warning("Cannot write %s (%s); only the fixed token will work", self.key_file, err.strerror)
            return
        logger.info(
            "Token authorization is enabled: every API call needs a key. Key file: %s. "
            "See docs/security.md (TorchServe: docs/token_authorization_api.md).",
            self.key_file,
        )

    def remove_key_file(self) -> None:
        """Delete the key file if it still holds our keys (another server may have replaced it since)."""
        try:
            current = json.loads(self.key_file.read_text())
        except (OSError, ValueError):
            return
        if current == _document(self._keys):
            self.key_file.unlink(missing_ok=True)

    def _write(self, keys: Mapping[str, _Key]) -> None:
        """Write atomically: a private temporary file (0600, never following a symlink), then rename it over."""
        data = json.dumps(_document(keys), indent=2).encode()
        temporary = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}.tmp")
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)  # exactly rw-------, whatever the umask
            with os.fdopen(fd, "wb", closefd=False) as out:
                out.write(data)
        finally:
            os.close(fd)
        try:
            os.replace(temporary, self.key_file)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise


def _document(keys: Mapping[str, _Key]) -> dict[str, Any]:
    management, inference = keys[MANAGEMENT], keys[INFERENCE]
    assert management.expires is not None and inference.expires is not None
    return {
        MANAGEMENT: {"key": management.value, "expiration time": iso_instant(management.expires)},
        INFERENCE: {"key": inference.value, "expiration time": iso_instant(inference.expires)},
        API: {"key": keys[API].value},
    }


# -- configuration --------------------------------------------------------------------------------------------------


def from_config(
    config: ServerConfig, environ: MutableMapping[str, str] | None = None, cwd: str | None = None
) -> TokenAuthorization | None:
    """The server's token authorization, or None when ``disable_token_authorization`` is set.

    The fixed token variables are read from ``environ`` (default ``os.environ``) and removed from it either way.
    """
    environ = os.environ if environ is None else environ
    fixed = _fixed_token(environ)
    if config.disable_token_authorization:
        logger.info("Token authorization is disabled")
        return None
    key_file = Path(cwd if cwd is not None else os.getcwd()) / KEY_FILE_NAME
    return TokenAuthorization(key_file, expiration_minutes(config.properties), fixed)


def expiration_minutes(properties: Mapping[str, str]) -> float:
    """``token_expiration_min`` as TorchServe reads it: a float; a malformed value logs an error and means 60."""
    value = properties.get("token_expiration_min")
    if value is None:
        return DEFAULT_EXPIRATION_MINUTES
    try:
        minutes = float(value.strip())
    except ValueError:
        minutes = math.nan
    if not math.isfinite(minutes):
        logger.error("token_expiration_min: %r is not a valid number; using %g", value, DEFAULT_EXPIRATION_MINUTES)
        return DEFAULT_EXPIRATION_MINUTES
    return minutes


def _fixed_token(environ: MutableMapping[str, str]) -> str | None:
    direct = environ.pop(TOKEN_ENV, None)
    path = environ.pop(TOKEN_FILE_ENV, None)
    if direct and path:
        raise ConfigError(f"set {TOKEN_ENV} or {TOKEN_FILE_ENV}, not both")
    source = TOKEN_ENV
    token = direct
    if path:
        source = TOKEN_FILE_ENV
        try:
            token = Path(path).read_text().strip()
        except OSError as err:
            raise ConfigError(f"{TOKEN_FILE_ENV}: cannot read {path!r}: {err.strerror}") from None
    if not token:
        return None
    if not token.isascii() or _BEARER.fullmatch(f"Bearer {token}") is None:
        raise ConfigError(f"{source}: the token must be printable ASCII without whitespace")
    if len(token) < _SHORT_FIXED_TOKEN:
        logger.warning("%s is shorter than %d characters; use a long random token", source, _SHORT_FIXED_TOKEN)
    logger.info("Token authorization: a fixed token from %s is accepted for every API", source)
    return token


# -- enforcement ----------------------------------------------------------------------------------------------------


class TokenGuard:
    """A listener guard: the route's scope(s) must be satisfied by the request's ``Authorization`` header.

    ``scopes`` maps ``id(route)`` to the scopes whose keys open it (empty: no token needed). A request that matches
    no route (404, 405) needs a key of one of ``default`` scopes, as TorchServe checks the token before routing.
    """

    __slots__ = ("_auth", "_default", "_scopes")

    def __init__(self, auth: TokenAuthorization, scopes: Mapping[int, tuple[str, ...]], default: tuple[str, ...]):
        self._auth = auth
        self._scopes = dict(scopes)
        self._default = default

    def __call__(self, request: Request, route: Route | None) -> None:
        scopes = self._scopes.get(id(route), self._default) if route is not None else self._default
        if scopes and not self._auth.allows(scopes, request.headers.get("Authorization")):
            raise InvalidKey()


class TokenApi:
    """The ``/token`` route of the management port, as a dialect of its own."""

    def __init__(self, auth: TokenAuthorization) -> None:
        self._auth = auth

    def routes(self) -> Iterable[Route]:
        yield Route(
            ANY,
            "/token",
            self.token,
            summary="Regenerate the management or inference key (token authorization); needs the API key.",
            operation_id="token",
            tags=("token",),
            responses={200: "The key was regenerated and key_file.json rewritten", 400: "InvalidKeyException"},
            auth=PUBLIC,  # checked by the handler: its failures say "Authentication", not "Authorization"
        )

    def error_response(self, error: ServeError, request: Request) -> Response:
        return http.error_response(error, request)

    async def token(self, request: Request, params: dict[str, str]) -> Response:
        if not self._auth.allows((API,), request.headers.get("Authorization")):
            raise InvalidKey(AUTHENTICATION_FAILED)
        scope = request.query.get("type")
        if scope not in (MANAGEMENT, INFERENCE):
            raise InvalidKey(AUTHENTICATION_FAILED)
        try:
            self._auth.regenerate(scope)
        except OSError as err:
            logger.error("Failed to update key file: %s", err.strerror)
            raise InvalidKey(AUTHENTICATION_FAILED) from None
        if self._auth.changed is not None:
            await self._auth.changed()
        headers = http.response_headers(http.new_request_id())
        headers["Content-Type"] = "application/json"
        return Response(200, headers, b"\n")  # TorchServe sends an empty JSON string plus "\n"


def protect(auth: TokenAuthorization, listeners: Iterable[Listener], scopes: Mapping[Dialect, str]) -> None:
    """Put token authorization on ``listeners``.

    A listener that serves a dialect in ``scopes`` is protected as a whole: a route needs its ``Route.auth`` scope
    if set (:data:`PUBLIC`: none), else its dialect's scope, else (a dialect not in ``scopes``) the listener's; the
    API description needs none. ``/token`` joins the listener that serves management. Listeners without such a
    dialect (metrics) stay open.
    """
    for listener in listeners:
        dialects = [dialect for dialect in listener.dialects if dialect in scopes]
        if not dialects:
            continue
        if any(scopes[dialect] == MANAGEMENT for dialect in dialects):
            listener.mount(TokenApi(auth))
        default = tuple(dict.fromkeys(scopes[dialect] for dialect in dialects))
        route_scopes = {
            id(route): _route_scopes(route, (scopes[owner],) if owner in scopes else default)
            for route, owner in listener.owners()
        }
        listener.guards.insert(0, TokenGuard(auth, route_scopes, default))


def _route_scopes(route: Route, owner_scopes: tuple[str, ...]) -> tuple[str, ...]:
    if route.auth is not None:
        return () if route.auth == PUBLIC else (route.auth,)
    if route.compiled.template in _API_DESCRIPTION_PATTERNS:
        return ()
    return owner_scopes
