"""The native gRPC listener's bounds against what well-behaved clients do: they are served whole (many large calls
at once on one connection; a client that writes all its calls, within its windows, before it reads), and the
connection cap counts TLS connections right (one whose handshake fails is forgotten; one evicted during its
handshake is closed). The listener runs in this process, on uvloop, with the test service of
``test_h2_grpc_calls``."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
from pathlib import Path

import pytest

grpc = pytest.importorskip("grpc")
uvloop = pytest.importorskip("uvloop")
pytest.importorskip("cryptography")

from hpack import Encoder  # noqa: E402

from modelserver.config import Address  # noqa: E402
from modelserver.grpc_server import ServiceTable  # noqa: E402
from modelserver.h2 import frames as f  # noqa: E402
from modelserver.h2.listener import NativeGrpcListener  # noqa: E402
from modelserver.http_limits import HttpLimits  # noqa: E402
from modelserver.http_server import ConnectionBudget  # noqa: E402
from tests.e2e.test_tls import write_rsa_key_pair  # noqa: E402
from tests.unit.test_h2_grpc_calls import METHODS, SERVICE, Calls  # noqa: E402

MIB = 1 << 20


def make_listener(
    tls_files: tuple[Path, Path] | None = None, cap: int = 100, write_timeout: float = 60.0
) -> tuple[ConnectionBudget, NativeGrpcListener]:
    table = ServiceTable(SERVICE, METHODS, Calls(), frozenset(name for name, *_ in METHODS))
    budget = ConnectionBudget(cap)
    listener = NativeGrpcListener(
        "test",
        Address("https" if tls_files else "http", "127.0.0.1", 0),
        [table],
        max_receive=6553500,
        max_send=6553500,
        tls_files=(str(tls_files[0]), str(tls_files[1])) if tls_files else None,
        limits=HttpLimits(header_read_timeout=0.5, write_timeout=write_timeout),
        budget=budget,
    )
    return budget, listener


def test_many_large_calls_at_once_on_one_connection_are_all_served() -> None:
    async def main() -> None:
        _, listener = make_listener()
        await listener.start()
        options = [("grpc.max_receive_message_length", 8 * MIB), ("grpc.max_send_message_length", 8 * MIB)]
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{listener.port}", options=options) as channel:
                echo = channel.unary_unary(f"/{SERVICE}/Echo")
                body = os.urandom(5_000_000)
                results = await asyncio.gather(*[echo(body, timeout=60) for _ in range(16)], return_exceptions=True)
        finally:
            await listener.stop(0.5)
        assert [r for r in results if r != body] == []

    uvloop.run(main())


def test_a_client_that_writes_its_calls_within_its_windows_before_it_reads_is_served() -> None:
    """14 calls of 1 MiB written before the first read, through small socket buffers (as on a real network): all
    within the windows the server gave (1 MiB a stream, 16 MiB the connection). The server's answers fill its
    buffer meanwhile; it must go on reading, not wait for a client that is busy writing what it was allowed to."""

    def client(port: int) -> str:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        sock.connect(("127.0.0.1", port))
        sock.settimeout(20)
        encoder = Encoder()
        grant = f.window_update(0, f.MAX_WINDOW - 65535)
        out = f.PREFACE + f.settings({f.INITIAL_WINDOW_SIZE: f.MAX_WINDOW}) + grant
        message = struct.pack(">BI", 0, MIB - 5) + b"m" * (MIB - 5)
        headers = [(":method", "POST"), (":scheme", "http"), (":path", f"/{SERVICE}/Echo"), (":authority", "x"),
                   ("content-type", "application/grpc"), ("te", "trailers")]  # fmt: skip
        for index in range(14):
            stream_id = 2 * index + 1
            out += f.frame(f.HEADERS, f.END_HEADERS, stream_id, encoder.encode(headers))
            out += b"".join(
                f.frame(f.DATA, 0, stream_id, message[at : at + 16384]) for at in range(0, len(message), 16384)
            )
            out += f.frame(f.DATA, f.END_STREAM, stream_id, b"")
        try:
            sock.sendall(out)
            got = 0
            while got < 14 * MIB:
                chunk = sock.recv(MIB)
                if not chunk:
                    return "closed"
                got += len(chunk)
            return "ok"
        except OSError as err:
            return repr(err)
        finally:
            sock.close()

    async def main() -> None:
        _, listener = make_listener(write_timeout=1.5)
        await listener.start()
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(None, client, listener.port)
        finally:
            await listener.stop(0.1)
        assert outcome == "ok"

    uvloop.run(main())


def test_a_tls_connection_whose_handshake_fails_is_forgotten_by_the_cap(tmp_path: Path) -> None:
    """A TCP health check or a port scanner on a TLS port: connect, close, no handshake. Such a connection is
    never made (nor lost) for the protocol; the cap must not count it for ever."""
    files = write_rsa_key_pair(tmp_path, 2048)

    async def main() -> None:
        budget, listener = make_listener(files)
        await listener.start()
        try:
            for _ in range(20):
                socket.create_connection(("127.0.0.1", listener.port)).close()
            await asyncio.sleep(1.2)  # past the handshake's time (header_read_timeout, 0.5 s here)
            counted = len(budget.others)
        finally:
            await listener.stop(0.1)
        assert counted == 0

    uvloop.run(main())


def test_a_connection_evicted_during_its_tls_handshake_is_closed(tmp_path: Path) -> None:
    files = write_rsa_key_pair(tmp_path, 2048)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])

    def served(sock: socket.socket) -> bool:
        try:
            tls = context.wrap_socket(sock, server_hostname="x")
            tls.settimeout(2)
            tls.sendall(f.PREFACE + f.settings({}) + f.frame(f.PING, 0, 0, b"ABCDEFGH"))
            got = b""
            while b"ABCDEFGH" not in got:
                chunk = tls.recv(1000)
                if not chunk:
                    return False
                got += chunk
            return True
        except OSError:
            return False

    async def main() -> None:
        budget, listener = make_listener(files, cap=2)
        await listener.start()
        try:
            raw = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(6)]
            await asyncio.sleep(0.2)  # accepted, each in its handshake: the later ones evict the earlier
            loop = asyncio.get_running_loop()
            alive = sum(await asyncio.gather(*[loop.run_in_executor(None, served, sock) for sock in raw]))
        finally:
            await listener.stop(0.1)
        assert 0 < alive <= budget.cap

    uvloop.run(main())
