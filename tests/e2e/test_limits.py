"""Queue bounds, response and startup timeouts, with a server configured tight on purpose."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.server import TEST_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("limits")
    models_block = json.dumps({"slowload": {"1.0": {"startupTimeout": 2}}})
    running = start_server(
        tmp,
        {"kit": TEST_MODELS / "kit", "slowload": TEST_MODELS / "slowload"},
        properties={"job_queue_size": "2", "default_response_timeout": "2", "models": models_block},
        wait_models=["kit"],
    )
    yield running
    assert running.stop() == 0


def post(server: RunningServer, body: dict, timeout: float = 30) -> requests.Response:
    return requests.post(f"{server.inference}/predictions/kit", json=body, timeout=timeout)


def test_queue_full_answers_503_at_once(server: RunningServer) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def call(body: dict) -> None:
        status = post(server, body).status_code
        with lock:
            results.append(status)

    busy = threading.Thread(target=call, args=({"op": "sleep", "seconds": 1.5},))
    busy.start()
    time.sleep(0.3)  # the worker is now busy; the queue (capacity 2) is empty
    queued = [threading.Thread(target=call, args=({"op": "info"},)) for _ in range(2)]
    for thread in queued:
        thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    overflow = post(server, {"op": "info"})
    assert time.monotonic() - started < 1.0
    assert overflow.status_code == 503
    assert overflow.json()["message"].startswith('Model "kit" has no worker to serve inference request.')
    for thread in [busy, *queued]:
        thread.join(30)
    assert sorted(results) == [200, 200, 200]


def test_response_timeout_kills_worker_answers_500_and_restarts(server: RunningServer) -> None:
    [pid] = server.worker_pids("kit")
    started = time.monotonic()
    response = post(server, {"op": "sleep", "seconds": 30})
    elapsed = time.monotonic() - started
    assert response.status_code == 500
    assert response.json()["message"] == "Worker died."
    assert 1.5 < elapsed < 6
    server.wait_ready(["kit"], timeout=30)
    assert server.worker_pids("kit") != [pid]
    assert post(server, {"op": "info"}).status_code == 200


def test_startup_timeout_bounds_model_load(server: RunningServer) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "no 'loaded' within" not in server.logs():
        time.sleep(0.2)
    assert "W-" in server.logs() and "slowload_1.0: no 'loaded' within 2 s (startupTimeout)" in server.logs()
    [described] = server.describe("slowload")
    assert described["startupTimeout"] == 2
    assert all(w["status"] == "UNLOADING" for w in described["workers"])
    ping = requests.get(f"{server.inference}/ping", timeout=10)
    assert ping.status_code == 500
    assert ping.json() == {"status": "Unhealthy"}
    # kit still serves while slowload's worker keeps retrying
    response = requests.post(f"{server.inference}/predictions/kit", json={"op": "info"}, timeout=10)
    assert response.status_code == 200


def test_handler_exit_answers_worker_died(server: RunningServer) -> None:
    response = post(server, {"op": "exit"})
    assert response.status_code == 500
    assert response.json() == {"code": 500, "type": "InternalServerException", "message": "Worker died."}
    server.wait_ready(["kit"], timeout=30)
    assert post(server, {"op": "info"}).status_code == 200
