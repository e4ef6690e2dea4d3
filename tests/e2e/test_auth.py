"""Token authorization through the real CLI, on by default as in TorchServe (spec section 5)."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate

from tests.server import EXAMPLE_MODELS, RunningServer, free_port, start_server

pytestmark = pytest.mark.e2e

AUTHORIZATION_FAILED = {
    "code": 400,
    "type": "InvalidKeyException",
    "message": "Token Authorization failed. Token either incorrect, expired, or not provided correctly",
}
AUTHENTICATION_FAILED = {
    "code": 400,
    "type": "InvalidKeyException",
    "message": "Token Authentication failed. Token either incorrect, expired, or not provided correctly",
}
FIXED_TOKEN = "container-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("auth"),
        {"echo": EXAMPLE_MODELS / "echo"},
        properties={"enable_model_api": "true"},
        env={"MODELSERVER_TOKEN": FIXED_TOKEN},
        auth=True,
    )
    yield running
    assert running.stop() == 0
    assert not (running.workdir / "key_file.json").exists()  # removed at shutdown


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def refused(response: requests.Response, body: dict = AUTHORIZATION_FAILED) -> bool:
    return response.status_code == 400 and response.json() == body and response.headers["Connection"] == "close"


def test_key_file_is_private_and_shaped_like_torchserves(server: RunningServer) -> None:
    path = server.workdir / "key_file.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    keys = json.loads(path.read_text())
    assert list(keys) == ["management", "inference", "API"]
    for scope in ("management", "inference"):
        assert list(keys[scope]) == ["key", "expiration time"]
        assert len(keys[scope]["key"]) == 8
        assert keys[scope]["expiration time"].endswith("Z")
    assert list(keys["API"]) == ["key"] and len(keys["API"]["key"]) == 8
    assert len({keys[scope]["key"] for scope in keys}) == 3


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/ping", None), ("POST", "/predictions/echo", b"hi"), ("GET", "/nowhere", None)],
)
def test_inference_port_needs_the_inference_key(server: RunningServer, method: str, path: str, body: bytes) -> None:
    url = server.inference + path
    assert refused(requests.request(method, url, data=body, timeout=10))
    assert refused(requests.request(method, url, data=body, headers=bearer("wrongkey"), timeout=10))
    assert refused(requests.request(method, url, data=body, headers=server.headers("management"), timeout=10))
    assert refused(requests.request(method, url, data=body, headers=server.headers("API"), timeout=10))
    malformed = {"Authorization": server.headers("inference")["Authorization"].replace("Bearer", "Basic")}
    assert refused(requests.request(method, url, data=body, headers=malformed, timeout=10))
    response = requests.request(method, url, data=body, headers=server.headers("inference"), timeout=10)
    assert response.status_code == (404 if path == "/nowhere" else 200)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/models"),
        ("GET", "/models/echo"),
        ("POST", "/models?url=echo&model_name=again"),  # registering runs code: never without the key
        ("PUT", "/models/echo?min_worker=2"),  # starts worker processes
        ("DELETE", "/models/echo"),
    ],
)
def test_management_port_needs_the_management_key(server: RunningServer, method: str, path: str) -> None:
    url = server.management + path
    assert refused(requests.request(method, url, timeout=10))
    assert refused(requests.request(method, url, headers=server.headers("inference"), timeout=10))
    assert refused(requests.request(method, url, headers=server.headers("API"), timeout=10))


def test_management_key_opens_the_management_api(server: RunningServer) -> None:
    response = requests.get(server.management + "/models", headers=server.headers("management"), timeout=10)
    assert response.status_code == 200
    assert [m["modelName"] for m in response.json()["models"]] == ["echo"]


def test_metrics_and_api_description_need_no_token(server: RunningServer) -> None:
    assert requests.get(server.metrics + "/metrics", timeout=10).status_code == 200
    for base in (server.inference, server.management, server.metrics):
        assert requests.options(base + "/", timeout=10).json()["openapi"] == "3.0.1"
        assert requests.get(base + "/api-description", timeout=10).json()["openapi"] == "3.0.1"
    management = requests.get(server.management + "/api-description", timeout=10).json()
    validate(management)
    assert "/token" in management["paths"]


def test_token_api_regenerates_a_key_and_invalidates_the_old_one(server: RunningServer) -> None:
    old = server.keys()
    token = server.management + "/token"
    assert refused(requests.get(token + "?type=inference", timeout=10), AUTHENTICATION_FAILED)
    assert refused(requests.get(token + "?type=inference", headers=server.headers("management"), timeout=10),
                   AUTHENTICATION_FAILED)  # fmt: skip
    assert refused(requests.get(token + "?type=API", headers=server.headers("API"), timeout=10), AUTHENTICATION_FAILED)
    assert refused(requests.get(token, headers=server.headers("API"), timeout=10), AUTHENTICATION_FAILED)
    response = requests.get(token + "?type=inference", headers=server.headers("API"), timeout=10)
    assert (response.status_code, response.content) == (200, b"\n")
    assert response.headers["Content-Type"] == "application/json"
    new = server.keys()
    assert new["management"] == old["management"] and new["API"] == old["API"]
    assert new["inference"]["key"] != old["inference"]["key"]
    assert new["inference"]["expiration time"] >= old["inference"]["expiration time"]
    assert stat.S_IMODE(os.stat(server.workdir / "key_file.json").st_mode) == 0o600
    assert refused(requests.get(server.inference + "/ping", headers=bearer(old["inference"]["key"]), timeout=10))
    assert requests.get(server.inference + "/ping", headers=server.headers("inference"), timeout=10).status_code == 200
    assert refused(requests.get(server.inference + "/token?type=inference", headers=server.headers("API"), timeout=10))


def test_fixed_token_from_the_environment_opens_every_api(server: RunningServer) -> None:
    headers = bearer(FIXED_TOKEN)
    assert requests.get(server.inference + "/ping", headers=headers, timeout=10).status_code == 200
    assert requests.post(server.inference + "/predictions/echo", data=b"x", headers=headers, timeout=10).content == b"x"
    assert requests.get(server.management + "/models", headers=headers, timeout=10).status_code == 200
    for pid in server.worker_pids("echo"):  # model code never sees it
        assert b"MODELSERVER_TOKEN" not in Path(f"/proc/{pid}/environ").read_bytes()


def test_keys_never_reach_the_logs(server: RunningServer) -> None:
    time.sleep(1.2)  # the access log is flushed within a second
    texts = [server.logs()] + [p.read_text() for p in (server.workdir / "logs").glob("*.log")]
    keys = [entry["key"] for entry in server.keys().values()] + [FIXED_TOKEN]
    assert "access_log.log" in os.listdir(server.workdir / "logs")
    for key in keys:
        assert not any(key in text for text in texts)


def test_keys_expire_after_token_expiration_min(tmp_path: Path) -> None:
    running = start_server(tmp_path, {}, properties={"token_expiration_min": "0.05"}, auth=True)  # 3 seconds
    try:
        started = time.monotonic()
        ping = running.inference + "/ping"
        assert requests.get(ping, headers=running.headers("inference"), timeout=10).status_code == 200
        time.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
        assert refused(requests.get(ping, headers=running.headers("inference"), timeout=10))
        assert refused(requests.get(running.management + "/models", headers=running.headers("management"), timeout=10))
        response = requests.get(
            running.management + "/token?type=inference", headers=running.headers("API"), timeout=10
        )
        assert response.status_code == 200  # the API key never expires
        assert requests.get(ping, headers=running.headers("inference"), timeout=10).status_code == 200
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("properties", "env", "cli"),
    [
        ({"disable_token_authorization": "true"}, {}, []),
        ({"enable_envvars_config": "true"}, {"TS_DISABLE_TOKEN_AUTHORIZATION": "true"}, []),
        ({}, {}, ["--dt"]),
    ],
    ids=["property", "environment", "cli"],
)
def test_disabling_token_authorization(tmp_path: Path, properties: dict, env: dict, cli: list[str]) -> None:
    running = start_server(tmp_path, {}, properties=properties, env=env, cli=cli, auth=True)
    try:
        assert requests.get(running.inference + "/ping", timeout=10).status_code == 200
        assert requests.get(running.management + "/models", timeout=10).status_code == 200
        assert requests.get(running.management + "/token?type=inference", timeout=10).status_code == 404
        assert not (tmp_path / "key_file.json").exists()
    finally:
        running.stop()


def test_environment_disable_needs_enable_envvars_config(tmp_path: Path) -> None:
    running = start_server(tmp_path, {}, env={"TS_DISABLE_TOKEN_AUTHORIZATION": "true"}, auth=True)
    try:
        assert refused(requests.get(running.inference + "/ping", timeout=10))
    finally:
        running.stop()


def test_shared_inference_and_management_address_needs_each_apis_key(tmp_path: Path) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    running = start_server(
        tmp_path,
        {"echo": EXAMPLE_MODELS / "echo"},
        properties={"inference_address": address, "management_address": address},
        auth=True,
    )
    try:
        assert refused(requests.get(address + "/models", headers=running.headers("inference"), timeout=10))
        assert requests.get(address + "/models", headers=running.headers("management"), timeout=10).status_code == 200
        assert refused(requests.get(address + "/ping", headers=running.headers("management"), timeout=10))
        assert requests.get(address + "/ping", headers=running.headers("inference"), timeout=10).status_code == 200
        assert requests.get(address + "/api-description", timeout=10).status_code == 200
    finally:
        running.stop()
