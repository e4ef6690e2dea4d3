"""One worker: its process, its socket, and the loop that feeds it batches.

The frontend side of docs/protocol.md. A :class:`WorkerConnection` spawns its process, waits
for ``hello``, sends ``load`` (bounded by ``startupTimeout``), then pulls batches from the model's
:class:`~modelserver.batcher.BatchQueue` and demultiplexes ``result`` and ``chunk`` frames to the
jobs by id. When the process dies every job in flight is answered at once (500 "Worker died.")
and the worker is started again after a back-off (TorchServe's Fibonacci schedule, capped).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workers.protocol import FrameDecoder, ProtocolError, encode

from .errors import BackendError, WorkerDied
from .types import InferenceResult, Job
from .worker_process import forward_output, spawn_worker

if TYPE_CHECKING:
    from .registry import ModelVersion

logger = logging.getLogger("modelserver.worker")

# TorchServe's retry schedule in seconds; the index advances before use, so the first wait is 1 s.
BACKOFF_SECONDS = (0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597)
_RETRY_CAP_SECONDS = 60


class WorkerState(enum.Enum):
    STARTING = "STARTING"
    READY = "READY"
    STOPPED = "STOPPED"


class WorkerFailed(Exception):
    """The worker must be restarted: it died, timed out, sent garbage or failed to load."""


class _Channel(asyncio.BufferedProtocol):
    """Frames in and out of one worker socket; the kernel writes payloads straight into our buffer."""

    def __init__(self, on_message: Callable[[dict[str, Any]], None], max_frame_size: int) -> None:
        self._on_message = on_message
        self._decoder = FrameDecoder(max_frame_size)
        self._max_frame_size = max_frame_size
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            messages = self._decoder.buffer_updated(nbytes)
        except ProtocolError as err:
            logger.error("Malformed frame from worker: %s", err)
            self._close(err)
            return
        for message in messages:
            self._on_message(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(exc)

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(message, self._max_frame_size))

    def _close(self, exc: BaseException | None) -> None:
        if self.transport is not None:
            self.transport.abort()
        if not self.closed.done():
            self.closed.set_result(exc)


class WorkerConnection:
    def __init__(self, worker_id: int, model: ModelVersion, gpu_id: int | None, max_frame_size: int) -> None:
        self.worker_id = worker_id
        self.model = model
        self.gpu_id = gpu_id
        self.name = f"W-{worker_id}-{model.spec.name}_{model.spec.version}"
        self.state = WorkerState.STARTING
        self.pid: int | None = None
        self.start_time = time.time()
        self.failing_since: float | None = None
        self._max_frame_size = max_frame_size
        self._process: asyncio.subprocess.Process | None = None
        self._channel: _Channel | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._inflight: dict[int, Job] = {}
        self._progress: asyncio.Event = asyncio.Event()
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def device(self) -> str:
        return "cpu" if self.gpu_id is None else f"cuda:{self.gpu_id}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def healthy(self, max_retry_seconds: float) -> bool:
        """TorchServe's rule: a worker is unhealthy once it has failed continuously for too long."""
        return self.failing_since is None or time.monotonic() - self.failing_since < max_retry_seconds

    async def stop(self, grace: float = 5.0) -> None:
        """Ask the worker to exit after its current batch; kill it if it has not within ``grace`` seconds.

        The life-cycle task is never cancelled mid-step (a cancelled spawn would orphan its process):
        it sees ``_stopping``, cleans up and returns by itself.
        """
        self._stopping = True
        self._stop_requested.set()
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

    def cancel_job(self, job: Job) -> None:
        """Tell the worker a client went away while its job was in flight."""
        if job.id in self._inflight and self._channel is not None:
            self._channel.send({"kind": "cancel", "ids": [job.id]})

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
                await self._serve()
            except WorkerFailed as err:
                if not self._stopping:
                    logger.warning("%s: %s", self.name, err)
            finally:
                await self._cleanup()
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

    async def _start_process(self) -> None:
        self.state = WorkerState.STARTING
        self.start_time = time.time()
        process, sock = await spawn_worker(self.name, self.device, self.model.spec.model_dir, self._max_frame_size)
        self._process, self.pid = process, process.pid
        if self._stopping:
            raise WorkerFailed("stopping")
        asyncio.create_task(forward_output(process.stdout, f"{self.name}-stdout"))
        asyncio.create_task(forward_output(process.stderr, f"{self.name}-stderr"))
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_unix_connection(
            lambda: _Channel(self._on_message, self._max_frame_size), sock=sock
        )
        self._channel = channel

    async def _handshake(self) -> None:
        spec = self.model.spec
        started = time.monotonic()
        hello = await self._reply("hello", spec.startup_timeout)
        logger.debug("%s hello: pid=%s device=%s", self.name, hello.get("pid"), hello.get("device"))
        assert self._channel is not None
        self._channel.send(self.model.load_message(self.gpu_id))
        left = max(0.0, spec.startup_timeout - (time.monotonic() - started))
        loaded = await self._reply("loaded", left)
        if loaded["status"] != 200:
            raise WorkerFailed(f"failed to load model: {loaded['status']} {loaded['message']}")
        self.state = WorkerState.READY
        logger.info("%s ready: model %s loaded in %.0f ms", self.name, spec.name, (time.monotonic() - started) * 1000)

    async def _reply(self, kind: str, timeout: float) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[kind] = future
        assert self._channel is not None
        done, _ = await asyncio.wait({future, self._channel.closed}, timeout=timeout, return_when="FIRST_COMPLETED")
        self._replies.pop(kind, None)
        if future in done:
            return future.result()
        if self._channel.closed in done:
            raise WorkerFailed("Worker disconnected")
        raise WorkerFailed(f"no {kind!r} within {timeout:.0f} s (startupTimeout)")

    async def _serve(self) -> None:
        assert self._channel is not None
        queue = self.model.queue
        closed = self._channel.closed
        while not self._stopping:
            getter = asyncio.ensure_future(queue.next_batch())
            done, _ = await asyncio.wait({getter, closed}, return_when="FIRST_COMPLETED")
            if getter not in done:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    batch = await getter
                    queue.requeue(batch)
                raise WorkerFailed("Worker disconnected")
            await self._run_batch(getter.result())

    async def _run_batch(self, batch: list[Job]) -> None:
        assert self._channel is not None
        self._inflight = {job.id: job for job in batch}
        self.model.note_dispatch(batch)
        self._channel.send({"kind": "infer", "jobs": [job.to_wire() for job in batch]})
        timeout = self.model.spec.response_timeout
        while self._inflight:
            self._progress.clear()
            waiter = asyncio.ensure_future(self._progress.wait())
            done, _ = await asyncio.wait({waiter, self._channel.closed}, timeout=timeout, return_when="FIRST_COMPLETED")
            waiter.cancel()
            if self._channel.closed in done:
                raise WorkerFailed("Worker disconnected")
            if not done:
                logger.error(
                    "%s: no response in %d s; Number or consecutive unsuccessful inference 1", self.name, timeout
                )
                self._kill()
                raise WorkerFailed("response timeout")

    # -- frames from the worker -----------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "result":
            for item in message["items"]:
                self._deliver(item, last=True)
        elif kind == "chunk":
            self._deliver(message, last=False)
        elif kind in self._replies:
            future = self._replies[kind]
            if not future.done():
                future.set_result(message)
        else:
            logger.warning("%s sent an unexpected %r frame", self.name, kind)
        self._progress.set()

    def _deliver(self, item: dict[str, Any], last: bool) -> None:
        job = self._inflight.pop(item["id"], None) if last else self._inflight.get(item["id"])
        if job is None:
            return
        error = item.get("error")
        if error is not None:
            job.fail(BackendError(error, item["status"]))
            return
        result = InferenceResult(item["status"], item["reason"], item["headers"], item["content_type"], item["body"])
        job.succeed(result, last)
        if last:
            self.model.note_done(job)

    # -- teardown ------------------------------------------------------------------------------

    def _kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)

    async def _cleanup(self) -> None:
        if self.state is not WorkerState.STOPPED:
            self.state = WorkerState.STARTING
        inflight, self._inflight = self._inflight, {}
        for job in inflight.values():
            job.fail(WorkerDied())
        if self._channel is not None:
            self._channel._close(None)
            self._channel = None
        process = self._process
        if process is not None:
            if process.returncode is None and not self._stopping:
                self._kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
            self._kill()
            await process.wait()
            self._process = None
