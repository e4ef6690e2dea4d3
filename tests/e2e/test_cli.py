"""The ``modelserver`` command line: start, stop, pid file, config errors, unix sockets, env overrides."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import requests

from modelserver import __version__
from tests.server import EXAMPLE_MODELS, free_port, start_server, wait_gone

pytestmark = pytest.mark.e2e


def cli(*args: str, tmp: Path, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the CLI to completion. Output goes through files: a detached server keeps its stdout open."""
    out, err = tmp / f"out-{time.monotonic_ns()}.txt", tmp / f"err-{time.monotonic_ns()}.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        code = subprocess.run(
            [sys.executable, "-m", "modelserver", *args],
            cwd=tmp,
            env={**os.environ, "TMPDIR": str(tmp), **(env or {})},
            stdout=stdout,
            stderr=stderr,
            timeout=timeout,
        ).returncode
    return subprocess.CompletedProcess(args, code, out.read_text(), err.read_text())


def test_version(tmp_path: Path) -> None:
    result = cli("--version", tmp=tmp_path)
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_malformed_value_is_a_clear_startup_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.properties"
    config.write_text("job_queue_size=lots\n")
    result = cli("--start", "--foreground", "--ncs", "--ts-config", str(config), tmp=tmp_path)
    assert result.returncode != 0
    assert "job_queue_size" in result.stderr
    assert "lots" in result.stderr


def test_a_port_in_use_is_a_clear_startup_error(tmp_path: Path) -> None:
    """Another program holds the inference port: one line naming the API, the address and why, no traceback."""
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = tmp_path / "config.properties"
    config.write_text(
        f"inference_address=http://127.0.0.1:{port}\n"
        f"management_address=http://127.0.0.1:{free_port()}\n"
        f"metrics_address=http://127.0.0.1:{free_port()}\n"
        f"model_store={EXAMPLE_MODELS}\nload_models=echo\ndisable_token_authorization=true\n"
    )
    try:
        result = cli("--start", "--foreground", "--ncs", "--ts-config", str(config), tmp=tmp_path)
    finally:
        taken.close()
    assert result.returncode != 0
    assert f"cannot bind the inference API to http://127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    result = cli("--start", "--foreground", "--ncs", "--ts-config", str(tmp_path / "nope.properties"), tmp=tmp_path)
    assert result.returncode != 0
    assert "nope.properties" in result.stderr


def test_detached_start_second_instance_and_stop(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.properties"
    config.write_text(
        f"inference_address=http://127.0.0.1:{port}\n"
        f"management_address=http://127.0.0.1:{free_port()}\n"
        f"metrics_address=http://127.0.0.1:{free_port()}\n"
    )
    started = cli("--start", "--ncs", "--ts-config", str(config), tmp=tmp_path)
    assert started.returncode == 0
    pid = int((tmp_path / ".model_server.pid").read_text())
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 400:
                    break  # up, and token authorization is on by default
            except requests.ConnectionError:
                time.sleep(0.05)
        key = json.loads((tmp_path / "key_file.json").read_text())["inference"]["key"]
        headers = {"Authorization": f"Bearer {key}"}
        assert requests.get(f"http://127.0.0.1:{port}/ping", headers=headers, timeout=5).json() == {"status": "Healthy"}
        second = cli("--start", "--ncs", "--ts-config", str(config), tmp=tmp_path)
        assert second.returncode == 1
        assert "TorchServe is already running, please use torchserve --stop to stop TorchServe." in second.stdout
        stopped = cli("--stop", tmp=tmp_path)
        assert stopped.returncode == 0
        assert "TorchServe has stopped." in stopped.stdout
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert not (tmp_path / ".model_server.pid").exists()
        assert not (tmp_path / "key_file.json").exists()
        assert "TorchServe is not currently running." in cli("--stop", tmp=tmp_path).stdout
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def test_unix_socket_address_and_models_flag(tmp_path: Path) -> None:
    sock = tmp_path / "inference.sock"
    server = start_server(
        tmp_path,
        {},
        properties={"inference_address": f"unix:{sock}", "load_models": ""},
        cli=["--models", f"echo={EXAMPLE_MODELS / 'echo'}"],
        wait_models=["echo"],
    )
    try:

        async def call() -> tuple[int, bytes]:
            async with (
                aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as session,
                session.post("http://localhost/predictions/echo", data=b"over unix") as response,
            ):
                return response.status, await response.read()

        assert asyncio.run(call()) == (200, b"over unix")
    finally:
        assert server.stop() == 0


def test_env_overrides_only_with_enable_envvars_config(tmp_path: Path) -> None:
    env = {"TS_JOB_QUEUE_SIZE": "7"}
    plain = start_server(tmp_path / "a", {"echo": EXAMPLE_MODELS / "echo"}, env=env)
    try:
        [described] = plain.describe("echo")
        assert described["jobQueueStatus"]["remainingCapacity"] == 100
    finally:
        plain.stop()
    enabled = start_server(
        tmp_path / "b", {"echo": EXAMPLE_MODELS / "echo"}, properties={"enable_envvars_config": "true"}, env=env
    )
    try:
        [described] = enabled.describe("echo")
        assert described["jobQueueStatus"]["remainingCapacity"] == 7
    finally:
        enabled.stop()


def test_unknown_keys_are_kept_and_logged(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"echo": EXAMPLE_MODELS / "echo"}, properties={"some_future_key": "1"})
    try:
        assert "some_future_key" in server.logs()
        assert requests.post(f"{server.inference}/predictions/echo", data=b"ok", timeout=10).content == b"ok"
    finally:
        assert server.stop() == 0


def test_sigterm_stops_workers_and_exits_zero(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"echo": EXAMPLE_MODELS / "echo"})
    [worker] = server.worker_pids("echo")
    assert server.stop() == 0
    wait_gone(worker, 10)
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)


def test_idle_keep_alive_connection_does_not_delay_shutdown(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"echo": EXAMPLE_MODELS / "echo"})
    with requests.Session() as session:
        assert session.get(f"{server.inference}/ping", timeout=5).status_code == 200  # the connection stays open
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 10
