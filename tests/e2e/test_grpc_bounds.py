"""Hostile and stalled HTTP/2 clients against the native gRPC listener (``oip_grpc_address``), each costing its own
connection and never the server's memory or descriptors: PING and SETTINGS floods from a client that reads nothing,
streams opened and reset in a loop ("rapid reset"), a connection that never sends the preface, an answer the client
does not read or gives no window, and connections past ``max_connections``. The clients here speak HTTP/2 by hand
over a socket (hpack for the header blocks), as an attacker would; a well-behaved gRPC client checks afterwards that
everyone else is still served."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import TEST_MODELS, RunningServer, free_port, start_server

pytestmark = pytest.mark.e2e
hpack = pytest.importorskip("hpack")
grpc = pytest.importorskip("grpc")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS = 0x1, 0x4
ENHANCE_YOUR_CALM, CANCEL = 0xB, 0x8
INFER = "/inference.GRPCInferenceService/ModelInfer"
LIVE = "/inference.GRPCInferenceService/ServerLive"


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack("!I", len(payload))[1:] + bytes((kind, flags)) + struct.pack("!I", stream_id) + payload


def settings(**values: int) -> bytes:
    ids = {"initial_window": 0x4, "max_frame": 0x5}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack("!HI", ids[k], v) for k, v in values.items()))


def request_headers(encoder: hpack.Encoder, path: str) -> bytes:
    return encoder.encode(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
    )


def infer_message(model: str, floats: int) -> bytes:
    """A ``ModelInferRequest`` with one raw FP32 input of ``floats`` elements, gRPC-framed."""
    from workers import grpc_stubs

    pb = grpc_stubs.load("oip_inference")
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="input-0", datatype="FP32")
    tensor.shape.extend([1, floats])
    request.raw_input_contents.append(bytes(4 * floats))
    body = request.SerializeToString()
    return b"\x00" + struct.pack("!I", len(body)) + body


@contextlib.contextmanager
def h2_client(address: str, receive_buffer: int | None = None) -> Iterator[socket.socket]:
    host, port = address.rsplit(":", 1)
    sock = socket.socket()
    if receive_buffer is not None:  # before connect: the window the kernel offers follows it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((host, int(port)))
    sock.settimeout(10)
    try:
        yield sock
    finally:
        sock.close()


def read_frames(sock: socket.socket, seconds: float) -> Iterator[tuple[int, int, int, bytes]]:
    """The server's frames until it closes the connection or ``seconds`` pass."""
    buffer = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            return
        except ConnectionResetError:
            return
        if not chunk:
            return
        buffer += chunk
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + length:
                break
            kind, flags, stream_id = buffer[3], buffer[4], int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
            yield kind, flags, stream_id, buffer[9 : 9 + length]
            buffer = buffer[9 + length :]


