"""One worker: its process, its socket and its life cycle (the frontend side of docs/protocol.md).

A :class:`WorkerConnection` spawns its process, waits for ``hello``, sends ``load`` (bounded by
``startupTimeout``), then opens its :class:`~modelserver.worker_feed.BatchFeed`, which pulls
batches from the model's :class:`~modelserver.batcher.BatchQueue` and matches ``result`` and
``chunk`` frames to their jobs.

When the process dies, the running batch is answered at once (500 "Worker died."), batches that
had not started go back to the head of the queue, and the worker is started again after a
back-off (TorchServe's Fibonacci schedule, capped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from mypy_extensions import mypyc_attr

from .worker_channel import FrameChannel, WorkerChannel
from .worker_feed import BatchFeed
from .worker_plan import WorkerPlan, WorkerState
from .worker_process import forward_output, shared_rings, spawn_worker

if TYPE_CHECKING:
    from workers.shared_ring import RingReader, RingWriter

logger = logging.getLogger("modelserver.worker")

# TorchServe's retry schedule in seconds; the index advances before use, so the first wait is 1 s.
BACKOFF_SECONDS: Final[tuple[int, ...]] = (0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597)
_RETRY_CAP_SECONDS: Final = 60


class WorkerFailed(Exception):
    """The worker must be restarted: it died, timed out, sent garbage or failed to load."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        """It did not answer in time (startup or response timeout): TorchServe's WorkerInitializationException."""


NO_ANSWER: Final = "WorkerInitializationException: Backend worker did not respond in given time"
"""TorchServe's wording, which its users alert on."""


