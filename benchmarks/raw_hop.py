"""The floor of a Python frontend with a process hop: the raw uvloop + httptools echo (``raw_echo``) whose bodies go
to a worker process and back (``hop_echo``'s worker and framing), with callbacks only: no coroutine, task, future,
router, queue, batching, metrics or log. Each request costs the parser, one msgpack frame each way (the frames of
one event-loop pass leave in one write, as the server's worker channel does) and one write to the client.

Beside our server in the same run it says how much of our frontend's CPU per request is the sockets, the parser and
the hop (this floor), and how much is our own machinery (the rest).

    python -m benchmarks.raw_hop --port 8084           # starts its worker: python -m benchmarks.hop_echo --worker FD
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable

import msgpack
import uvloop

from .hop_echo import HEADER, WORKER_LINE, start_worker
from .raw_echo import EchoProtocol

READY_LINE = "Raw hop listening on"
LARGE_BODY = 16384


class WorkerLink(asyncio.Protocol):
    """The frontend's end of the worker socket: one callback per request in flight, by id."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.unpacker = msgpack.Unpacker()
        self.buffer = bytearray()
        self.waiting: dict[int, Callable[[bytes], None]] = {}
        self.outgoing: list[bytes] = []
        self.next_id = 0
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        start = 0
        while len(buffer) - start >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, start)
            end = start + HEADER.size + size
            if len(buffer) < end:
                break
            message = msgpack.unpackb(memoryview(buffer)[start + HEADER.size : end])
            start = end
            done = self.waiting.pop(message["id"], None)
            if done is not None:
                done(message["body"])
        del buffer[:start]

    def call(self, body: bytes, done: Callable[[bytes], None]) -> None:
        self.next_id += 1
        self.waiting[self.next_id] = done
        payload = msgpack.packb({"id": self.next_id, "body": body})
        if not self.outgoing:
            self.loop.call_soon(self._write_out)
        self.outgoing += (HEADER.pack(len(payload)), payload)

    def _write_out(self) -> None:
        frames, self.outgoing = self.outgoing, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(frames)


class HopProtocol(EchoProtocol):
    """The raw echo's connection (its parser callbacks); a complete request goes to the worker and its answer is
    written when the body is back."""

    def __init__(self, link: WorkerLink) -> None:
        super().__init__()
        self.link = link

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive()
        content_type = self.content_type

        def answer(body: bytes) -> None:
            transport = self.transport
            if transport is None:
                return
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: "
                + content_type
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + (b"\r\n\r\n" if keep_alive else b"\r\nConnection: close\r\n\r\n")
            )
            if len(body) < LARGE_BODY:
                transport.write(head + body)
            else:
                transport.write(head)
                transport.write(body)
            if not keep_alive:
                transport.close()

        self.link.call(b"".join(self.body), answer)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ours, worker = start_worker()
    _, link = await loop.create_unix_connection(WorkerLink, sock=ours)
    server = await loop.create_server(lambda: HopProtocol(link), host, port, reuse_address=True, backlog=1024)
    print(f"{READY_LINE} {host}:{port}, {WORKER_LINE} {worker.pid}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        if link.transport is not None:
            link.transport.close()
        worker.terminate()
        await asyncio.to_thread(worker.wait, 5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.raw_hop", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
