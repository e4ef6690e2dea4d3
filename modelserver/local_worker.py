"""A worker inside the frontend's process: a runtime (a KServe ``Model`` the user built) on a thread of its own.

A KServe script hands :class:`~modelserver.kserve.ModelServer` model objects it has built; with one worker (the
default, as KServe) they serve in the server's process, so the very object the script loaded is the one that answers.
The model never runs on the server's event loop: its runtime (:class:`~workers.runtimes.kserve.KServeRuntime`) has
an event loop on a thread of its own, where async hooks run and sync hooks block only that thread, so a slow model
never stalls the server. Batches run there concurrently (KServe's concurrency), and each answer goes back to the
server's loop as soon as it is ready.

Everything else is the same as for a worker process: the version's queue, its
:class:`~modelserver.worker_feed.BatchFeed` (through a :class:`LocalChannel` in place of a socket), metrics,
response timeouts and cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from typing import Any

from workers.protocol import Attached

from .worker_feed import BatchFeed
from .worker_plan import WorkerPlan, WorkerState

logger = logging.getLogger("modelserver.worker")


def _plain(value: Any) -> Any:
    """A body or tensor data as it is: the in-process path has no attachment frames."""
    return value.data if type(value) is Attached else value


def _job_map(wire: dict[str, Any]) -> dict[str, Any]:
    job = dict(wire)
    job["inputs"] = [(name, content_type, _plain(value)) for name, content_type, value in wire["inputs"]]
    if "tensors" in wire:
        job["tensors"] = [{**tensor, "data": _plain(tensor["data"])} for tensor in wire["tensors"]]
    return job


class LocalChannel:
    """Where a :class:`BatchFeed` sends its frames for an in-process runtime: ``infer`` runs the batch on the
    runtime's loop, ``cancel`` marks jobs whose client left, ``shutdown`` does nothing (stopping is the worker's).

    Batches cross to the runtime's thread, and answers come back, through a deque each; a thread is woken (one
    self-pipe write) only when its deque was empty, so a burst of requests or answers costs one wake-up, not one
    each."""

    def __init__(self, runtime: Any, feed: BatchFeed, loop: asyncio.AbstractEventLoop) -> None:
        self._runtime = runtime
        self._feed = feed
        self._loop = loop
        self._cancelled: set[int] = set()
        self._inbox: deque[list[dict[str, Any]]] = deque()  # batches for the runtime's thread
        self._outbox: deque[tuple[int, Any]] = deque()  # (first job id, items) or (-1, chunk item), for the server
        self._inbox_woken = False
        self._outbox_woken = False
        self._runtime_loop = runtime.new_loop()
        self._thread = threading.Thread(target=self._runtime_loop.run_forever, name=f"{feed.name}-model", daemon=True)
        self._thread.start()

    def send(self, message: dict[str, Any], checked: bool = True) -> None:
        kind = message["kind"]
        if kind == "infer":
            self._inbox.append([_job_map(job) for job in message["jobs"]])
            if not self._inbox_woken:
                self._inbox_woken = True
                self._runtime_loop.call_soon_threadsafe(self._take_inbox)
        elif kind == "cancel":
            self._cancelled.update(message["ids"])

    def _take_inbox(self) -> None:
        """On the runtime's thread: start every batch that has arrived."""
        self._inbox_woken = False
        create_task = self._runtime_loop.create_task
        while self._inbox:
            create_task(self._answer(self._inbox.popleft()))

    async def _answer(self, jobs: list[dict[str, Any]]) -> None:
        """On the runtime's thread: run one batch, then hand its items to the feed on the server's loop."""
        first = int(jobs[0]["id"])
        try:
            items = await self._runtime.answer_all(jobs, self._emit_chunk, self._cancelled.__contains__)
        except Exception as exc:  # the runtime itself broke: every job of the batch gets a 500
            logger.exception("%s: the model's runtime failed", self._feed.name)
            items = [_error(int(job["id"]), f"{type(exc).__name__} : {exc}") for job in jobs]
        self._post(first, items)
        self._cancelled.difference_update(int(job["id"]) for job in jobs)

    def _emit_chunk(self, item: dict[str, Any]) -> None:
        self._post(-1, item)

    def _post(self, first: int, payload: Any) -> None:
        self._outbox.append((first, payload))
        if not self._outbox_woken:
            self._outbox_woken = True
            self._loop.call_soon_threadsafe(self._take_outbox)

    def _take_outbox(self) -> None:
        """On the server's loop: deliver every answer and streamed piece that has arrived, in order."""
        self._outbox_woken = False
        feed = self._feed
        while self._outbox:
            first, payload = self._outbox.popleft()
            if first < 0:
                feed.on_chunk(payload)
            else:
                feed.on_result_of(first, payload)

    def close(self) -> None:
        """Stop the runtime's loop and thread (after the batch it runs, if any)."""
        self._runtime_loop.call_soon_threadsafe(self._runtime_loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._runtime_loop.close()


def _error(job_id: int, message: str) -> dict[str, Any]:
    return {"id": job_id, "status": 500, "reason": "", "headers": {}, "content_type": "", "error": message}


class LocalWorker:
    """A member of a model version's worker pool that runs an in-process runtime (see the module docstring)."""

    def __init__(self, worker_id: int, plan: WorkerPlan, runtime: Any, on_stop: Any = None) -> None:
        self.worker_id = worker_id
        self.gpu_id: int | None = None
        self.name = f"W-{worker_id}-{plan.model_name}_{plan.model_version}"
        self.pid: int | None = os.getpid()
        self.start_time = time.time()
        self.state = WorkerState.STARTING
        self.feed = BatchFeed(self.name, plan, self._timed_out)
        self._runtime = runtime
        self._on_stop = on_stop
        self._loop = plan.loop
        self._channel: LocalChannel | None = None
        self._feeding: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[int] | None = None

    def start(self) -> None:
        self._ready = self._loop.create_future()
        self._channel = LocalChannel(self._runtime, self.feed, self._loop)
        self.feed.open(self._channel)  # type: ignore[arg-type]  # it sends frames as a socket channel does
        self.state = WorkerState.READY
        self._feeding = self._loop.create_task(self.feed.run(), name=f"{self.name}-feed")
        self._ready.set_result(200)

    async def wait_ready(self) -> int:
        assert self._ready is not None, "start() the worker first"
        return await asyncio.shield(self._ready)

    def healthy(self, max_retry_seconds: float, loaded_at_startup: bool = False) -> bool:
        return self.state is WorkerState.READY

    def _timed_out(self) -> None:
        """A batch ran past ``responseTimeout``: an in-process model cannot be killed; its jobs are answered."""
        logger.error("%s: no response within the response timeout; its requests are answered 500", self.name)
        self.feed.release()
        if self._channel is not None:
            self.feed.open(self._channel)  # type: ignore[arg-type]

    async def stop(self, grace: float = 5.0) -> None:
        """Take no more work, let the batches in the model finish (up to ``grace``), stop the model's thread."""
        self.feed.close()
        if self._feeding is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._feeding), grace)
            self._feeding.cancel()
        self.feed.release()
        if self._channel is not None:
            await asyncio.to_thread(self._channel.close)
            self._channel = None
        self.state = WorkerState.STOPPED
        if self._on_stop is not None:
            self._on_stop()