def closed_by_server(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection within ``seconds`` (what it sends meanwhile is read and dropped)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if not sock.recv(1 << 16):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def live(address: str) -> bool:
    """A well-behaved gRPC client's ServerLive (grpcio): the server still serves everyone else."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(LIVE, request_serializer=None, response_deserializer=None)
        return call(b"", timeout=10) == b"\x08\x01"  # ServerLiveResponse(live=true)


def wait_for_log(server: RunningServer, text: str, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in server.logs():
            return True
        time.sleep(0.05)
    return False


def mirror_server(tmp: Path, **settings: str) -> RunningServer:
    """The mirror model, the OIP gRPC API on the native transport at a free port, and ``settings``."""
    address = f"127.0.0.1:{free_port()}"
    properties = {"load_models": "kmirror=kmirror", "oip_grpc_address": address, "grpc_transport": "native"}
    running = start_server(
        tmp, {"kmirror": TEST_MODELS / "kmirror"}, properties={**properties, **settings}, wait_models=["kmirror"]
    )
    running.extra["grpc"] = address
    return running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = mirror_server(
        tmp_path_factory.mktemp("grpc_bounds"),
        header_read_timeout="1",
        write_timeout="1.5",
        max_response_size=str(64 << 20),
        max_request_size=str(64 << 20),
    )
    yield running
    assert running.stop() == 0


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_a_flood_of_frames_that_ask_for_answers_from_a_client_that_reads_none_ends_its_connection(
    server: RunningServer, kind: str
) -> None:
    """Each PING or SETTINGS asks for an answer; a client that sends them without reading made the server hold the
    answers (on the first version, 86 MB of PINGs in 4 s grew the frontend by 270 MB)."""
    one = frame(PING, 0, 0, b"12345678") if kind == "ping" else frame(SETTINGS, 0, 0)
    chunk = one * 4096
    before = rss_mb(server.process.pid)
    sent = 0
    ended = False
    with h2_client(server.extra["grpc"], receive_buffer=4096) as sock:
        sock.sendall(PREFACE + settings())
        deadline = time.monotonic() + 15
        try:
            while sent < 200 << 20 and time.monotonic() < deadline:
                sock.sendall(chunk)
                sent += len(chunk)
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            ended = True
        peak = rss_mb(server.process.pid)
        if not ended:
            ended = closed_by_server(sock, 5)
    assert ended, f"{sent >> 20} MB of {kind.upper()} frames sent and the connection still open"
    assert peak - before < 48, f"the frontend grew {peak - before:.0f} MB for one flooding connection"
    assert wait_for_log(server, "more than 1000 PING, SETTINGS or RST_STREAM answers not read back")
    assert live(server.extra["grpc"])


def test_streams_opened_and_reset_in_a_loop_end_the_connection_with_enhance_your_calm(server: RunningServer) -> None:
    encoder = hpack.Encoder()
    goaway = None
    with h2_client(server.extra["grpc"]) as sock:
        sock.sendall(PREFACE + settings())
        burst = bytearray()
        for index in range(3000):
            stream_id = 2 * index + 1
            burst += frame(HEADERS, END_HEADERS, stream_id, request_headers(encoder, INFER))
            burst += frame(RST_STREAM, 0, stream_id, struct.pack("!I", CANCEL))
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(bytes(burst))
        for kind, _flags, _stream, payload in read_frames(sock, 10):
            if kind == GOAWAY:
                goaway = payload
                break
    assert goaway is not None, "the server went on after 3,000 streams reset at once"
    assert int.from_bytes(goaway[4:8], "big") == ENHANCE_YOUR_CALM
    assert wait_for_log(server, "streams reset by the client faster than it may open them")
    assert live(server.extra["grpc"])


def test_a_connection_that_never_sends_the_preface_is_closed_after_the_header_read_timeout(
    server: RunningServer,
) -> None:
    with h2_client(server.extra["grpc"]) as sock:
        started = time.monotonic()
        assert closed_by_server(sock, 8), "a silent connection stayed open"
        assert time.monotonic() - started < 5
    assert wait_for_log(server, "no HTTP/2 preface within 1 s")
    with h2_client(server.extra["grpc"]) as sock:  # a client that sends the preface, then idles, is kept
        sock.sendall(PREFACE + settings())
        assert not closed_by_server(sock, 2.5)


def test_an_answer_the_client_does_not_read_ends_its_connection_after_the_write_timeout(
    server: RunningServer,
) -> None:
    """The client grants all the window it can and reads nothing: the 16 MiB answer fills the sockets' buffers, and
    after write_timeout the connection is dropped (its buffers with it)."""
    encoder = hpack.Encoder()
    message = infer_message("kmirror", 4 << 20)
    with h2_client(server.extra["grpc"], receive_buffer=4096) as sock:
        sock.sendall(
            PREFACE
            + settings(initial_window=(1 << 31) - 1)
            + frame(WINDOW_UPDATE, 0, 0, struct.pack("!I", (1 << 31) - 1 - 65535))
        )
        sock.sendall(frame(HEADERS, END_HEADERS, 1, request_headers(encoder, INFER)))
        for start in range(0, len(message), 16384):
            piece = message[start : start + 16384]
            last = start + 16384 >= len(message)
            sock.sendall(frame(DATA, END_STREAM if last else 0, 1, piece))
        assert wait_for_log(server, "the client read nothing for 1.5 s (write_timeout)", 15)
        assert closed_by_server(sock, 10)
    assert live(server.extra["grpc"])


def test_an_answer_given_no_window_is_cancelled_after_the_write_timeout_and_the_connection_goes_on(
    server: RunningServer,
) -> None:
    """The client reads everything but never gives the answer's stream more than the first 65,535 bytes of window:
    after write_timeout the call is reset (CANCEL); the connection still answers."""
    encoder = hpack.Encoder()
    message = infer_message("kmirror", 256 << 10)
    reset = None
    with h2_client(server.extra["grpc"]) as sock:
        sock.sendall(PREFACE + settings() + frame(WINDOW_UPDATE, 0, 0, struct.pack("!I", 16 << 20)))
        sock.sendall(frame(HEADERS, END_HEADERS, 1, request_headers(encoder, INFER)))
        for start in range(0, len(message), 16384):
            piece = message[start : start + 16384]
            last = start + 16384 >= len(message)
            sock.sendall(frame(DATA, END_STREAM if last else 0, 1, piece))
        for kind, _flags, stream_id, payload in read_frames(sock, 10):
            if kind == RST_STREAM and stream_id == 1:
                reset = int.from_bytes(payload, "big")
                break
            if kind == PING:
                sock.sendall(frame(PING, 1, 0, payload))
        assert reset == CANCEL
        sock.sendall(frame(PING, 0, 0, b"stillok?"))
        acked = [p for kind, flags, _s, p in read_frames(sock, 5) if kind == PING and flags & 1]
        assert acked and acked[0] == b"stillok?"
    assert wait_for_log(server, "cancelled: the client took none of its answer for 1.5 s (write_timeout)")


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = mirror_server(tmp_path_factory.mktemp("grpc_cap"), max_connections="16")
    yield running
    assert running.stop() == 0


def test_grpc_connections_count_against_max_connections(capped: RunningServer) -> None:
    """Past the cap, the oldest idle gRPC connection is closed to make room for a new one; the server's
    descriptors stay bounded and every new client is served."""
    import requests

    sockets: list[socket.socket] = []
    try:
        for _ in range(24):
            host, port = capped.extra["grpc"].rsplit(":", 1)
            sock = socket.create_connection((host, int(port)))
            sock.sendall(PREFACE + settings())
            sockets.append(sock)
            time.sleep(0.02)
        time.sleep(0.5)
        open_now = 0
        for sock in sockets:
            sock.settimeout(0.2)
            alive = True
            with contextlib.suppress(TimeoutError):
                while True:
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        alive = False
                        break
            open_now += alive
        assert open_now <= 16, f"{open_now} idle gRPC connections kept past a cap of 16"
        assert wait_for_log(capped, "Connection cap reached: 16 connections are open")
        assert live(capped.extra["grpc"])
        assert requests.get(f"{capped.inference}/ping", timeout=10).status_code == 200
    finally:
        for sock in sockets:
            sock.close()
