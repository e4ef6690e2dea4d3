"""The process hop's ceiling: a minimal aiohttp frontend that sends each request body to one worker process as a
length-prefixed msgpack map over a Unix socket, batch 1, and answers with what the worker sends back (the body,
echoed). No routing, queue, batching, metrics or log: what one aiohttp request plus one hop to another process costs.

    python -m benchmarks.hop_echo --port 8083          # starts its worker: python -m benchmarks.hop_echo --worker FD
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys

import msgpack
import uvloop
from aiohttp import web

READY_LINE = "Hop echo listening on"
WORKER_LINE = "worker pid"
HEADER = struct.Struct(">I")


def frame(message: dict[str, object]) -> bytes:
    payload = msgpack.packb(message)
    return HEADER.pack(len(payload)) + payload


def split_frames(buffer: bytearray) -> list[dict[str, object]]:
    """The complete frames at the front of ``buffer``, decoded and removed from it."""
    messages: list[dict[str, object]] = []
    start = 0
    while len(buffer) - start >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer, start)
        end = start + HEADER.size + size
        if len(buffer) < end:
            break
        messages.append(msgpack.unpackb(buffer[start + HEADER.size : end]))
        start = end
    del buffer[:start]
    return messages


def run_worker(fd: int) -> int:
    """The worker: a blocking loop that answers every request frame with its body, as a model's echo would."""
    sock = socket.socket(fileno=fd)
    buffer = bytearray()
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return 0
        buffer += data
        out = [frame({"id": m["id"], "body": m["body"]}) for m in split_frames(buffer)]
        if out:
            sock.sendall(b"".join(out))


class WorkerLink(asyncio.Protocol):
    """The frontend's end of the worker socket: one future per request in flight, by id."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: dict[int, asyncio.Future[bytes]] = {}
        self.next_id = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for message in split_frames(self.buffer):
            future = self.waiting.pop(message["id"], None)  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(message["body"])  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the worker is gone"))
        self.waiting.clear()

    async def call(self, body: bytes) -> bytes:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the worker is gone")
        self.next_id += 1
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        self.transport.write(frame({"id": self.next_id, "body": body}))
        return await future


def start_worker() -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """The echo worker process on one end of a Unix socket pair; our end of it, and the process."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    command = [sys.executable, "-m", "benchmarks.hop_echo", "--worker", str(theirs.fileno())]
    worker = subprocess.Popen(command, pass_fds=(theirs.fileno(),))
    theirs.close()
    return ours, worker


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ours, worker = start_worker()
    _, link = await loop.create_unix_connection(WorkerLink, sock=ours)

    async def echo(request: web.BaseRequest) -> web.Response:
        body = await link.call(await request.read())
        content_type = request.headers.get("Content-Type", "application/octet-stream")
        return web.Response(body=body, headers={"Content-Type": content_type})

    http = web.Server(echo, handler_cancellation=True, access_log=None)
    server = await loop.create_server(http, host, port, reuse_address=True)
    print(f"{READY_LINE} {host}:{port}, {WORKER_LINE} {worker.pid}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await http.shutdown(1.0)
        await server.wait_closed()
        if link.transport is not None:
            link.transport.close()
        worker.terminate()
        await asyncio.to_thread(worker.wait, 5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hop_echo", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--worker", type=int, help="run as the worker on this inherited socket descriptor")
    args = parser.parse_args(argv)
    if args.worker is not None:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        return run_worker(args.worker)
    if args.port is None:
        parser.error("--port is required")
    uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
