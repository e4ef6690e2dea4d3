"""HTTP/1.1 as clients use it, on the wire: keep-alive, pipelining, chunked bodies both ways, ``Expect:
100-continue``, ``max_request_size`` (413), HEAD, HTTP/1.0, malformed requests, handler statuses and headers."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.raw_http import closed_by_peer, connect, read_response, request_bytes
from tests.server import TEST_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e

LIMIT = 4096
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("http_layer")
    running = start_server(tmp, {"kit": TEST_MODELS / "kit"}, properties={"max_request_size": str(LIMIT)})
    yield running
    assert running.stop() == 0


def info(extra: dict | None = None) -> bytes:
    return json.dumps({"op": "info", **(extra or {})}).encode()


def test_one_connection_serves_many_requests(server: RunningServer) -> None:
    with requests.Session() as session:
        for _ in range(5):
            assert session.post(f"{server.inference}/predictions/kit", json={"op": "info"}, timeout=5).ok
    sock = connect(server.inference)
    stream = sock.makefile("rb")
    for _ in range(3):
        sock.sendall(request_bytes("GET", "/ping"))
        response = read_response(stream)
        assert response is not None and response.status == 200 and "connection" not in response.headers
    sock.close()


def test_pipelined_requests_are_answered_in_order(server: RunningServer) -> None:
    sock = connect(server.inference)
    batch = b"".join(
        request_bytes("POST", f"/predictions/kit/1.0/p{i}", info(), JSON) for i in range(5)
    ) + request_bytes("GET", "/ping")
    sock.sendall(batch)
    stream = sock.makefile("rb")
    paths = []
    for _ in range(5):
        response = read_response(stream)
        assert response is not None and response.status == 200
        paths.append(json.loads(response.body)["url_path"])
    assert paths == [f"p{i}" for i in range(5)]
    ping = read_response(stream)
    assert ping is not None and json.loads(ping.body) == {"status": "Healthy"}
    sock.close()


def test_pipelined_bodies_beyond_the_head_limit_before_a_split_head_are_not_431(server: RunningServer) -> None:
    """The head limit counts a read that began a head whole; what earlier requests in that read took must not count
    against the head that continues in the next read."""
    sock = connect(server.inference)
    padded = info({"pad": "p" * 3000})
    burst = b"".join(request_bytes("POST", f"/predictions/kit/1.0/b{i}", padded, JSON) for i in range(30))
    last = request_bytes("POST", "/predictions/kit/1.0/last", info(), JSON)
    sock.sendall(burst + last[:20])
    time.sleep(0.3)  # the rest of the last head comes in a later read
    sock.sendall(last[20:])
    stream = sock.makefile("rb")
    paths = []
    for _ in range(31):
        response = read_response(stream)
        assert response is not None and response.status == 200
        paths.append(json.loads(response.body)["url_path"])
    assert paths == [f"b{i}" for i in range(30)] + ["last"]
    sock.close()


def test_a_chunked_request_body_is_read_whole(server: RunningServer) -> None:
    body = info({"value": "x" * 100})
    pieces = [body[:10], body[10:50], body[50:]]
    chunked = b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    sock = connect(server.inference)
    sock.sendall(
        request_bytes("POST", "/predictions/kit", b"", {**JSON, "Transfer-Encoding": "chunked"}).replace(
            b"Content-Length: 0\r\n", b""
        )
        + chunked
    )
    response = read_response(sock.makefile("rb"))
    assert response is not None and response.status == 200 and json.loads(response.body)["op"] == "info"
    sock.close()


def test_expect_100_continue_gets_its_interim_answer_before_the_body_is_sent(server: RunningServer) -> None:
    body = info()
    sock = connect(server.inference, timeout=0.8)
    head = request_bytes("POST", "/predictions/kit", body, {**JSON, "Expect": "100-continue"})[: -len(body)]
    sock.sendall(head)
    stream = sock.makefile("rb")
    interim = read_response(stream)  # within 0.8 s, or the socket times out
    assert interim is not None and interim.status == 100
    sock.sendall(body)
    sock.settimeout(5)
    response = read_response(stream)
    assert response is not None and response.status == 200
    sock.close()


def test_expect_100_continue_with_a_body_too_large_is_413_without_continue(server: RunningServer) -> None:
    sock = connect(server.inference)
    sock.sendall(request_bytes("POST", "/predictions/kit", b"", {"Content-Length": "100000", "Expect": "100-continue"}))
    response = read_response(sock.makefile("rb"))
    assert response is not None and response.status == 413
    assert closed_by_peer(sock, timeout=2)
    sock.close()


def test_bodies_over_max_request_size_are_413_by_length_and_by_chunks(server: RunningServer) -> None:
    big = b"x" * (LIMIT + 1)
    assert requests.post(f"{server.inference}/predictions/kit", data=big, timeout=5).status_code == 413
    chunks = (big[i : i + 1000] for i in range(0, len(big), 1000))
    assert requests.post(f"{server.inference}/predictions/kit", data=chunks, timeout=5).status_code == 413
    assert requests.post(f"{server.inference}/predictions/kit", json={"op": "info"}, timeout=5).status_code == 200


def test_a_streamed_answer_is_chunked(server: RunningServer) -> None:
    sock = connect(server.inference)
    sock.sendall(request_bytes("POST", "/predictions/kit", json.dumps({"op": "stream"}).encode(), JSON))
    response = read_response(sock.makefile("rb"))
    assert response is not None and response.status == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.body == b"hellohellohellohello world "
    sock.close()


def test_handler_status_reason_and_headers_reach_the_client(server: RunningServer) -> None:
    body = {"op": "info", "status": 299, "phrase": "Custom Phrase", "headers": {"X-Out": "yes"}}
    response = requests.post(f"{server.inference}/predictions/kit", json=body, timeout=5)
    assert response.status_code == 299 and response.reason == "Custom Phrase"
    assert response.headers["X-Out"] == "yes" and "x-request-id" in response.headers
    assert response.headers["Content-Length"] == str(len(response.content))


def test_head_answers_carry_no_body(server: RunningServer) -> None:
    sock = connect(server.inference)
    sock.sendall(b"HEAD /ping HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    assert data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n") and b"Content-Length: " in data
    sock.close()


def test_http_1_0_is_answered_in_kind_and_closed(server: RunningServer) -> None:
    sock = connect(server.inference)
    sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    assert data.startswith(b"HTTP/1.0 200 OK\r\n") and data.endswith(b'"Healthy"\n}\n')
    sock.close()
    sock = connect(server.inference)
    sock.sendall(b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    response = read_response(sock.makefile("rb"))
    assert response is not None and response.headers.get("connection") == "keep-alive"
    sock.close()


def test_a_malformed_request_is_400_and_the_server_keeps_serving(server: RunningServer) -> None:
    sock = connect(server.inference)
    sock.sendall(b"NOT A REQUEST\r\n\r\n")
    response = read_response(sock.makefile("rb"))
    assert response is not None and response.status == 400
    assert closed_by_peer(sock, timeout=2)
    sock.close()
    sock = connect(server.inference)
    sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"y" * 70000 + b"\r\n\r\n")
    response = read_response(sock.makefile("rb"))
    assert response is not None and response.status == 431
    sock.close()
    assert requests.get(f"{server.inference}/ping", timeout=5).status_code == 200


def test_an_endless_header_is_431_as_soon_as_it_passes_the_limit(server: RunningServer) -> None:
    """httptools holds a header until it is whole: the limit must count what arrives, not only finished headers
    (before, 4 MiB of one header value were taken in and the client waited for the 30 s header timeout's 408)."""
    sock = connect(server.inference, timeout=10)
    sock.sendall(b"POST /predictions/kit HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    piece = b"v" * 65536
    sent = 0
    try:
        while sent < 4 * 1024 * 1024:
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server refused the head and closed: what should happen
    response = read_response(sock.makefile("rb"))
    assert response is not None and response.status == 431
    assert closed_by_peer(sock, timeout=5)
    sock.close()
    assert requests.get(f"{server.inference}/ping", timeout=5).status_code == 200


def test_unknown_paths_and_methods_keep_their_statuses(server: RunningServer) -> None:
    assert requests.get(f"{server.inference}/nothing/here", timeout=5).status_code == 404
    refused = requests.put(f"{server.inference}/api-description", timeout=5)
    assert refused.status_code == 405 and "GET" in refused.headers["Allow"]
