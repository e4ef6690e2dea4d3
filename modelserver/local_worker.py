"""A worker inside the frontend's process: a runtime (a KServe ``Model`` the user built) served on the server's loop.

A KServe script hands :class:`~modelserver.kserve.ModelServer` model objects it has built; with one worker (the
default, as KServe) they serve in the server's process, so the very object the script loaded is the one that answers.
As in KServe, the model's async hooks run on the server's event loop, and batches run there concurrently (KServe's
concurrency); unlike KServe, its synchronous hooks run on a thread of the model's own (the runtime's executor), so
a slow synchronous ``predict`` never stalls the server.

Everything else is the same as for a worker process: the version's queue, its
:class:`~modelserver.worker_feed.BatchFeed` (through a :class:`LoopChannel` in place of a socket), metrics, response
timeouts and cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from workers.protocol import Attached, item_to_wire, job_from_wire

from .worker_feed import BatchFeed
from .worker_plan import WorkerPlan, WorkerState

logger = logging.getLogger("modelserver.worker")


def _plain(value: Any) -> Any:
    """A body or tensor data as it is: the in-process path has no attachment frames."""
    return value.data if type(value) is Attached else value


def _job_map(wire: list[Any]) -> dict[str, Any]:
    job = job_from_wire(wire)
    job["inputs"] = [(name, content_type, _plain(value)) for name, content_type, value in job["inputs"]]
    if "parameters" in job:  # the job's own: the optional map may hold a dict shared by many jobs (instance_jobs)
        job["parameters"] = dict(job["parameters"])
    if "tensors" in job:
        job["tensors"] = [{**tensor, "data": _plain(tensor["data"])} for tensor in job["tensors"]]
    return job


def _item_array(item: dict[str, Any]) -> list[Any]:
    """A runtime's item as the feed reads an answer (``workers.protocol.item_to_wire``), its body not marked: there
    is no attachment frame in the process."""
    return item_to_wire(item, attaching=False)


class LoopChannel:
    """Where a :class:`BatchFeed` sends its frames for a model in the server's process: ``infer`` runs the batch as a
    task on the server's loop, ``cancel`` marks jobs whose client left, ``shutdown`` does nothing (stopping is the
    worker's). Answers and streamed pieces go straight back to the feed: no thread, no copy, no socket."""

    def __init__(self, runtime: Any, feed: BatchFeed, loop: asyncio.AbstractEventLoop) -> None:
        self._runtime = runtime
        self._feed = feed
        self._loop = loop
        self._cancelled: set[int] = set()
        self._running: set[asyncio.Task[None]] = set()

    def send(self, message: dict[str, Any], checked: bool = True) -> None:
        kind = message["kind"]
        if kind == "infer":
            task = self._loop.create_task(self._answer([_job_map(job) for job in message["jobs"]]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        elif kind == "cancel":
            self._cancelled.update(message["ids"])

    async def _answer(self, jobs: list[dict[str, Any]]) -> None:
        first = int(jobs[0]["id"])
        try:
            items = await self._runtime.answer_all(jobs, self._on_chunk, self._cancelled.__contains__)
        except Exception as exc:  # the runtime itself broke: every job of the batch gets a 500
            logger.exception("%s: the model's runtime failed", self._feed.name)
            items = [_error(int(job["id"]), f"{type(exc).__name__} : {exc}") for job in jobs]
        self._feed.on_result_of(first, [_item_array(item) for item in items])
        self._cancelled.difference_update(int(job["id"]) for job in jobs)

    def _on_chunk(self, item: dict[str, Any]) -> None:
        self._feed.on_chunk(_item_array(item))

    def close(self) -> None:
        """Cancel the batches still running (the worker waited for them as long as it would)."""
        for task in list(self._running):
            task.cancel()


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
        self._channel: LoopChannel | None = None
        self._feeding: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[int] | None = None

    def start(self) -> None:
        self._ready = self._loop.create_future()
        self._channel = LoopChannel(self._runtime, self.feed, self._loop)
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
            self._channel.close()
            self._channel = None
        self.state = WorkerState.STOPPED
        if self._on_stop is not None:
            self._on_stop()
