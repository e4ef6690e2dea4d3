"""Calls on the native gRPC transport (modelserver.h2) from grpc.aio's real client, on a listener in this process:
unary and streaming calls, statuses and their messages, metadata, unknown methods, compression, size limits, a
deadline and a client's cancel cancelling the service's coroutine; and from a raw socket, a connection that sends
garbage gets GOAWAY while another goes on, and a client that does not read a stream of 1 MiB answers holds the
service back (bounded buffers)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import pytest
from hpack import Decoder, Encoder

grpc = pytest.importorskip("grpc")

from modelserver.config import Address  # noqa: E402
from modelserver.grpc_server import ServiceTable  # noqa: E402
from modelserver.h2 import frames as f  # noqa: E402
from modelserver.h2.limits import READ_SIZE, Limits  # noqa: E402
from modelserver.h2.listener import NativeGrpcListener, method_table  # noqa: E402
from modelserver.h2.protocol import GrpcProtocol  # noqa: E402

SERVICE = "test.Calls"
MIB = 1 << 20
LIMIT = 2 * MIB


class Calls:
    """Bytes in, bytes out."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.produced = 0

    async def echo(self, request: bytes, context: Any) -> bytes:
        if request == b"abort":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no model 'ü' 100%")
        if request == b"boom":
            raise ValueError("boom")
        if request == b"metadata":
            return repr(sorted(context.invocation_metadata())).encode()
        if request == b"too big":
            return b"x" * (LIMIT + 1)
        return request

    async def slow(self, request: bytes, context: Any) -> bytes:
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return b"late"

    async def count(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        for index in range(int(request)):
            yield str(index).encode()

    async def chat(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request.upper()
            yield request.lower()

    async def flood(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        while True:
            self.produced += 1
            yield b"m" * MIB


METHODS = [
    ("Echo", None, None, False, False),
    ("Slow", None, None, False, False),
    ("Count", None, None, False, True),
    ("Chat", None, None, True, True),
    ("Flood", None, None, False, True),
]


def serve(test: Callable[[NativeGrpcListener, Calls], Awaitable[None]]) -> None:
    async def main() -> None:
        calls = Calls()
        table = ServiceTable(SERVICE, METHODS, calls, frozenset(name for name, *_ in METHODS))
        listener = NativeGrpcListener(
            "test", Address("http", "127.0.0.1", 0), [table], max_receive=LIMIT, max_send=LIMIT
        )
        await listener.start()
        try:
            await asyncio.wait_for(test(listener, calls), 60)
        finally:
            await listener.stop(0.5)

    asyncio.run(main())


def channel(listener: NativeGrpcListener) -> Any:
    options = [("grpc.max_receive_message_length", 4 * MIB), ("grpc.max_send_message_length", 4 * MIB)]
    return grpc.aio.insecure_channel(f"127.0.0.1:{listener.port}", options=options)


async def failure(call: Awaitable[Any]) -> tuple[Any, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value.code(), raised.value.details()


def test_unary_calls_statuses_and_metadata() -> None:
    async def test(listener: NativeGrpcListener, calls: Calls) -> None:
        async with channel(listener) as ch:
            echo = ch.unary_unary(f"/{SERVICE}/Echo")
            assert await echo(b"hello") == b"hello"
            assert await echo(b"") == b""
            big = bytes(range(256)) * 4096  # 1 MiB both ways
            assert await echo(big) == big
            assert await failure(echo(b"abort")) == (grpc.StatusCode.NOT_FOUND, "no model 'ü' 100%")
            code, details = await failure(echo(b"boom"))
            assert code == grpc.StatusCode.UNKNOWN and "boom" in details
            seen = await echo(b"metadata", metadata=(("authorization", "Bearer k"), ("trace-bin", b"\0\1")))
            assert b"('authorization', 'Bearer k')" in seen and b"('trace-bin', b'\\x00\\x01')" in seen
            assert b"grpc-timeout" not in seen and b":path" not in seen
            code, details = await failure(echo(b"y" * (LIMIT + 1)))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details
            code, details = await failure(echo(b"too big"))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details
            code, details = await failure(ch.unary_unary(f"/{SERVICE}/Nope")(b""))
            assert code == grpc.StatusCode.UNIMPLEMENTED
            assert await echo(b"still fine") == b"still fine"

    serve(test)


@pytest.mark.parametrize("compression", ["Gzip", "Deflate"])
def test_compressed_calls_are_inflated(compression: str) -> None:
    async def test(listener: NativeGrpcListener, calls: Calls) -> None:
        algorithm = getattr(grpc.Compression, compression)
        options = [("grpc.max_receive_message_length", 4 * MIB), ("grpc.max_send_message_length", 4 * MIB)]
        address = f"127.0.0.1:{listener.port}"
        async with grpc.aio.insecure_channel(address, options=options, compression=algorithm) as ch:
            echo = ch.unary_unary(f"/{SERVICE}/Echo")
            assert await echo(b"x" * 1000) == b"x" * 1000
            large = bytes(range(256)) * 4096  # 1 MiB, assembled from many DATA frames before it is inflated
            assert await echo(large) == large

            async def requests() -> AsyncIterator[bytes]:
                for word in (b"Ab" * 500, b"Cd"):
                    yield word

            answers = [m async for m in ch.stream_stream(f"/{SERVICE}/Chat")(requests())]
            assert answers == [b"AB" * 500, b"ab" * 500, b"CD", b"cd"]
            code, details = await failure(echo(b"\0" * (LIMIT + 1)))  # a few KiB on the wire, 2 MiB + 1 inflated
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details
            assert await echo(b"still fine") == b"still fine"

    serve(test)


def compressed_call(encoding: str, message: bytes, flag: int = 1) -> bytes:
    block = Encoder().encode(
        [(":method", "POST"), (":scheme", "http"), (":path", f"/{SERVICE}/Echo"), (":authority", "x"),
         ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-encoding", encoding)]
    )  # fmt: skip
    return (
        f.PREFACE
        + f.settings({})
        + f.frame(f.HEADERS, f.END_HEADERS, 1, block)
        + f.frame(f.DATA, f.END_STREAM, 1, struct.pack(">BI", flag, len(message)) + message)
    )


@pytest.mark.parametrize(
    "encoding, message, status, text",
    [
        ("snappy", b"whatever", "12", "Compression algorithm 'snappy' is not supported"),
        ("gzip", b"not gzip at all", "13", "Failed to decompress the message"),
        ("gzip", gzip.compress(b"x" * 100)[:-12], "13", "Failed to decompress the message"),
        ("identity", b"x", "13", "grpc-encoding is identity"),
    ],
    ids=["unknown-encoding", "not-compressed-data", "truncated", "flag-under-identity"],
)
def test_messages_that_cannot_be_read_end_their_call(encoding: str, message: bytes, status: str, text: str) -> None:
    async def test(listener: NativeGrpcListener, calls: Calls) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(compressed_call(encoding, message))
        frames = await read_frames(reader, f.HEADERS)
        decoder = Decoder()
        blocks = [decoder.decode(payload) for kind, _, _, payload in frames if kind == f.HEADERS]
        while not any(("grpc-status", status) in block for block in blocks):
            frames = await read_frames(reader, f.HEADERS)
            blocks += [decoder.decode(payload) for kind, _, _, payload in frames if kind == f.HEADERS]
        trailers = dict(blocks[-1])
        assert trailers["grpc-status"] == status and text in unquote(trailers["grpc-message"])
        if status == "12":
            assert trailers["grpc-accept-encoding"] == "identity,gzip,deflate"
        writer.close()
        async with channel(listener) as ch:
            assert await ch.unary_unary(f"/{SERVICE}/Echo")(b"ok") == b"ok"

    serve(test)


def test_server_and_bidirectional_streams() -> None:
    async def test(listener: NativeGrpcListener, calls: Calls) -> None:
        async with channel(listener) as ch:
            answers = [m async for m in ch.unary_stream(f"/{SERVICE}/Count")(b"5")]
            assert answers == [b"0", b"1", b"2", b"3", b"4"]
            assert [m async for m in ch.unary_stream(f"/{SERVICE}/Count")(b"0")] == []

            async def requests() -> AsyncIterator[bytes]:
                for word in (b"Ab", b"Cd"):
                    yield word

            answers = [m async for m in ch.stream_stream(f"/{SERVICE}/Chat")(requests())]
            assert answers == [b"AB", b"ab", b"CD", b"cd"]

    serve(test)


def test_a_passed_deadline_ends_the_call_and_cancels_the_service() -> None:
    async def test(listener: NativeGrpcListener, calls: Calls) -> None:
        async with channel(listener) as ch:
            code, _ = await failure(ch.unary_unary(f"/{SERVICE}/Slow")(b"", timeout=0.3))
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED
            await asyncio.wait_for(calls.cancelled.wait(), 5)

    serve(test)


def test_a_client_cancel_cancels_the_service() -> None:
    async def test(listener: NativeGrpcListener, calls: Calls) -> None:
        async with channel(listener) as ch:
            call = ch.unary_unary(f"/{SERVICE}/Slow")(b"")
            await asyncio.wait_for(calls.started.wait(), 5)
            call.cancel()
            await asyncio.wait_for(calls.cancelled.wait(), 5)
            assert await ch.unary_unary(f"/{SERVICE}/Echo")(b"after") == b"after"

    serve(test)


def raw_call(
    path: str, body: bytes, window: int, method: str = "POST", content_type: str = "application/grpc"
) -> bytes:
    """A client's bytes: preface, SETTINGS (the stream window ``window``), one call of ``path``."""
    block = Encoder().encode(
        [(":method", method), (":scheme", "http"), (":path", path), (":authority", "x"),
         ("content-type", content_type), ("te", "trailers")]
    )  # fmt: skip
    message = struct.pack(">BI", 0, len(body)) + body
    return (
        f.PREFACE
        + f.settings({f.INITIAL_WINDOW_SIZE: window})
        + f.frame(f.HEADERS, f.END_HEADERS, 1, block)
        + f.frame(f.DATA, f.END_STREAM, 1, message)
    )


async def read_frames(reader: asyncio.StreamReader, until: int) -> list[tuple[int, int, int, bytes]]:
    found = []
    while True:
        head = await reader.readexactly(9)
        word, flags, stream_id = f.HEADER.unpack(head)
        payload = await reader.readexactly(word >> 8)
        found.append((word & 0xFF, flags, stream_id, payload))
        if word & 0xFF == until:
            return found


@pytest.mark.parametrize(
    "method, content_type, status", [("GET", "application/grpc", "405"), ("POST", "text/plain", "415")]
)
def test_not_a_grpc_call_gets_an_http_status(method: str, content_type: str, status: str) -> None:
    async def test(listener: NativeGrpcListener, calls: Calls) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(raw_call(f"/{SERVICE}/Echo", b"x", f.DEFAULT_WINDOW, method, content_type))
        got = [frame for frame in await read_frames(reader, f.HEADERS) if frame[0] == f.HEADERS]
        assert got[0][1] & f.END_STREAM and Decoder().decode(got[0][3]) == [(":status", status)]
        writer.close()

    serve(test)


def test_garbage_gets_goaway_and_other_connections_go_on() -> None:
    async def test(listener: NativeGrpcListener, calls: Calls) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(f.PREFACE + f.settings({}) + f.frame(f.HEADERS, f.END_HEADERS, 1, b"\xff\xff\xff\xff\x7f"))
        got = await read_frames(reader, f.GOAWAY)
        assert f.goaway_fields(got[-1][3])[1] == f.COMPRESSION_ERROR
        assert await reader.read() == b""  # closed
        writer.close()
        async with channel(listener) as ch:
            assert await ch.unary_unary(f"/{SERVICE}/Echo")(b"ok") == b"ok"

    serve(test)


@pytest.mark.parametrize("window", [f.DEFAULT_WINDOW, f.MAX_WINDOW], ids=["small-window", "huge-window"])
def test_a_client_that_does_not_read_holds_the_stream_back(window: int) -> None:
    async def test(listener: NativeGrpcListener, calls: Calls) -> None:
        sock = socket.create_connection(("127.0.0.1", listener.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        updates = f.window_update(0, f.MAX_WINDOW - f.DEFAULT_WINDOW) if window == f.MAX_WINDOW else b""
        sock.sendall(raw_call(f"/{SERVICE}/Flood", b"", window) + updates)
        await asyncio.sleep(1.0)  # the service runs as far as the windows and the socket let it
        (protocol,) = listener._connections
        assert calls.produced <= 8
        assert protocol.transport is not None and protocol.transport.get_write_buffer_size() <= 2 * MIB
        produced = calls.produced
        await asyncio.sleep(0.5)
        assert calls.produced == produced  # held, not running ahead
        sock.close()

    serve(test)


class RecordingTransport(asyncio.Transport):
    """Keeps what a protocol writes, one entry per write call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def writelines(self, pieces: Any) -> None:
        self.writes.append(b"".join(bytes(piece) for piece in pieces))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_what_reads_in_a_row_owe_the_client_leaves_in_one_write() -> None:
    """The window updates that the reads of a large message owe (one per quarter of the stream's window) are written
    once the loop has run what is ready, in one write, not one write per read."""

    async def main() -> None:
        table = ServiceTable(SERVICE, METHODS, Calls(), frozenset(name for name, *_ in METHODS))
        protocol = GrpcProtocol(Limits(method_table([table]), LIMIT, LIMIT))
        transport = RecordingTransport()
        protocol.connection_made(transport)
        block = Encoder().encode(
            [(":method", "POST"), (":scheme", "http"), (":path", f"/{SERVICE}/Echo"), (":authority", "x"),
             ("content-type", "application/grpc"), ("te", "trailers")]
        )  # fmt: skip
        message = struct.pack(">BI", 0, MIB) + b"m" * MIB
        stream = f.PREFACE + f.settings({}) + f.frame(f.HEADERS, f.END_HEADERS, 1, block)
        stream += b"".join(f.frame(f.DATA, 0, 1, message[at : at + 16384]) for at in range(0, MIB, 16384))
        transport.writes.clear()  # the server's SETTINGS
        step = min(READ_SIZE, 256 << 10)
        for at in range(0, len(stream), step):  # reads in a row, as the loop makes them while data waits
            piece = stream[at : at + step]
            protocol.get_buffer(-1)[: len(piece)] = piece
            protocol.buffer_updated(len(piece))
        assert transport.writes == []
        await asyncio.sleep(0)
        (written,) = transport.writes
        updates = []
        while written:
            word, _, stream_id = f.HEADER.unpack_from(written)
            if word & 0xFF == f.WINDOW_UPDATE:
                updates.append(stream_id)
            written = written[9 + (word >> 8) :]
        assert updates == [1, 1, 1]  # the stream's window, given back as quarters of it are read

    asyncio.run(main())


def test_a_large_answer_ends_in_one_write_with_its_trailers() -> None:
    """A 1 MiB answer is written a step at a time as it is queued, and its last step goes out with the trailers."""

    async def main() -> None:
        table = ServiceTable(SERVICE, METHODS, Calls(), frozenset(name for name, *_ in METHODS))
        protocol = GrpcProtocol(Limits(method_table([table]), LIMIT, LIMIT))
        transport = RecordingTransport()
        protocol.connection_made(transport)
        block = Encoder().encode(
            [(":method", "POST"), (":scheme", "http"), (":path", f"/{SERVICE}/Echo"), (":authority", "x"),
             ("content-type", "application/grpc"), ("te", "trailers")]
        )  # fmt: skip
        message = struct.pack(">BI", 0, MIB) + b"m" * MIB
        stream = f.PREFACE + f.settings({f.INITIAL_WINDOW_SIZE: 4 * MIB}) + f.window_update(0, 4 * MIB)
        stream += f.frame(f.HEADERS, f.END_HEADERS, 1, block)
        stream += b"".join(f.frame(f.DATA, 0, 1, message[at : at + 16384]) for at in range(0, len(message), 16384))
        stream += f.frame(f.DATA, f.END_STREAM, 1, b"")
        for at in range(0, len(stream), READ_SIZE):
            piece = stream[at : at + READ_SIZE]
            protocol.get_buffer(-1)[: len(piece)] = piece
            protocol.buffer_updated(len(piece))
        for _ in range(10):
            await asyncio.sleep(0)
        kinds = []
        for written in transport.writes:
            found = set()
            while written:
                word, flags, stream_id = f.HEADER.unpack_from(written)
                if stream_id == 1 and word & 0xFF == f.DATA:
                    found.add("data")
                elif stream_id == 1 and word & 0xFF == f.HEADERS:
                    found.add("trailers" if flags & f.END_STREAM else "headers")
                written = written[9 + (word >> 8) :]
            kinds.append(found)
        answer = [found for found in kinds if found]
        assert answer[0] == {"headers", "data"} and answer[-1] == {"data", "trailers"}
        assert all(found == {"data"} for found in answer[1:-1])

    asyncio.run(main())


def test_a_unary_calls_second_message_ends_it_before_more_are_held() -> None:
    """A unary call takes one message: a client that sends more, without ending the stream, is answered at its
    second instead of the server holding every one until the stream ends."""

    async def test(listener: NativeGrpcListener, calls: Calls) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        block = Encoder().encode(
            [(":method", "POST"), (":scheme", "http"), (":path", f"/{SERVICE}/Echo"), (":authority", "x"),
             ("content-type", "application/grpc"), ("te", "trailers")]
        )  # fmt: skip
        message = struct.pack(">BI", 0, 2) + b"hi"
        writer.write(f.PREFACE + f.settings({}) + f.frame(f.HEADERS, f.END_HEADERS, 1, block))
        writer.write(f.frame(f.DATA, 0, 1, message * 2))  # two messages, the stream left open
        decoder = Decoder()
        blocks: list[list[tuple[str, str]]] = []
        while not any(name == "grpc-status" for block in blocks for name, _ in block):
            frames = await asyncio.wait_for(read_frames(reader, f.HEADERS), 5)
            blocks += [decoder.decode(payload) for kind, _, _, payload in frames if kind == f.HEADERS]
        trailers = dict(blocks[-1])
        assert trailers["grpc-status"] == "12" and "Expected one request message, got 2" in unquote(
            trailers["grpc-message"]
        )
        writer.close()

    serve(test)


class ClosableTransport(RecordingTransport):
    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def test_resets_of_calls_whose_deadline_passed_are_not_a_rapid_reset() -> None:
    """A client whose calls time out resets them, often before the server's own timer fires: 1,500 such resets at
    once are its deadlines, not a flood; 1,500 resets of calls with time left end the connection."""

    def run(timeout: str) -> list[int]:
        async def main() -> list[int]:
            table = ServiceTable(SERVICE, METHODS, Calls(), frozenset(name for name, *_ in METHODS))
            protocol = GrpcProtocol(Limits(method_table([table]), LIMIT, LIMIT, max_streams=2000))
            transport = ClosableTransport()
            protocol.connection_made(transport)
            encoder = Encoder()
            headers = [(":method", "POST"), (":scheme", "http"), (":path", f"/{SERVICE}/Slow"), (":authority", "x"),
                       ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", timeout)]  # fmt: skip

            def feed(data: bytes) -> None:
                for at in range(0, len(data), READ_SIZE):
                    piece = data[at : at + READ_SIZE]
                    protocol.get_buffer(-1)[: len(piece)] = piece
                    protocol.buffer_updated(len(piece))

            feed(f.PREFACE + f.settings({}))
            feed(b"".join(f.frame(f.HEADERS, f.END_HEADERS, 2 * i + 1, encoder.encode(headers)) for i in range(1500)))
            await asyncio.sleep(0)  # the server's own timers have not fired: the client's resets come first
            feed(b"".join(f.rst_stream(2 * i + 1, f.CANCEL) for i in range(1500)))
            await asyncio.sleep(0)
            sent = b"".join(transport.writes)
            codes = []
            while sent:
                length = int.from_bytes(sent[:3], "big")
                if sent[3] == f.GOAWAY:
                    codes.append(f.u32(sent[13:17]))
                sent = sent[9 + length :]
            return codes

        return asyncio.run(main())

    assert run("30m") == []  # 30 ms left: within the slack of a client's clock running ahead
    assert run("100S") == [f.ENHANCE_YOUR_CALM]


def test_a_connection_is_idle_for_the_cap_only_once_its_answers_are_written() -> None:
    """At the connection cap an idle connection is closed to make room: not one whose last answer (its call over)
    still waits in the socket's buffer, which closing would cut."""

    class Buffered(ClosableTransport):
        waiting = 0

        def get_write_buffer_size(self) -> int:
            return self.waiting

    table = ServiceTable(SERVICE, METHODS, Calls(), frozenset(name for name, *_ in METHODS))

    async def main() -> None:
        protocol = GrpcProtocol(Limits(method_table([table]), LIMIT, LIMIT))
        assert protocol.idle  # not made yet (a TLS handshake in progress)
        transport = Buffered()
        protocol.connection_made(transport)
        assert protocol.idle
        transport.waiting = 70_000  # an answer's end not taken by the client yet
        assert not protocol.idle
        transport.waiting = 0
        protocol.conn.out.append(b"queued")
        assert not protocol.idle

    asyncio.run(main())
