"""Token authorization without a server: keys, expiry (with a fake clock), the key file, route scopes, the guard."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from modelserver import auth
from modelserver.auth import API, INFERENCE, MANAGEMENT, InvalidKey, TokenAuthorization
from modelserver.config import CliOptions, ConfigError, ServerConfig, load_config
from modelserver.errors import ServeError
from modelserver.http_messages import Request, Response
from modelserver.listener import Listener
from modelserver.router import ANY, Route

from .memory_request import MemoryRequest

AUTHORIZATION_FAILED = "Token Authorization failed. Token either incorrect, expired, or not provided correctly"
AUTHENTICATION_FAILED = "Token Authentication failed. Token either incorrect, expired, or not provided correctly"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def bearer(key: str) -> str:
    return f"Bearer {key}"


def make_auth(tmp_path: Path, minutes: float = 60.0, fixed: str | None = None, clock: Clock | None = None) -> Any:
    return TokenAuthorization(tmp_path / "key_file.json", minutes, fixed, clock=clock or Clock())


# -- keys, header parsing, expiry ----------------------------------------------------------------------------------


def test_keys_are_eight_url_safe_characters_from_six_random_bytes() -> None:
    keys = {auth.new_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(
        len(key) == 8 and set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for key in keys
    )


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("Bearer \t  abc", "abc"),
        ("Bearer abc ", None),  # the whole header must match ^Bearer\s+(\S+)$
        ("bearer abc", None),
        ("Bearerabc", None),
        ("Bearer a b", None),
        ("Basic abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_header_parsing(header: str | None, token: str | None) -> None:
    assert auth.bearer_token(header) == token


def test_each_scope_takes_its_own_key(tmp_path: Path) -> None:
    tokens = make_auth(tmp_path)
    keys = tokens.key_file_document()
    assert tokens.allows([INFERENCE], bearer(keys[INFERENCE]["key"]))
    assert tokens.allows([MANAGEMENT], bearer(keys[MANAGEMENT]["key"]))
    assert tokens.allows([API], bearer(keys[API]["key"]))
    assert not tokens.allows([INFERENCE], bearer(keys[MANAGEMENT]["key"]))
    assert not tokens.allows([MANAGEMENT], bearer(keys[INFERENCE]["key"]))
    assert not tokens.allows([MANAGEMENT], bearer(keys[API]["key"]))
    assert tokens.allows([INFERENCE, MANAGEMENT], bearer(keys[MANAGEMENT]["key"]))
    assert not tokens.allows([INFERENCE], None)
    assert not tokens.allows([INFERENCE], "Bearer ")
    assert not tokens.allows([INFERENCE], bearer("ünïcode"))
    assert tokens.allows([INFERENCE], "Bearer \t  " + keys[INFERENCE]["key"])  # ^Bearer\s+(\S+)$
    assert not tokens.allows([INFERENCE], "Bearer " + keys[INFERENCE]["key"] + " ")
    assert not tokens.allows([INFERENCE], keys[INFERENCE]["key"])


def test_management_and_inference_keys_expire_the_api_key_never(tmp_path: Path) -> None:
    clock = Clock()
    tokens = make_auth(tmp_path, minutes=0.5, clock=clock)
    keys = tokens.key_file_document()
    clock.now += 29.9
    assert tokens.allows([INFERENCE], bearer(keys[INFERENCE]["key"]))
    clock.now += 0.1  # TorchServe: expired unless now is before the expiry
    assert not tokens.allows([INFERENCE], bearer(keys[INFERENCE]["key"]))
    assert not tokens.allows([MANAGEMENT], bearer(keys[MANAGEMENT]["key"]))
    clock.now += 10 * 365 * 86400
    assert tokens.allows([API], bearer(keys[API]["key"]))


def test_expiry_truncates_to_whole_seconds_like_torchserve(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    tokens = make_auth(tmp_path, minutes=0.0251, clock=clock)  # 1.506 s -> (long) 1 s
    key = tokens.key_file_document()[INFERENCE]["key"]
    clock.now = 1000.99
    assert tokens.allows([INFERENCE], bearer(key))
    clock.now = 1001.0
    assert not tokens.allows([INFERENCE], bearer(key))


def test_regenerate_replaces_one_key_with_a_new_expiry(tmp_path: Path) -> None:
    clock = Clock()
    tokens = make_auth(tmp_path, minutes=1, clock=clock)
    tokens.write_key_file()
    before = tokens.key_file_document()
    clock.now += 50
    tokens.regenerate(INFERENCE)
    after = tokens.key_file_document()
    assert after[MANAGEMENT] == before[MANAGEMENT] and after[API] == before[API]
    assert after[INFERENCE]["key"] != before[INFERENCE]["key"]
    assert not tokens.allows([INFERENCE], bearer(before[INFERENCE]["key"]))
    clock.now += 30  # past the old expiry, inside the new one
    assert tokens.allows([INFERENCE], bearer(after[INFERENCE]["key"]))
    assert json.loads(tokens.key_file.read_text()) == after
    with pytest.raises(ValueError):
        tokens.regenerate(API)


def test_failed_key_file_write_keeps_the_old_key(tmp_path: Path) -> None:
    tokens = TokenAuthorization(tmp_path / "missing-dir" / "key_file.json")
    old = tokens.key_file_document()[MANAGEMENT]["key"]
    with pytest.raises(OSError):
        tokens.regenerate(MANAGEMENT)
    assert tokens.allows([MANAGEMENT], bearer(old))


def test_unwritable_key_file_is_a_config_error_unless_a_fixed_token_is_set(tmp_path: Path) -> None:
    missing = tmp_path / "missing-dir" / "key_file.json"
    with pytest.raises(ConfigError, match="cannot write"):
        TokenAuthorization(missing).write_key_file()
    TokenAuthorization(missing, fixed_token="a-long-container-secret").write_key_file()
    assert not missing.exists()


def test_fixed_token_opens_every_scope_and_never_expires(tmp_path: Path) -> None:
    clock = Clock()
    tokens = make_auth(tmp_path, minutes=1, fixed="a-long-container-secret", clock=clock)
    clock.now += 86400
    for scope in (INFERENCE, MANAGEMENT, API):
        assert tokens.allows([scope], bearer("a-long-container-secret"))
    assert not tokens.allows([INFERENCE], bearer("a-long-container-secreT"))


# -- the key file ----------------------------------------------------------------------------------------------------


def test_key_file_shape_and_mode(tmp_path: Path) -> None:
    tokens = make_auth(tmp_path, clock=Clock(1_700_000_000.801167))
    tokens.write_key_file()
    path = tmp_path / "key_file.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    document = json.loads(path.read_text())
    assert list(document) == ["management", "inference", "API"]
    assert list(document["management"]) == ["key", "expiration time"]
    assert list(document["API"]) == ["key"]
    assert document["inference"]["expiration time"] == "2023-11-14T23:13:20.801167Z"  # + 3600 s
    assert path.read_text().startswith('{\n  "management": {\n    "key": ')  # Gson's pretty printing


def test_key_file_mode_is_0600_even_over_a_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "key_file.json"
    path.write_text("{}")
    path.chmod(0o644)
    make_auth(tmp_path).write_key_file()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_key_file_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "key_file.json").symlink_to(victim)
    make_auth(tmp_path).write_key_file()
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "key_file.json").is_symlink()


def test_remove_key_file_only_when_it_is_ours(tmp_path: Path) -> None:
    tokens = make_auth(tmp_path)
    tokens.write_key_file()
    tokens.remove_key_file()
    assert not tokens.key_file.exists()
    tokens.write_key_file()
    tokens.key_file.write_text('{"another": "server"}')
    tokens.remove_key_file()
    assert tokens.key_file.exists()


@pytest.mark.parametrize(
    ("when", "text"),
    [(0.0, "1970-01-01T00:00:00Z"), (0.5, "1970-01-01T00:00:00.500Z"), (1.000123, "1970-01-01T00:00:01.000123Z")],
)
def test_iso_instant_prints_like_java(when: float, text: str) -> None:
    assert auth.iso_instant(when) == text


# -- configuration ---------------------------------------------------------------------------------------------------


def config(**properties: str) -> ServerConfig:
    disabled = properties.get("disable_token_authorization") == "true"
    return ServerConfig(default_workers_per_model=1, properties=properties, disable_token_authorization=disabled)


def test_from_config_reads_expiry_and_removes_the_fixed_token_from_the_environment(tmp_path: Path) -> None:
    environ = {"MODELSERVER_TOKEN": "container-secret-123456", "OTHER": "x"}
    tokens = auth.from_config(config(token_expiration_min="1.5"), environ, cwd=str(tmp_path))
    assert tokens is not None
    assert tokens.key_file == tmp_path / "key_file.json"
    assert environ == {"OTHER": "x"}
    assert tokens.allows([MANAGEMENT], bearer("container-secret-123456"))
    assert not tokens.key_file.exists()  # written at server start, not here


def test_from_config_disabled_still_scrubs_the_token(tmp_path: Path) -> None:
    environ = {"MODELSERVER_TOKEN": "container-secret-123456"}
    assert auth.from_config(config(disable_token_authorization="true"), environ, cwd=str(tmp_path)) is None
    assert environ == {}


def test_fixed_token_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-docker-secret-file\n")
    tokens = auth.from_config(config(), {"MODELSERVER_TOKEN_FILE": str(secret)}, cwd=str(tmp_path))
    assert tokens is not None and tokens.allows([INFERENCE], bearer("from-a-docker-secret-file"))


@pytest.mark.parametrize(
    "environ",
    [
        {"MODELSERVER_TOKEN": "has space"},
        {"MODELSERVER_TOKEN": "ünïcode-token-value"},
        {"MODELSERVER_TOKEN": "a" * 20, "MODELSERVER_TOKEN_FILE": "/x"},
        {"MODELSERVER_TOKEN_FILE": "/nonexistent/secret"},
    ],
)
def test_bad_fixed_token_is_a_config_error(tmp_path: Path, environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        auth.from_config(config(), environ, cwd=str(tmp_path))


@pytest.mark.parametrize(("value", "minutes"), [(None, 60.0), ("5", 5.0), ("0.05", 0.05), ("abc", 60.0), ("nan", 60.0)])
def test_expiration_minutes(value: str | None, minutes: float) -> None:
    properties = {} if value is None else {"token_expiration_min": value}
    assert auth.expiration_minutes(properties) == minutes


# -- the guard on listeners --------------------------------------------------------------------------------------


async def ok(request: Request, params: dict[str, str]) -> Response:
    return Response(200, {"Content-Type": "text/plain"}, b"ok")


class Dialect:
    def __init__(self, prefix: str, extra: Iterable[Route] = ()) -> None:
        self.prefix = prefix
        self.extra = list(extra)

    def routes(self) -> Iterable[Route]:
        yield Route(frozenset({"OPTIONS"}), "/", ok, operation_id="apiDescription")
        yield Route(frozenset({"GET"}), "/api-description", ok, operation_id="apiDescriptionGet")
        yield Route(ANY, f"/{self.prefix}", ok, operation_id=self.prefix)
        yield from self.extra

    def error_response(self, error: ServeError, request: Request) -> Response:
        body = json.dumps({"code": error.status, "message": error.message}).encode()
        return Response(error.status, {"Content-Type": "application/json"}, body)


def request(method: str, path: str, header: str | None = None) -> MemoryRequest:
    return MemoryRequest(method, path, headers={} if header is None else {"Authorization": header})


def status(listener: Listener, method: str, path: str, header: str | None = None) -> int:
    response = asyncio.run(listener.dispatch(request(method, path, header)))
    return response.status


def test_protect_shared_listener_needs_each_routes_own_key(tmp_path: Path) -> None:
    tokens = make_auth(tmp_path)
    keys = {scope: bearer(doc["key"]) for scope, doc in tokens.key_file_document().items()}
    inference, management = Dialect("ping"), Dialect("models")
    shared = Listener("inference", [inference, management], 1000)
    metrics = Listener("metrics", [Dialect("metrics")], 1000)
    auth.protect(tokens, [shared, metrics], {inference: INFERENCE, management: MANAGEMENT})
    assert status(shared, "GET", "/ping") == 400
    assert status(shared, "GET", "/ping", keys[INFERENCE]) == 200
    assert status(shared, "GET", "/ping", keys[MANAGEMENT]) == 400
    assert status(shared, "GET", "/models", keys[MANAGEMENT]) == 200
    assert status(shared, "GET", "/models", keys[INFERENCE]) == 400
    assert status(shared, "OPTIONS", "/") == 200  # the API description is open, and mounted once
    assert status(shared, "GET", "/api-description") == 200
    assert status(shared, "GET", "/nowhere") == 400  # the token is checked before routing
    assert status(shared, "GET", "/nowhere", keys[INFERENCE]) == 404
    assert status(shared, "GET", "/nowhere", keys[MANAGEMENT]) == 404
    assert status(shared, "GET", "/token?type=inference", keys[MANAGEMENT]) == 400
    assert status(metrics, "GET", "/metrics") == 200
    assert not metrics.guards


def test_routes_of_unlisted_dialects_are_protected_and_route_auth_wins(tmp_path: Path) -> None:
    tokens = make_auth(tmp_path)
    keys = {scope: bearer(doc["key"]) for scope, doc in tokens.key_file_document().items()}
    extra = [
        Route(ANY, "/open", ok, operation_id="open", auth=auth.PUBLIC),
        Route(ANY, "/admin", ok, operation_id="admin", auth=MANAGEMENT),
    ]
    inference, other = Dialect("ping", extra), Dialect("v2")
    listener = Listener("inference", [inference, other], 1000)
    auth.protect(tokens, [listener], {inference: INFERENCE})
    assert status(listener, "GET", "/v2") == 400
    assert status(listener, "GET", "/v2", keys[INFERENCE]) == 200
    assert status(listener, "GET", "/open") == 200
    assert status(listener, "GET", "/admin", keys[INFERENCE]) == 400
    assert status(listener, "GET", "/admin", keys[MANAGEMENT]) == 200


def test_token_api(tmp_path: Path) -> None:
    tokens = make_auth(tmp_path)
    tokens.write_key_file()
    keys = {scope: bearer(doc["key"]) for scope, doc in tokens.key_file_document().items()}
    management = Dialect("models")
    listener = Listener("management", [management], 1000)
    auth.protect(tokens, [listener], {management: MANAGEMENT})

    def call(path: str, header: str | None) -> tuple[int, bytes]:
        response = asyncio.run(listener.dispatch(request("GET", path, header)))
        return response.status, response.body

    for path, header in [
        ("/token?type=inference", keys[MANAGEMENT]),
        ("/token?type=inference", None),
        ("/token?type=API", keys[API]),
        ("/token?type=Inference", keys[API]),
        ("/token", keys[API]),
    ]:
        code, body = call(path, header)
        assert code == 400 and json.loads(body) == {
            "code": 400,
            "type": "InvalidKeyException",
            "message": AUTHENTICATION_FAILED,
        }, path
    assert call("/token?type=management", keys[API]) == (200, b"\n")
    assert status(listener, "GET", "/models", keys[MANAGEMENT]) == 400  # the old key is gone
    new = bearer(json.loads(tokens.key_file.read_text())[MANAGEMENT]["key"])
    assert status(listener, "GET", "/models", new) == 200


def test_invalid_key_error_is_torchserves() -> None:
    error = InvalidKey()
    assert (error.status, error.type_name, error.message) == (400, "InvalidKeyException", AUTHORIZATION_FAILED)


def test_secure_defaults_without_any_configuration(tmp_path: Path) -> None:
    loaded = load_config(CliOptions(ncs=True), {}, cwd=str(tmp_path))
    assert loaded.management_address.host == "127.0.0.1" and loaded.metrics_address.host == "127.0.0.1"
    assert loaded.inference_address.host == "127.0.0.1"
    assert not loaded.disable_token_authorization and not loaded.enable_model_api
    assert auth.from_config(loaded, {}, cwd=str(tmp_path)) is not None
