"""Large bodies between the frontend and its workers cross in shared memory (``worker_shared_memory``,
workers/shared_ring.py): they arrive whole under load, a ring too small for them falls back to the socket, a
streamed answer's large pieces use it too, and a worker killed with bodies in its rings is replaced by one that
works with fresh rings."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.server import TEST_MODELS, RunningServer, start_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="shared memory rings are Linux-only"),
]

OCTETS = {"Content-Type": "application/octet-stream"}


def shared_memory_resident(pid: int) -> int:
    """Bytes of shared memory the process has touched (``RssShmem``): the rings' pages once bodies crossed them."""
    with open(f"/proc/{pid}/status") as status:
        return 1024 * int(next(line for line in status if line.startswith("RssShmem:")).split()[1])


def echo(server: RunningServer, body: bytes) -> requests.Response:
    return requests.post(f"{server.inference}/predictions/mirror", data=body, headers=OCTETS, timeout=60)


def echo_many(server: RunningServer, sizes: list[int], clients: int = 8) -> None:
    """Each size sent as its own random body from ``clients`` threads at once; every answer is its own body."""
    failures: list[str] = []

    def client(index: int) -> None:
        for number, size in enumerate(sizes[index::clients]):
            body = random.Random(index * 1000 + number).randbytes(size)
            response = echo(server, body)
            if response.status_code != 200 or response.content != body:
                failures.append(f"{size} bytes: {response.status_code}, {len(response.content)} bytes back")

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures[:5]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    """Rings of 256 KiB: two 100 KiB bodies fit in one, a 1 MiB body never does."""
    tmp = tmp_path_factory.mktemp("shared_memory")
    running = start_server(
        tmp,
        {"mirror": TEST_MODELS / "mirror", "streamer": TEST_MODELS / "streamer"},
        properties={"worker_shared_memory": str(256 * 1024), "max_request_size": str(8 * 1024 * 1024)},
    )
    yield running
    assert running.stop() == 0


def test_a_large_body_crosses_in_shared_memory(tmp_path: Path) -> None:
    running = start_server(tmp_path, {"mirror": TEST_MODELS / "mirror"})  # the default rings
    try:
        (pid,) = running.worker_pids("mirror")
        before = shared_memory_resident(pid)
        body = os.urandom(200_000)
        assert echo(running, body).content == body
        assert shared_memory_resident(pid) - before >= 2 * 190_000  # the body's pages in both rings
    finally:
        assert running.stop() == 0


def test_bodies_of_every_size_come_back_whole_under_load(server: RunningServer) -> None:
    sizes = [10, 65_535, 65_536, 100_000, 130_000, 200_000, 262_144, 300_000, 1 << 20, 3 << 20] * 6
    random.Random(7).shuffle(sizes)
    echo_many(server, sizes)


def test_a_stream_of_large_pieces_comes_back_whole(server: RunningServer) -> None:
    pad = 150_000
    response = requests.post(
        f"{server.inference}/predictions/streamer", json={"count": 6, "pad": pad}, stream=True, timeout=60
    )
    assert response.status_code == 200
    text = b"".join(response.iter_content(None)).decode()
    assert text == "".join(f"piece-{index};{'x' * pad}" for index in range(6)) + "end"


def test_a_worker_killed_with_bodies_in_flight_is_replaced_and_the_new_one_works(server: RunningServer) -> None:
    (pid,) = server.worker_pids("mirror")
    answers: list[int] = []

    def send() -> None:
        for _ in range(20):
            try:
                answers.append(echo(server, os.urandom(120_000)).status_code)
            except requests.RequestException:
                answers.append(0)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    for thread in threads:
        thread.join(120)
    assert set(answers) <= {200, 500, 503} and len(answers) == 80  # every client answered, none hung
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.worker_pids("mirror") in ([], [pid]):
        time.sleep(0.1)
    (new_pid,) = server.worker_pids("mirror")
    assert new_pid != pid
    echo_many(server, [100_000, 200_000, 1 << 20] * 4, clients=4)


def test_without_shared_memory_bodies_cross_the_socket(tmp_path: Path) -> None:
    running = start_server(tmp_path, {"mirror": TEST_MODELS / "mirror"}, properties={"worker_shared_memory": "0"})
    try:
        (pid,) = running.worker_pids("mirror")
        body = os.urandom(200_000)
        assert echo(running, body).content == body
        assert shared_memory_resident(pid) < 100_000  # no ring touched
        echo_many(running, [100_000, 1 << 20] * 4, clients=4)
    finally:
        assert running.stop() == 0


def test_a_bad_size_stops_startup_with_the_key_named(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="worker_shared_memory"):
        start_server(tmp_path, {"mirror": TEST_MODELS / "mirror"}, properties={"worker_shared_memory": "1000"})
