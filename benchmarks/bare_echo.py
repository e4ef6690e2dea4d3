"""The ceiling: a bare aiohttp low-level server on uvloop that answers every request with its own body.

No routing, no queue, no worker process: what aiohttp alone costs per request on this machine. The model server
can only come close to it, never beat it.

    python -m benchmarks.bare_echo --port 8081
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import uvloop
from aiohttp import web

READY_LINE = "Bare echo listening on"


async def echo(request: web.BaseRequest) -> web.Response:
    """The request's bytes back, with its content type."""
    body = await request.read()
    content_type = request.headers.get("Content-Type", "application/octet-stream")
    return web.Response(body=body, headers={"Content-Type": content_type})


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    http = web.Server(echo, handler_cancellation=True, access_log=None)
    server = await loop.create_server(http, host, port, reuse_address=True)
    print(f"{READY_LINE} {host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await http.shutdown(1.0)
        await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_echo", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
