"""What TorchServe's own test configs and procedures expect, through the real CLI (issue: TorchServe parity).

One server runs with values from TorchServe's own test config.properties (``max_response_size=2047093252``,
``unregister_model_timeout=0``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
import requests

from tests.server import EXAMPLE_MODELS, RunningServer, start_server, wait_gone

pytestmark = pytest.mark.e2e

NEVER_LOADS = """
def _deep_reason():
    raise RuntimeError("weights are missing: parity-check")


class NeverLoads:
    def initialize(self, context):
        _deep_reason()

    def handle(self, data, context):
        return data
"""


def write_model_dir(store: Path, name: str, handler_text: str) -> None:
    directory = store / name
    (directory / "MAR-INF").mkdir(parents=True)
    (directory / "handler.py").write_text(handler_text)
    manifest = {"runtime": "python", "model": {"modelName": name, "handler": "handler.py", "modelVersion": "1.0"}}
    (directory / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("parity")
    write_model_dir(tmp / "model_store", "neverloads", NEVER_LOADS)
    properties = {
        "load_models": "echo",
        "max_response_size": "2047093252",  # TorchServe's test config; with batches of 4, frames above the wire limit
        "models": json.dumps({"echo": {"1.0": {"batchSize": 4, "maxBatchDelay": 1}}}),
        "unregister_model_timeout": "0",
    }
    running = start_server(tmp, {"echo": EXAMPLE_MODELS / "echo"}, properties=properties, cli=["--enable-model-api"])
    yield running
    assert running.stop() == 0


def test_a_response_size_above_the_wire_limit_starts_and_says_so(server: RunningServer) -> None:
    assert requests.get(server.inference + "/ping", timeout=10).json() == {"status": "Healthy"}
    answer = requests.post(server.inference + "/predictions/echo", data=b"big limits", timeout=10)
    assert (answer.status_code, answer.content) == (200, b"big limits")
    assert "frames are capped" in server.logs()


def test_form_values_reach_the_handler_byte_exact(server: RunningServer) -> None:
    every_byte = bytes(range(256))
    body = "data=" + quote_from_bytes(every_byte, safe="")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = requests.post(server.inference + "/predictions/echo", data=body, headers=headers, timeout=10)
    assert answer.status_code == 200
    assert answer.content == every_byte  # TorchServe reads form values as ISO-8859-1: one byte each


def test_a_killed_worker_is_logged_as_torchserve_logs_it_and_recovers(server: RunningServer) -> None:
    [pid] = server.worker_pids("echo")
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    deadline = time.monotonic() + 20
    while "Auto recovery succeeded, reset recoveryStartTS" not in server.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    logs = server.logs()
    assert "Worker disconnected" in logs
    assert "Auto recovery succeeded, reset recoveryStartTS" in logs
    server.wait_ready(["echo"])
    assert requests.post(server.inference + "/predictions/echo", data=b"back", timeout=10).content == b"back"


def test_every_failed_load_attempt_logs_the_handlers_traceback(server: RunningServer) -> None:
    response = requests.post(
        server.management + "/models",
        params={"url": "neverloads", "initial_workers": 1, "synchronous": "false"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 20
    while server.logs().count("in _deep_reason") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    logs = server.logs()
    assert logs.count("in _deep_reason") >= 2, "each attempt logs the full traceback, down to the handler's frame"
    assert logs.count("Traceback (most recent call last)") >= 2
    requests.delete(server.management + "/models/neverloads", timeout=30)


def test_unregister_that_outlasts_its_timeout_is_408_and_the_model_is_gone(server: RunningServer) -> None:
    response = requests.post(
        server.management + "/models", params={"url": "echo", "model_name": "echo2", "initial_workers": 1}, timeout=60
    )
    assert response.status_code == 200, response.text
    [pid] = server.worker_pids("echo2")
    response = requests.delete(server.management + "/models/echo2", timeout=30)
    assert response.status_code == 408
    assert response.json() == {
        "code": 408,
        "type": "RequestTimeoutException",
        "message": "Timed out while cleaning resources: echo2",
    }
    assert requests.get(server.management + "/models/echo2", timeout=10).status_code == 404
    wait_gone(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the workers still stop, after the answer
