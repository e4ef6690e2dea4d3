"""The worker's socket loop: say hello, load the model's runtime, run batches, honour cancels.

What runs the model is a :class:`~workers.runtimes.Runtime` chosen by the ``load`` message's ``runtime``; this loop
knows no runtime in particular.

One thread reads and writes the socket; a ``cancel`` reaches a running handler when it asks
(``context.is_cancelled``, ``send_intermediate_predict_response``), and so do ``pause``/``resume``, the frontend's
backpressure on a stream whose client reads slowly: ``send_intermediate_predict_response`` then waits. Handlers that
start threads of their own may still send: :class:`~workers.socket_channel.SocketChannel`'s ``send`` is thread-safe.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from typing import Any, Final

from .allocator import keep_freed_memory
from .protocol import DEFAULT_MAX_FRAME_SIZE, PROTOCOL_VERSION, ProtocolError, item_to_wire, job_from_wire
from .runtimes import LoadError, Runtime, load_runtime
from .shared_ring import SharedRings
from .socket_channel import SocketChannel
from .tensors import Tensor

logger = logging.getLogger("workers")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description="A model server worker process.")
    parser.add_argument("--fd", type=int, required=True, help="inherited file descriptor of the connected socket")
    parser.add_argument("--name", default="worker", help="the worker's name, for logs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N")
    parser.add_argument("--max-frame-size", type=int, default=DEFAULT_MAX_FRAME_SIZE, help="largest frame accepted")
    parser.add_argument("--rank", type=int, default=None, help="this process's rank in a worker group")
    parser.add_argument(
        "--shared-memory-fd", type=int, default=None, help="inherited memfd of the shared memory rings, if any"
    )
    parser.add_argument("--shared-memory-size", type=int, default=0, help="bytes of each shared memory ring")
    return parser.parse_args(argv)


class _Inbox:
    """Frames from the frontend, read on the one thread the worker has.

    Between batches the worker blocks in :meth:`next`. While a handler runs, nobody reads the
    socket until the handler asks whether a job was cancelled (``context.is_cancelled`` or
    ``send_intermediate_predict_response``): :meth:`is_cancelled` then takes in whatever frames are
    waiting, without blocking. Cancels are recorded; other frames (the next batch, a shutdown)
    wait their turn. No thread hand-off sits on the hot path.
    """

    def __init__(self, channel: SocketChannel) -> None:
        self.channel = channel
        self.pending: deque[dict[str, Any]] = deque()
        self.running: list[dict[str, Any]] = []
        """The jobs of the batch the handler runs now (empty between batches)."""
        self.cancelled: set[int] = set()
        self.paused: set[int] = set()

    def next(self) -> dict[str, Any]:
        while not self.pending:
            self._take(self._recv())
        return self.pending.popleft()

    def is_cancelled(self, job_id: int) -> bool:
        while self.channel.readable():
            self._take(self._recv())
        return job_id in self.cancelled

    def wait_writable(self, job_id: int) -> None:
        """Backpressure: while the frontend holds more of this job's stream than it buffers for a slow client, it
        has sent ``pause``; block (reading frames, so a ``resume`` or ``cancel`` gets through) until it may go on."""
        while self.channel.readable():
            self._take(self._recv())
        while job_id in self.paused and job_id not in self.cancelled:
            self._take(self._recv())

    def forget(self, job_ids: list[int]) -> None:
        self.cancelled.difference_update(job_ids)
        self.paused.difference_update(job_ids)

    def _take(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "cancel":
            self.cancelled.update(self._held(message["ids"]))
        elif kind == "pause":
            self.paused.update(self._held(message["ids"]))
        elif kind == "resume":
            self.paused.difference_update(message["ids"])
        else:
            self.pending.append(message)

    def _held(self, ids: list[int]) -> list[int]:
        """Those of ``ids`` whose jobs this worker still holds (running, or waiting in a batch not yet started).

        The frontend may cancel or pause a job whose result is already on its way back (its client left meanwhile):
        such an id would never be forgotten, so it is not recorded. A job's ``cancel`` always comes after its batch,
        on the same socket, so a job not held here is finished."""
        held = {job["id"] for job in self.running}
        for message in self.pending:
            if message["kind"] == "infer":
                held.update(job[0] for job in message["jobs"] if type(job) is list and job)  # job arrays
        return [job_id for job_id in ids if job_id in held]

    def _recv(self) -> dict[str, Any]:
        try:
            message = self.channel.recv()
        except (ProtocolError, OSError) as err:
            logger.error("Frontend connection broken: %s", err)
            message = None
        if message is None:  # the frontend is gone: nobody will read our results
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return message


def _load(channel: SocketChannel, message: dict[str, Any]) -> Runtime | None:
    try:
        runtime = load_runtime(message)
    except LoadError as err:
        channel.send({"kind": "loaded", "status": err.status, "message": str(err)})
        return None
    # The model and what it imported (torch, often) stay for the worker's life: out of the collector's reach, full
    # collections stop walking them (tens of ms each, on the request path).
    gc.collect()
    gc.freeze()
    channel.send({"kind": "loaded", "status": 200, "message": f"loaded model {message['model_name']}"})
    return runtime


def serve(channel: SocketChannel, device: str, rank: int | None = None) -> int:
    """Serve the frontend until it says ``shutdown`` or goes away.

    A rank above 0 of a worker group (docs/large_models.md) runs every batch it is sent like rank 0, so the
    handler's collective calls meet, but answers nothing: its streamed pieces and results are dropped, as TorchServe
    drops them on ranks other than 0.
    """
    inbox = _Inbox(channel)
    hello = {"kind": "hello", "version": PROTOCOL_VERSION, "pid": os.getpid(), "device": device}
    if rank is not None:
        hello["rank"] = rank
    channel.send(hello)
    follower = rank is not None and rank > 0
    runtime = None

    def emit(item: dict[str, Any]) -> None:
        inbox.wait_writable(item["id"])
        channel.send({"kind": "chunk", "item": _wire_item(item)})

    while True:
        message = inbox.next()
        kind = message["kind"]
        if kind == "shutdown":
            return 0
        if kind == "load":
            runtime = _load(channel, message)
            if runtime is None:
                return 1
        elif kind == "infer" and runtime is not None:
            try:
                jobs = inbox.running = [job_from_wire(job) for job in message["jobs"]]
            except (ProtocolError, TypeError) as err:
                logger.error("Malformed infer frame from the frontend: %s", err)
                return 1
            if follower:
                runtime.run_batch(jobs, _drop, inbox.is_cancelled)
                inbox.running = []
                inbox.forget([job["id"] for job in jobs])
                continue
            started = time.monotonic()
            items = runtime.run_batch(jobs, emit, inbox.is_cancelled)
            inbox.running = []
            hold = _may_hold(channel, time.monotonic() - started)
            result = {"kind": "result", "items": list(map(_wire_item, items))}
            channel.send(result, hold=hold, checked=False)
            if inbox.cancelled or inbox.paused:  # usually neither: no list of ids to forget
                inbox.forget([job["id"] for job in jobs])
        else:
            logger.error("Unexpected %r frame before the model was loaded", kind)
            return 1


def _drop(item: dict[str, Any]) -> None:
    """A follower rank's streamed piece: rank 0 sends the group's."""


def _wire_item(item: dict[str, Any]) -> list[Any]:
    """The item as a ``result`` or ``chunk`` frame carries it: a large body marked to travel as an attachment frame,
    and its output tensors as tensor maps, whose large data travel the same way (docs/protocol.md)."""
    tensors = item.get("tensors")
    if tensors:
        item["tensors"] = [tensor.to_wire() if isinstance(tensor, Tensor) else tensor for tensor in tensors]
    return item_to_wire(item)


HOLD_SECONDS: Final = 0.001
HOLD_BYTES: Final = 64 * 1024  # in all; a single frame of HOLD_LIMIT (socket_channel.py) or more is never held
FAST_BATCH_SECONDS: Final = 0.0002


def _may_hold(channel: SocketChannel, batch_seconds: float) -> bool:
    """Hold a result back while the next batch is already here, if batches are fast (this one took less than
    ``FAST_BATCH_SECONDS``), for at most ``HOLD_SECONDS`` and ``HOLD_BYTES`` in all: a fast model's results then
    leave in one write and wake the frontend once, while a slow model's results are never held."""
    return (
        batch_seconds < FAST_BATCH_SECONDS
        and channel.has_ready
        and channel.held_for() < HOLD_SECONDS
        and channel.held_bytes < HOLD_BYTES
    )


def die_with_parent() -> None:
    """Ask Linux to SIGKILL us if the frontend dies, even while a handler is stuck in C code."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def yield_to_frontend_on_wakeup() -> None:
    """Run under SCHED_BATCH (Linux): the same CPU share as before, but a frame arriving from the frontend no
    longer preempts the frontend on the spot. On a shared core the frontend then finishes its event-loop pass and
    the worker takes every waiting batch in one go, instead of one context switch per request (measured with the
    echo model at c=64, server on one core: the frontend's context switches fell from ~1.0 to ~0.25 per request).
    Handlers are compute jobs, which is what the policy is for; nice levels and CPU shares are unchanged."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    die_with_parent()
    yield_to_frontend_on_wakeup()
    keep_freed_memory()  # a large frame's buffer reuses freed heap instead of new zeroed pages each time
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    sock = socket.socket(fileno=args.fd)
    rings = None
    if args.shared_memory_fd is not None:
        rings = SharedRings.attach(args.shared_memory_fd, args.shared_memory_size).worker_ends()
    channel = SocketChannel(sock, args.max_frame_size, rings)
    try:
        return serve(channel, args.device, args.rank)
    finally:
        channel.close()
