"""``python -m modelserver.frontend SOCKET INDEX``: one frontend process of a server with ``frontend_processes`` > 1,
started by the supervisor (:mod:`modelserver.supervisor`), never by hand.

It says ``hello`` on the control socket, gets the configuration the command line resolved, and then runs the same
server as a single process does (:class:`~modelserver.app.ModelServer`), joined to the other frontends
(:class:`~modelserver.cluster.Cluster`). When the control socket closes (the supervisor died), it stops as on
SIGTERM: no frontend outlives its server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import Any

from . import logs
from .config import ConfigError, ServerConfig, rebuild_config
from .control import ControlChannel, ControlDecoder, ControlLink, receive_blocking, send_blocking
from .frontend_plan import FrontendRole

logger = logging.getLogger("modelserver.frontend")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m modelserver.frontend SOCKET INDEX (started by the supervisor)", file=sys.stderr)
        return 2
    logs.setup_console()
    index = int(args[1])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    decoder = ControlDecoder()
    try:
        sock.connect(args[0])
        send_blocking(sock, {"kind": "hello", "index": index, "pid": os.getpid()})
        setup, *early = receive_blocking(sock, decoder)
    except OSError as err:
        print(f"modelserver: frontend {index}: no supervisor at {args[0]}: {err}", file=sys.stderr)
        return 1
    if setup["kind"] != "setup":
        print(f"modelserver: frontend {index}: expected setup, got {setup['kind']!r}", file=sys.stderr)
        return 1
    settings = setup["config"]
    try:
        config = rebuild_config(
            settings["properties"],
            os.environ,
            settings["cwd"],
            ncs=settings["ncs"],
            config_file=settings["config_file"],
        )
    except ConfigError as err:
        print(f"modelserver: configuration error: {err}", file=sys.stderr)
        return 2
    role = FrontendRole(index, int(setup["count"]), bool(setup["restart"]))
    return run(config, role, Handshake(sock, decoder, early, settings.get("auth")))


@dataclass
class Handshake:
    """The control socket after ``hello`` and ``setup``: its decoder (which may hold part of the next message), the
    messages that came with the setup, and the token keys the supervisor made."""

    sock: socket.socket
    decoder: ControlDecoder
    early: list[dict[str, Any]]
    shared_auth: Any


def run(config: ServerConfig, role: FrontendRole, handshake: Handshake) -> int:
    import uvloop

    from workers.allocator import keep_freed_memory

    from .http_limits import raise_fd_limit

    keep_freed_memory()
    raise_fd_limit()
    logs.setup_files(config.log_location)
    try:
        uvloop.run(_serve(config, role, handshake))
    except ConfigError as err:
        print(f"modelserver: configuration error: {err}", file=sys.stderr)
        return 2
    finally:
        logs.close()
    return 0


async def _serve(config: ServerConfig, role: FrontendRole, handshake: Handshake) -> None:
    from . import worker_pool
    from .app import ModelServer
    from .cluster import Cluster

    worker_pool.number_workers_for(role.index)
    server = ModelServer(config, role)
    if handshake.shared_auth is not None and server.auth is not None:
        server.auth.adopt(handshake.shared_auth)
    link = ControlLink()

    def lost() -> None:
        link.closed()
        logger.error("Frontend %d: the control channel to the supervisor closed; stopping", role.index)
        server.request_stop()

    loop = asyncio.get_running_loop()
    _, channel = await loop.create_unix_connection(
        lambda: ControlChannel(link.on_message, lost, handshake.decoder), sock=handshake.sock
    )
    link.channel = channel
    Cluster(server, link, role)
    for message in handshake.early:
        link.on_message(message)
    again = " (started again)" if role.restarted else ""
    logger.info("Frontend %d of %d, pid %d%s", role.index, role.count, os.getpid(), again)
    await server.serve_forever()


if __name__ == "__main__":
    raise SystemExit(main())
