"""The request path under stress: slow readers, stalled sockets, too many connections, absurd worker counts, a stop
under load and clients that leave. Each case once hurt the whole server; here each must stay contained."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.raw_http import closed_by_peer, connect, read_response, request_bytes
from tests.server import TEST_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
MODELS = json.dumps({"streamer": {"1.0": {"minWorkers": 2}}, "kit": {"1.0": {"minWorkers": 2}}})
LIMITS = {
    "stream_buffer_size": str(MiB),
    "write_timeout": "4",
    "header_read_timeout": "2",
    "body_read_timeout": "2",
    "keep_alive_timeout": "2",
    "max_workers_per_model": "8",
    "models": MODELS,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("request_path")
    running = start_server(tmp, {"streamer": TEST_MODELS / "streamer", "kit": TEST_MODELS / "kit"}, properties=LIMITS)
    yield running
    assert running.stop() == 0


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def progress(path: Path) -> dict:
    for _ in range(50):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.02)
    return {}


def test_a_stream_nobody_reads_stays_bounded_its_handler_waits_and_the_write_timeout_ends_it(
    server: RunningServer, tmp_path: Path
) -> None:
    before = rss(server.process.pid)
    files = [tmp_path / f"progress-{i}.json" for i in range(2)]
    clients = []
    for path in files:
        body = json.dumps({"count": 100, "pad": MiB, "progress": str(path)}).encode()
        sock = connect(server.inference, receive_buffer=64 * 1024)
        sock.sendall(request_bytes("POST", "/predictions/streamer", body, {"Content-Type": "application/json"}))
        clients.append(sock)
    time.sleep(2.0)
    # The handlers wait in send_intermediate_predict_response: a few pieces sent (the frontend's buffer, and what the
    # kernel's socket buffers take), not a hundred.
    sent = [progress(path).get("sent", 0) for path in files]
    assert all(0 < count <= 20 for count in sent), sent
    grown = rss(server.process.pid) - before
    assert grown < 32 * MiB, f"the frontend grew by {grown / MiB:.0f} MiB for two unread streams"
    # Everyone else is served meanwhile (within the requests' own timeouts: a server the stuck streams blocked would
    # answer neither).
    assert requests.get(f"{server.inference}/ping", timeout=5).status_code == 200
    assert requests.post(f"{server.inference}/predictions/kit", json={"op": "info"}, timeout=5).status_code == 200
    # Past write_timeout (4 s without progress) the server cuts the stuck connections and the handlers stop. The
    # clients must not read before that: reading is progress.
    time.sleep(3.5)
    for sock in clients:
        assert closed_by_peer(sock, timeout=8), "the stuck stream was not closed"
        sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
        progress(path).get("state", "").startswith("stopped") for path in files
    ):
        time.sleep(0.1)
    states = [progress(path) for path in files]
    assert all(state["state"].startswith("stopped") and state["sent"] <= 25 for state in states), states
    assert "Stream " in server.logs() and "cancelled: the client went away" in server.logs()
    assert rss(server.process.pid) - before < 32 * MiB
    # The workers are free again: a stream read to its end completes.
    whole = requests.post(f"{server.inference}/predictions/streamer", json={"count": 3}, timeout=10)
    assert whole.status_code == 200 and whole.text.endswith("end")


def test_a_half_sent_head_gets_408_and_is_closed_by_header_read_timeout(server: RunningServer) -> None:
    sock = connect(server.inference)
    started = time.monotonic()
    sock.sendall(b"POST /predictions/kit HTTP/1.1\r\nHost: test\r\n")
    stream = sock.makefile("rb")
    response = read_response(stream)
    assert response is not None and response.status == 408
    assert 1.5 <= time.monotonic() - started < 4.5
    assert closed_by_peer(sock, timeout=2)
    sock.close()


def test_a_stalled_body_gets_408_in_torchserve_shape_by_body_read_timeout(server: RunningServer) -> None:
    sock = connect(server.inference)
    started = time.monotonic()
    sock.sendall(request_bytes("POST", "/predictions/kit", b"", {"Content-Length": "100"}) + b'{"op": ')
    response = read_response(sock.makefile("rb"))
    assert response is not None and response.status == 408
    assert json.loads(response.body)["code"] == 408
    assert 1.5 <= time.monotonic() - started < 4.5
    assert closed_by_peer(sock, timeout=2)
    sock.close()


def test_an_idle_keep_alive_connection_is_closed_by_keep_alive_timeout(server: RunningServer) -> None:
    sock = connect(server.inference)
    sock.sendall(request_bytes("GET", "/ping"))
    response = read_response(sock.makefile("rb"))
    assert response is not None and response.status == 200
    started = time.monotonic()
    assert closed_by_peer(sock, timeout=5)
    assert 1.5 <= time.monotonic() - started < 4.5
    sock.close()


def test_an_absurd_min_worker_is_400_and_the_server_lives(server: RunningServer) -> None:
    for query in ("min_worker=100000", "min_worker=9", "min_worker=2&max_worker=100000"):
        response = requests.put(f"{server.management}/models/kit?{query}", timeout=10)
        assert response.status_code == 400, (query, response.text)
        body = response.json()
        assert body["code"] == 400 and body["type"] == "BadRequestException"
        assert "workers" in body["message"]
    assert len(server.describe("kit")[0]["workers"]) == 2
    assert requests.post(f"{server.inference}/predictions/kit", json={"op": "info"}, timeout=5).status_code == 200


def test_a_client_that_leaves_gets_a_499_access_line_and_a_server_log_line_with_its_request_id(
    server: RunningServer,
) -> None:
    sock = connect(server.inference)
    body = json.dumps({"op": "sleep", "seconds": 1.5}).encode()
    sock.sendall(request_bytes("POST", "/predictions/kit?leaving=1", body, {"Content-Type": "application/json"}))
    time.sleep(0.5)
    sock.close()
    access = server.workdir / "logs" / "access_log.log"
    deadline = time.monotonic() + 5
    line = ""
    while time.monotonic() < deadline and not line:
        time.sleep(0.2)
        line = next((x for x in access.read_text().splitlines() if "/predictions/kit?leaving=1" in x), "")
    assert '"POST /predictions/kit?leaving=1 HTTP/1.1" 499 ' in line
    cancelled = [x for x in server.logs().splitlines() if "to model kit cancelled: the client went away" in x]
    assert cancelled and len(cancelled[-1].split("Request ")[1].split()[0]) == 36  # the request's UUID


# -- caps, on servers of their own ------------------------------------------------------------------------------------


def test_the_connection_cap_is_logged_once_and_idle_connections_make_room(tmp_path: Path) -> None:
    running = start_server(tmp_path, {"kit": TEST_MODELS / "kit"}, properties={"max_connections": "20"})
    try:
        idle = []
        for _ in range(40):
            sock = connect(running.inference)
            sock.sendall(b"GET /pi")  # a request begun, never finished
            idle.append(sock)
        time.sleep(0.3)
        response = requests.post(f"{running.inference}/predictions/kit", json={"op": "info"}, timeout=5)
        assert response.status_code == 200
        assert running.logs().count("Connection cap reached") == 1
        for sock in idle:
            sock.close()
    finally:
        assert running.stop() == 0


def test_running_out_of_file_descriptors_is_logged_and_survived(tmp_path: Path) -> None:
    running = start_server(tmp_path, {"kit": TEST_MODELS / "kit"}, properties={"header_read_timeout": "1"})
    pid = running.process.pid
    try:
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 20, in_use + 20))
        stalled = []
        for _ in range(60):
            sock = connect(running.inference)
            sock.sendall(b"GET /pi")
            stalled.append(sock)
        time.sleep(0.5)
        assert "Cannot accept a connection" in running.logs()
        # The stalled connections are cut by their deadline; the server accepts again and answers.
        response = requests.get(f"{running.inference}/ping", timeout=10)
        assert response.status_code == 200
        for sock in stalled:
            sock.close()
    finally:
        assert running.stop() == 0


def test_sigterm_under_keep_alive_load_answers_everything_received_and_exits_at_once(tmp_path: Path) -> None:
    models = json.dumps({"kit": {"1.0": {"minWorkers": 4}}})
    running = start_server(tmp_path, {"kit": TEST_MODELS / "kit"}, properties={"models": models})
    slow = json.dumps({"op": "sleep", "seconds": 0.5}).encode()
    quick = json.dumps({"op": "info"}).encode()
    headers = {"Content-Type": "application/json"}
    busy = []
    for _ in range(4):  # each: a slow request and a pipelined one behind it
        sock = connect(running.inference)
        sock.sendall(
            request_bytes("POST", "/predictions/kit", slow, headers)
            + request_bytes("POST", "/predictions/kit", quick, headers)
        )
        busy.append(sock)
    idle = []
    for _ in range(3):
        sock = connect(running.inference)
        sock.sendall(request_bytes("GET", "/ping"))
        assert read_response(sock.makefile("rb")).status == 200  # type: ignore[union-attr]
        idle.append(sock)
    time.sleep(0.2)
    running.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    for sock in idle:
        assert closed_by_peer(sock, timeout=2)
    assert time.monotonic() - signalled < 1.0
    answers: list[list[int]] = []
    last = [0.0]
    lock = threading.Lock()

    def read_all(sock: socket.socket) -> None:
        stream = sock.makefile("rb")
        got = []
        while (response := read_response(stream)) is not None:
            got.append(response.status)
            if response.headers.get("connection") == "close":
                break
        with lock:
            answers.append(got)
            last[0] = max(last[0], time.monotonic())

    threads = [threading.Thread(target=read_all, args=(sock,)) for sock in busy]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == [[200, 200]] * 4
    assert running.process.wait(10) == 0
    exited = time.monotonic()
    assert exited - last[0] < 1.0, f"exited {exited - last[0]:.1f} s after the last answer"


BURST = 1000


def test_a_burst_of_simultaneous_connects_waits_for_no_tcp_retry(server: RunningServer) -> None:
    """The listen queue holds a burst (listen_backlog): no connect waits for the kernel's 1 s SYN retry."""
    host, port = server.inference.rsplit("/", 1)[1].split(":")
    took: list[float] = []
    socks: list[socket.socket] = []
    lock = threading.Lock()
    start = threading.Barrier(BURST)

    def connect_one() -> None:
        sock = socket.socket()
        sock.settimeout(10)
        start.wait()
        begun = time.monotonic()
        sock.connect((host, int(port)))
        with lock:
            took.append(time.monotonic() - begun)
            socks.append(sock)

    threads = [threading.Thread(target=connect_one) for _ in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    for sock in socks:
        sock.close()
    assert len(took) == BURST
    assert max(took) < 0.9, f"{sum(t >= 0.9 for t in took)} connects waited for a SYN retry"
