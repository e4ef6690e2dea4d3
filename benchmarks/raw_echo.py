"""The parser's ceiling: an HTTP/1.1 echo written straight on a uvloop protocol with httptools (llhttp), no
framework. Each request's body goes back byte for byte with its content type; keep-alive and pipelining work (answers
leave in request order, since each is written as soon as its request is complete). What an HTTP request costs when
nothing but the parser and the socket run.

    python -m benchmarks.raw_echo --port 8082
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import httptools
import uvloop

READY_LINE = "Raw echo listening on"


class EchoProtocol(asyncio.Protocol):
    """One connection: feeds bytes to the parser, writes an answer when a message is complete."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []
        self.content_type = b"application/octet-stream"
        self.header_name = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.transport.close()

    # parser callbacks
    def on_message_begin(self) -> None:
        self.body = []
        self.content_type = b"application/octet-stream"

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        keep_alive = self.parser.should_keep_alive()
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: "
            + self.content_type
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + (b"\r\n\r\n" if keep_alive else b"\r\nConnection: close\r\n\r\n")
        )
        transport = self.transport
        if transport is None:
            return
        transport.write(head + body if len(body) < 16384 else head)
        if len(body) >= 16384:
            transport.write(body)
        if not keep_alive:
            transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(EchoProtocol, host, port, reuse_address=True, backlog=1024)
    print(f"{READY_LINE} {host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.raw_echo", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
