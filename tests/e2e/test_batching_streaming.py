"""Dynamic batching, chunked streaming with cancellation, worker death under load, graceful drain."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import urllib3

from tests.server import TEST_MODELS, RunningServer, start_server, wait_gone

pytestmark = pytest.mark.e2e

MODELS_BLOCK = json.dumps(
    {
        "kit": {"1.0": {"batchSize": 8, "maxBatchDelay": 400, "minWorkers": 1}},
        "streamer": {"1.0": {"minWorkers": 2}},
    }
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("batching")
    running = start_server(
        tmp,
        {"kit": TEST_MODELS / "kit", "streamer": TEST_MODELS / "streamer"},
        properties={"models": MODELS_BLOCK},
    )
    yield running
    assert running.stop() == 0


def kit(server: RunningServer, body: dict) -> requests.Response:
    return requests.post(f"{server.inference}/predictions/kit", json=body, timeout=30)


def concurrently(count: int, call) -> list:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def test_eight_simultaneous_requests_are_one_batch(server: RunningServer) -> None:
    started = time.monotonic()
    responses = concurrently(8, lambda: kit(server, {"op": "info"}))
    elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * 8
    assert [r.json()["batch"] for r in responses] == [8] * 8
    assert elapsed < 0.4 + 1.0  # a full batch does not wait for the whole window


def test_lone_request_waits_for_max_batch_delay_and_no_longer(server: RunningServer) -> None:
    kit(server, {"op": "info"})  # warm
    started = time.monotonic()
    response = kit(server, {"op": "info"})
    elapsed = time.monotonic() - started
    assert response.json()["batch"] == 1
    assert 0.38 <= elapsed < 0.9


def test_nine_requests_are_eight_plus_one(server: RunningServer) -> None:
    sizes = sorted(r.json()["batch"] for r in concurrently(9, lambda: kit(server, {"op": "info"})))
    assert sizes == [1] + [8] * 8


def test_batch_failure_fails_only_that_batch(server: RunningServer) -> None:
    bad = threading.Thread(target=lambda: kit(server, {"op": "raise"}))
    bad.start()
    bad.join()
    assert kit(server, {"op": "info"}).status_code == 200


def stream(server: RunningServer, body: dict) -> requests.Response:
    return requests.post(f"{server.inference}/predictions/streamer", json=body, stream=True, timeout=30)


def test_stream_of_n_pieces_arrives_as_n_chunks_first_before_the_end(server: RunningServer) -> None:
    started = time.monotonic()
    with stream(server, {"count": 5, "pause": 0.3}) as response:
        assert response.status_code == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert response.headers["X-Accel-Buffering"] == "no"
        pieces = []
        first_at = None
        for chunk in response.raw.read_chunked(decode_content=False):
            first_at = first_at or time.monotonic() - started
            pieces.append(chunk)
    total = time.monotonic() - started
    assert pieces == [f"piece-{i};".encode() for i in range(5)] + [b"end"]
    assert first_at is not None and first_at < total - 1.0


def test_large_pieces_stream_whole_and_in_order(server: RunningServer) -> None:
    """Pieces of 64 KiB and more travel from the worker as attachment frames (docs/protocol.md)."""
    with stream(server, {"count": 4, "pad": 70_000}) as response:
        assert response.status_code == 200
        pieces = list(response.raw.read_chunked(decode_content=False))
    assert b"".join(pieces) == b"".join(f"piece-{i};{'x' * 70_000}".encode() for i in range(4)) + b"end"


def test_client_closing_a_stream_stops_the_handler(server: RunningServer, tmp_path: Path) -> None:
    progress = tmp_path / "progress.json"
    with stream(server, {"count": 50, "pause": 0.1, "progress": str(progress)}) as response:
        chunks = response.raw.read_chunked(decode_content=False)
        assert next(chunks) == b"piece-0;"
        assert next(chunks) == b"piece-1;"
    deadline = time.monotonic() + 10
    state: dict = {}
    while time.monotonic() < deadline:
        if progress.exists():
            try:
                state = json.loads(progress.read_text())
            except ValueError:
                state = {}
            if state.get("state", "running") != "running":
                break
        time.sleep(0.1)
    assert state["state"] == "stopped: RequestCancelled"
    assert state["cancelled"] is True
    assert state["sent"] < 20
    with stream(server, {"count": 2}) as response:  # the worker serves on
        assert response.status_code == 200


def test_worker_killed_mid_stream_truncates_the_body(server: RunningServer) -> None:
    pids = set(server.worker_pids("streamer"))
    with stream(server, {"count": 50, "pause": 0.1}) as response:
        chunks = response.raw.read_chunked(decode_content=False)
        assert next(chunks) == b"piece-0;"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(urllib3.exceptions.ProtocolError):  # the chunked body ends without its terminator
            for _ in chunks:
                pass
    server.wait_ready(["streamer"], timeout=30)


def test_sigkill_under_load_answers_in_flight_promptly_and_loses_nothing_queued(server: RunningServer) -> None:
    [pid] = server.worker_pids("kit")
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def call(body: dict) -> None:
        started = time.monotonic()
        status = kit(server, body).status_code
        with lock:
            results.append((status, time.monotonic() - started))

    in_flight = [threading.Thread(target=call, args=({"op": "sleep", "seconds": 10},)) for _ in range(8)]
    for thread in in_flight:
        thread.start()
    time.sleep(1.0)  # the batch of 8 is running; now queue more
    queued = [threading.Thread(target=call, args=({"op": "info"},)) for _ in range(5)]
    for thread in queued:
        thread.start()
    time.sleep(0.3)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    for thread in in_flight:
        thread.join(10)
    assert time.monotonic() - killed_at < 1.5
    for thread in queued:
        thread.join(30)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 5 + [500] * 8
    assert kit(server, {"op": "info"}).status_code == 200


def test_sigterm_under_load_drains_in_flight_requests(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"kit": TEST_MODELS / "kit"}, properties={"default_workers_per_model": "2"})
    [w1, w2] = server.worker_pids("kit")
    statuses: list[int] = []

    def call() -> None:
        statuses.append(kit(server, {"op": "sleep", "seconds": 1.0}).status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    assert server.process.wait(30) == 0
    assert statuses == [200] * 4
    for worker in (w1, w2):
        with pytest.raises(ProcessLookupError):
            os.kill(worker, 0)


def test_second_sigterm_exits_at_once(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"kit": TEST_MODELS / "kit"})
    [worker] = server.worker_pids("kit")
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(kit(server, {"op": "sleep", "seconds": 20}).status_code)
        except requests.ConnectionError as err:  # the server left without answering: expected here
            outcome.append(err)

    busy = threading.Thread(target=call)
    busy.start()
    time.sleep(0.5)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert server.process.poll() is None  # draining the 20 s request
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(10)
    assert time.monotonic() - started < 3
    busy.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)
    wait_gone(worker, 5)
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)


def test_client_timeout_answers_expired_requests_instead_of_running_them(tmp_path: Path) -> None:
    store_model = tmp_path / "src" / "kit"
    shutil.copytree(TEST_MODELS / "kit", store_model)
    (store_model / "model-config.yaml").write_text("clientTimeoutInMills: 300\nminWorkers: 1\nmaxWorkers: 1\n")
    manifest = json.loads((store_model / "MAR-INF" / "MANIFEST.json").read_text())
    manifest["model"]["configFile"] = "model-config.yaml"
    (store_model / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))
    server = start_server(tmp_path / "run", {"kit": store_model})
    try:
        busy = threading.Thread(target=lambda: kit(server, {"op": "sleep", "seconds": 1.0}))
        busy.start()
        time.sleep(0.2)
        expired = kit(server, {"op": "info"})  # waits behind the busy batch for longer than 300 ms
        busy.join(30)
        assert expired.status_code == 503
        assert expired.json()["type"] == "ServiceUnavailableException"
        assert kit(server, {"op": "info"}).status_code == 200
    finally:
        assert server.stop() == 0


def test_slow_jobs_spread_over_workers_and_workers_run_under_sched_batch(tmp_path: Path) -> None:
    """Batches taken ahead by a busy worker must not starve an idle one: with a slow model the look-ahead stays
    small, so twelve 0.3 s jobs on two workers are shared about evenly."""
    server = start_server(tmp_path, {"kit": TEST_MODELS / "kit"}, properties={"default_workers_per_model": "2"})
    try:
        workers = set(server.worker_pids("kit"))
        assert len(workers) == 2
        if hasattr(os, "sched_getscheduler") and hasattr(os, "SCHED_BATCH"):
            assert {os.sched_getscheduler(pid) for pid in workers} == {os.SCHED_BATCH}
        answers = concurrently(12, lambda: kit(server, {"op": "sleep", "seconds": 0.3}))
        assert [r.status_code for r in answers] == [200] * 12
        served = [r.json()["pid"] for r in answers]
        assert set(served) == workers
        assert min(served.count(pid) for pid in workers) >= 4
    finally:
        assert server.stop() == 0
