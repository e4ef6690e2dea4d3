"""The worker's socket loop: say hello, load the handler, run batches, honour cancels.

A reader thread owns the socket's receiving side, so a ``cancel`` reaches the handler (through
``context.is_cancelled``) while a batch runs; the main thread runs the handler. Both send
through :class:`~workers.protocol.SocketChannel`, whose ``send`` is thread-safe.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import signal
import socket
import sys
import threading
from typing import Any

from .protocol import DEFAULT_MAX_FRAME_SIZE, PROTOCOL_VERSION, ProtocolError, SocketChannel

logger = logging.getLogger("workers")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="inherited file descriptor of the connected socket")
    parser.add_argument("--name", default="worker", help="the worker's name, for logs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N")
    parser.add_argument("--max-frame-size", type=int, default=DEFAULT_MAX_FRAME_SIZE, help="largest frame accepted")
    return parser.parse_args(argv)


class _Inbox:
    """Frames from the frontend: work goes to a queue, cancels to a set the handler can read."""

    def __init__(self, channel: SocketChannel) -> None:
        self.channel = channel
        self.work: queue.Queue[dict[str, Any]] = queue.Queue()
        self.cancelled: set[int] = set()
        self._lock = threading.Lock()

    def is_cancelled(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self.cancelled

    def forget(self, job_ids: list[int]) -> None:
        with self._lock:
            self.cancelled.difference_update(job_ids)

    def read_forever(self) -> None:
        try:
            while (message := self.channel.recv()) is not None:
                if message["kind"] == "cancel":
                    with self._lock:
                        self.cancelled.update(message["ids"])
                else:
                    self.work.put(message)
        except (ProtocolError, OSError) as err:
            logger.error("Frontend connection broken: %s", err)
        # The frontend is gone: nobody will read our results, and a handler may be stuck. Leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _load(channel: SocketChannel, message: dict[str, Any]) -> Any:
    from .handler_loader import LoadError, load_service

    try:
        service = load_service(message)
    except LoadError as err:
        channel.send({"kind": "loaded", "status": err.status, "message": str(err)})
        return None
    channel.send({"kind": "loaded", "status": 200, "message": f"loaded model {message['model_name']}"})
    return service


def serve(channel: SocketChannel, device: str) -> int:
    inbox = _Inbox(channel)
    threading.Thread(target=inbox.read_forever, name="frontend-reader", daemon=True).start()
    channel.send({"kind": "hello", "version": PROTOCOL_VERSION, "pid": os.getpid(), "device": device})
    service = None
    while True:
        message = inbox.work.get()
        kind = message["kind"]
        if kind == "shutdown":
            return 0
        if kind == "load":
            service = _load(channel, message)
            if service is None:
                return 1
        elif kind == "infer" and service is not None:
            jobs = message["jobs"]
            items = service.run_batch(jobs, lambda item: channel.send({"kind": "chunk", **item}), inbox.is_cancelled)
            channel.send({"kind": "result", "items": items})
            inbox.forget([job["id"] for job in jobs])
        else:
            logger.error("Unexpected %r frame before the model was loaded", kind)
            return 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL us if the frontend dies, even while a handler is stuck in C code."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    die_with_parent()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    from .ts_compat import install_ts_shim

    install_ts_shim()
    sock = socket.socket(fileno=args.fd)
    channel = SocketChannel(sock, args.max_frame_size)
    try:
        return serve(channel, args.device)
    finally:
        channel.close()