@mypyc_attr(allow_interpreted_subclasses=True)  # a worker group (worker_group.py) is one
class WorkerConnection:
    def __init__(self, worker_id: int, plan: WorkerPlan, gpu_id: int | None) -> None:
        self.worker_id = worker_id
        self.plan = plan
        self._queue = plan.queue
        self._metrics = plan.metrics
        self._loop = plan.loop
        self.gpu_id = gpu_id
        self.name = f"W-{worker_id}-{plan.model_name}_{plan.model_version}"
        self.state = WorkerState.STARTING
        self.pid: int | None = None
        self.start_time = time.time()
        self.failing_since: float | None = None
        self.ever_ready = False
        self._max_frame_size = plan.max_frame_size
        self._processes: list[asyncio.subprocess.Process] = []
        self._channel: FrameChannel | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.feed = BatchFeed(self.name, plan, self._kill)
        """The batches this worker holds (what a model version hands work to)."""
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._first_start: asyncio.Future[int] | None = None

    @property
    def device(self) -> str:
        return "cpu" if self.gpu_id is None else f"cuda:{self.gpu_id}"

    def start(self) -> None:
        self._first_start = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def wait_ready(self) -> int:
        """200 once the model has loaded, else the status of the first failed start (500; 507 out of memory)."""
        assert self._first_start is not None, "start() the worker first"
        return await asyncio.shield(self._first_start)

    def _settle(self, status: int) -> None:
        if self._first_start is not None and not self._first_start.done():
            self._first_start.set_result(status)

    def healthy(self, max_retry_seconds: float, loaded_at_startup: bool = False) -> bool:
        """TorchServe's rule: a worker is unhealthy once it has failed continuously for too long.

        Our addition: a startup model's worker that has never loaded and has failed is unhealthy at once,
        so ``/ping`` does not call a server healthy whose startup models cannot load.
        """
        if self.failing_since is None:
            return True
        if loaded_at_startup and not self.ever_ready:
            return False
        return time.monotonic() - self.failing_since < max_retry_seconds

    async def stop(self, grace: float = 5.0) -> None:
        """Ask the worker to exit after the batches it holds; kill it if it has not within ``grace`` seconds.

        The life-cycle task is never cancelled mid-step (a cancelled spawn would orphan its process):
        it sees ``_stopping``, cleans up and returns by itself.
        """
        self._stopping = True
        self._stop_requested.set()
        self.feed.close()
        if self._channel is not None and self.state is WorkerState.READY:
            self._channel.send({"kind": "shutdown"})
        else:
            self._kill()  # still loading: there is nothing to finish
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                self._kill()
                await self._task
        self.state = WorkerState.STOPPED
        self._settle(500)

    # -- the life cycle -------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                await self._start_process()
                await self._handshake()
                if self.failing_since is not None:
                    logger.info("Auto recovery succeeded, reset recoveryStartTS")
                self.failing_since, attempt = None, 0
                await self._serve_until_closed()
            except WorkerFailed as err:
                if self._stopping:
                    pass
                elif err.timed_out:
                    logger.error("%s: %s; Backend worker error: %s", self.name, err, NO_ANSWER)
                else:
                    logger.warning("%s: %s", self.name, err)
            except Exception:
                logger.exception("%s: unexpected failure; restarting the worker", self.name)
            finally:
                await self._cleanup()
                self._settle(500)
            if self._stopping:
                return
            if self.failing_since is None:
                self.failing_since = time.monotonic()
                logger.info("Auto recovery start timestamp: %d", int(time.time()))
            attempt = min(attempt + 1, len(BACKOFF_SECONDS) - 1)
            delay = min(BACKOFF_SECONDS[attempt], _RETRY_CAP_SECONDS)
            logger.info("Retry worker: %d in %d seconds.", self.worker_id, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay)
            if not self._stopping:
                self._metrics.worker_restarted()

    async def _start_process(self) -> None:
        self.state = WorkerState.STARTING
        self.start_time = time.time()
        loop = asyncio.get_running_loop()
        self._replies = {kind: loop.create_future() for kind in ("hello", "loaded")}
        self._channel = await self._spawn()

    async def _spawn(self) -> FrameChannel:
        """Start the worker's process and open its socket (a worker group starts its ranks here instead)."""
        environ = {**os.environ, **self.plan.environment} if self.plan.environment else None
        rings = shared_rings(self.plan.shared_memory)
        process, sock = await spawn_worker(
            self.name, self.device, self.plan.model_dir, self._max_frame_size, environ, rings=rings
        )
        ends = rings.frontend_ends() if rings is not None else None
        return await self._attach(process, sock, self.name, self._on_message, self._metrics.backend_line, ends)

    async def _attach(
        self,
        process: asyncio.subprocess.Process,
        sock: socket.socket,
        log_prefix: str,
        on_message: Callable[[dict[str, Any]], None],
        on_metric: Callable[[str], None] | None,
        rings: tuple[RingWriter, RingReader] | None = None,
    ) -> WorkerChannel:
        """Own a spawned process: forward its output to the log and open its socket on the event loop."""
        self._processes.append(process)
        if len(self._processes) == 1:  # a group's rank 0
            self.pid = process.pid
        if self._stopping:
            sock.close()
            raise WorkerFailed("stopping")
        asyncio.create_task(forward_output(process.stdout, f"{log_prefix}-stdout", on_metric))
        asyncio.create_task(forward_output(process.stderr, f"{log_prefix}-stderr", on_metric))
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_unix_connection(
            lambda: WorkerChannel(on_message, self._max_frame_size, rings), sock=sock
        )
        return channel

    async def _handshake(self) -> None:
        plan = self.plan
        started = time.monotonic()
        hello = await self._reply("hello", plan.startup_timeout)
        logger.debug("%s hello: pid=%s device=%s", self.name, hello.get("pid"), hello.get("device"))
        assert self._channel is not None
        self._channel.send(plan.load_message(self.gpu_id))
        left = max(0.0, plan.startup_timeout - (time.monotonic() - started))
        loaded = await self._reply("loaded", left)
        if loaded["status"] != 200:
            self._settle(loaded["status"])
            raise WorkerFailed(f"failed to load model: {loaded['status']} {loaded['message']}")
        self.state = WorkerState.READY
        self.ever_ready = True
        if not self._stopping:
            self.feed.open(self._channel)
        self._settle(200)
        self._metrics.worker_loaded(self.name, time.time() - self.start_time)
        logger.info(
            "%s ready: model %s loaded in %.0f ms", self.name, plan.model_name, (time.monotonic() - started) * 1000
        )

    async def _reply(self, kind: str, timeout: float) -> dict[str, Any]:
        """Wait for ``hello`` or ``loaded``: its future exists before the socket opens, so an early frame waits."""
        future = self._replies[kind]
        assert self._channel is not None
        waits: set[asyncio.Future[Any]] = {future, self._channel.closed}
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when="FIRST_COMPLETED")
        self._replies.pop(kind, None)
        if future in done:
            return future.result()
        if self._channel.closed in done:
            raise WorkerFailed("Worker disconnected")
        logger.error(
            "%s: no %r in %.0f s; Number or consecutive unsuccessful inference %d",
            self.name,
            kind,
            timeout,
            self.plan.failures.grow(),
        )
        raise WorkerFailed(f"no {kind!r} within {timeout:.0f} s (startupTimeout)", timed_out=True)

    # -- serving ---------------------------------------------------------------------------------

    async def _serve_until_closed(self) -> None:
        """Feed batches until the socket closes (death, kill on timeout) or a stop finishes the feed."""
        assert self._channel is not None
        closed = self._channel.closed
        feeder = asyncio.create_task(self.feed.run(), name=f"{self.name}-feed")
        waits: set[asyncio.Future[Any]] = {feeder, closed}
        await asyncio.wait(waits, return_when="FIRST_COMPLETED")
        if not feeder.done():
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        elif feeder.exception() is not None:
            raise feeder.exception()  # type: ignore[misc]
        if self._stopping and not self.feed.outstanding:
            return
        await closed
        if self.feed.timed_out:
            raise WorkerFailed("response timeout", timed_out=True)
        raise WorkerFailed("Worker disconnected")

    # -- frames from the worker -----------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "result":
            self.feed.on_result(message["items"])
        elif kind == "chunk":
            self.feed.on_chunk(message["item"])
        elif kind in self._replies:
            future = self._replies[kind]
            if not future.done():
                future.set_result(message)
        else:
            logger.warning("%s sent an unexpected %r frame", self.name, kind)

    # -- teardown ------------------------------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        """The worker's live processes: one, or every rank of a worker group (memory accounting)."""
        return [process.pid for process in self._processes if process.returncode is None]

    def _kill(self) -> None:
        for process in self._processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)

    async def _cleanup(self) -> None:
        if self.state is not WorkerState.STOPPED:
            self.state = WorkerState.STARTING
        self.feed.release()
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        processes = self._processes
        if processes:
            if not self._stopping:
                self._kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(process.wait() for process in processes)), 10)
            self._kill()
            for process in processes:
                await process.wait()
            self._processes = []
