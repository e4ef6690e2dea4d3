"""One worker: its process, its socket, and the loop that feeds it batches.

The frontend side of docs/protocol.md. A :class:`WorkerConnection` spawns its process, waits
for ``hello``, sends ``load`` (bounded by ``startupTimeout``), then pulls batches from the model's
:class:`~modelserver.batcher.BatchQueue` and demultiplexes ``result`` and ``chunk`` frames to the
jobs by id.

While the worker runs one batch the next ones may already be on its socket, so the worker never
waits for a busy event loop between batches, and frontend and worker wake each other less often.
How many: about ``PREFETCH_WORK_S`` of work by the measured time per batch, between
``MIN_OUTSTANDING`` and ``MAX_OUTSTANDING`` (16 for the echo model, 2 for a 10 ms model, whose
jobs then stay in the shared queue where any worker can take them). Those batches are collected
only when no other worker of the model is idle. Under load the socket is topped up from the
callback that delivers a result (:meth:`WorkerConnection._refill`), and with batch size 1 an idle
worker takes a job straight from the request (:meth:`WorkerConnection.take_now`). The worker
answers batches in order, one ``result`` frame each, so the oldest outstanding batch is always the
running one: its ``responseTimeout`` runs from when it started, and each streamed chunk restarts
it.

When the process dies, the running batch is answered at once (500 "Worker died."), batches that
had not started go back to the head of the queue, and the worker is started again after a
back-off (TorchServe's Fibonacci schedule, capped).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workers.protocol import FrameDecoder, ProtocolError, encode_parts

from .errors import BackendError, WorkerDied
from .types import InferenceResult, Job
from .worker_process import forward_output, spawn_worker

if TYPE_CHECKING:
    from .registry import ModelVersion

logger = logging.getLogger("modelserver.worker")

# TorchServe's retry schedule in seconds; the index advances before use, so the first wait is 1 s.
BACKOFF_SECONDS = (0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597)
_RETRY_CAP_SECONDS = 60
MIN_OUTSTANDING = 2
MAX_OUTSTANDING = 16
PREFETCH_WORK_S = 0.001
"""How much work (by the measured time per batch) to keep queued on a worker's socket: enough that the worker never
waits for the frontend, little enough that a slow model's jobs stay in the shared queue, where any worker can take
them."""


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
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[BaseException | None] = self._loop.create_future()
        self._outgoing: list[bytes] = []

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

    def send(self, message: dict[str, Any], checked: bool = True) -> None:
        """Queue a frame; the frames of one event-loop pass leave together, in order, in one write at its end.

        A result callback that tops up 16 batches then costs one system call (and one wake-up of the worker)
        instead of 16."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self._outgoing:
            self._loop.call_soon(self._write_out)
        self._outgoing += encode_parts(message, self._max_frame_size, checked)

    def _write_out(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(frames)

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
        self.ever_ready = False
        self._max_frame_size = max_frame_size
        self._process: asyncio.subprocess.Process | None = None
        self._channel: _Channel | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._inflight: dict[int, Job] = {}
        self._batches: deque[list[Job]] = deque()  # sent, not yet answered; [0] is running
        self._slot_freed: asyncio.Event = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._head_started = 0.0  # loop time when the running batch started or last streamed
        self._timed_out = False
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._first_start: asyncio.Future[int] | None = None
        # A job handed to a busy worker can no longer expire in the queue: with clientTimeoutInMills, no prefetch.
        self._fixed_depth = 1 if model.spec.client_timeout_ms else 0
        self._depth = self._fixed_depth or MIN_OUTSTANDING
        self._batch_seconds = PREFETCH_WORK_S  # moving average of the time a batch takes, from start to result

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
        self._slot_freed.set()
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
                await self._serve_until_closed()
            except WorkerFailed as err:
                if not self._stopping:
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
                self.model.metrics.worker_restarted()

    async def _start_process(self) -> None:
        self.state = WorkerState.STARTING
        self.start_time = time.time()
        process, sock = await spawn_worker(self.name, self.device, self.model.spec.model_dir, self._max_frame_size)
        self._process, self.pid = process, process.pid
        if self._stopping:
            raise WorkerFailed("stopping")
        on_metric = self.model.metrics.backend_line
        asyncio.create_task(forward_output(process.stdout, f"{self.name}-stdout", on_metric))
        asyncio.create_task(forward_output(process.stderr, f"{self.name}-stderr", on_metric))
        loop = asyncio.get_running_loop()
        self._replies = {kind: loop.create_future() for kind in ("hello", "loaded")}
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
            self._settle(loaded["status"])
            raise WorkerFailed(f"failed to load model: {loaded['status']} {loaded['message']}")
        self.state = WorkerState.READY
        self.ever_ready = True
        self._settle(200)
        self.model.metrics.worker_loaded(self.name, time.time() - self.start_time)
        logger.info("%s ready: model %s loaded in %.0f ms", self.name, spec.name, (time.monotonic() - started) * 1000)

    async def _reply(self, kind: str, timeout: float) -> dict[str, Any]:
        """Wait for ``hello`` or ``loaded``: its future exists before the socket opens, so an early frame waits."""
        future = self._replies[kind]
        assert self._channel is not None
        done, _ = await asyncio.wait({future, self._channel.closed}, timeout=timeout, return_when="FIRST_COMPLETED")
        self._replies.pop(kind, None)
        if future in done:
            return future.result()
        if self._channel.closed in done:
            raise WorkerFailed("Worker disconnected")
        raise WorkerFailed(f"no {kind!r} within {timeout:.0f} s (startupTimeout)")

    # -- feeding batches ------------------------------------------------------------------------

    async def _serve_until_closed(self) -> None:
        """Feed batches until the socket closes (death, kill on timeout) or a stop finishes the feed."""
        assert self._channel is not None
        closed = self._channel.closed
        feeder = asyncio.create_task(self._feed(), name=f"{self.name}-feed")
        await asyncio.wait({feeder, closed}, return_when="FIRST_COMPLETED")
        if not feeder.done():
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        elif feeder.exception() is not None:
            raise feeder.exception()  # type: ignore[misc]
        if self._stopping and not self._batches:
            return
        await closed
        raise WorkerFailed("response timeout" if self._timed_out else "Worker disconnected")

    async def _feed(self) -> None:
        """Keep up to ``self._depth`` batches on the worker's socket until stopped.

        Cancelling this task is safe: jobs leave the queue only in a synchronous step that also sends them.
        """
        queue = self.model.queue
        while not self._stopping:
            if len(self._batches) >= self._depth:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            prefetch = bool(self._batches)
            batch = queue.take_ready(prefetch) or await queue.next_batch(prefetch)
            if self._stopping or self._channel is None:
                queue.requeue(batch)
                return
            if len(self._batches) >= self._depth:  # filled by direct dispatch (take_now) while we waited
                queue.requeue(batch)
                continue
            self._dispatch(batch)
        while self._batches:  # stopping: let the worker finish what it holds
            self._slot_freed.clear()
            await self._slot_freed.wait()

    @property
    def free_slots(self) -> int:
        """How many more batches this worker takes now: 0 unless it is ready and serving."""
        if self.state is not WorkerState.READY or self._stopping or self._channel is None:
            return 0
        return self._depth - len(self._batches)

    @property
    def outstanding(self) -> int:
        return len(self._batches)

    def take_now(self, batch: list[Job]) -> None:
        """Send a batch straight from the submitting request, without a round through the queue and this worker's
        feeding task (the model's :meth:`~modelserver.registry.ModelVersion.submit` checks ``free_slots`` first)."""
        self._dispatch(batch)

    def _dispatch(self, batch: list[Job]) -> None:
        assert self._channel is not None
        for job in batch:
            self._inflight[job.id] = job
        self._batches.append(batch)
        self.model.metrics.dispatched(batch)
        self._channel.send({"kind": "infer", "jobs": [job.to_wire() for job in batch]}, checked=False)
        self.model.metrics.sent()
        if len(self._batches) == 1:
            self._arm_timer()
        else:
            self.model.queue.hold(len(batch))

    def _arm_timer(self) -> None:
        """The running batch started (or streamed a chunk) now: its ``responseTimeout`` counts from here.

        One timer per worker stays armed while batches run and checks the deadline when it fires, so a batch costs a
        clock read instead of scheduling and cancelling a timer."""
        loop = self.model.loop
        self._head_started = loop.time()
        if self._timer is None:
            self._timer = loop.call_at(self._head_started + self.model.spec.response_timeout, self._check_timeout)

    def _disarm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_timeout(self) -> None:
        self._timer = None
        if not self._batches:
            return
        loop = self.model.loop
        deadline = self._head_started + self.model.spec.response_timeout
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._check_timeout)
            return
        logger.error(
            "%s: no response in %d s; Number or consecutive unsuccessful inference 1",
            self.name,
            self.model.spec.response_timeout,
        )
        self._timed_out = True
        self._kill()

    # -- frames from the worker -----------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "result":
            self._on_result(message["items"])
        elif kind == "chunk":
            self._deliver(message, last=False)
            self._arm_timer()
        elif kind in self._replies:
            future = self._replies[kind]
            if not future.done():
                future.set_result(message)
        else:
            logger.warning("%s sent an unexpected %r frame", self.name, kind)

    def _on_result(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            self._deliver(item, last=True)
        if self._batches:
            for job in self._batches.popleft():  # a job the worker did not answer must not wait forever
                if self._inflight.pop(job.id, None) is not None:
                    job.fail(BackendError("number of batch response mismatched", 503))
            if not self._fixed_depth:
                self._adapt_depth()
        if self._batches:
            self._arm_timer()  # the next batch starts running now
            self.model.queue.started(len(self._batches[0]))
        self._refill()
        if len(self._batches) < self._depth:
            self._slot_freed.set()

    def _adapt_depth(self) -> None:
        """Keep about ``PREFETCH_WORK_S`` of work on the socket: 16 batches of a 50 us echo, 2 of a 10 ms model."""
        took = self.model.loop.time() - self._head_started
        self._batch_seconds += (took - self._batch_seconds) * 0.2
        wanted = int(PREFETCH_WORK_S / self._batch_seconds) + 1 if self._batch_seconds > 0 else MAX_OUTSTANDING
        self._depth = min(MAX_OUTSTANDING, max(MIN_OUTSTANDING, wanted))

    def _refill(self) -> None:
        """Send the batches that are ready in the queue now, up to this worker's free slots, from the callback that
        freed them: under load the worker's socket is topped up without waking the feeding task."""
        queue = self.model.queue
        while self.free_slots > 0:
            batch = queue.take_ready(prefetch=bool(self._batches))
            if not batch:
                return
            self._dispatch(batch)

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
            self.model.metrics.done(job)

    # -- teardown ------------------------------------------------------------------------------

    def _kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)

    def _release_jobs(self) -> None:
        """The running batch gets "Worker died."; batches the worker never started go back to the queue."""
        self._disarm_timer()
        batches, self._batches = list(self._batches), deque()
        inflight, self._inflight = self._inflight, {}
        if batches:
            waiting = [job for batch in batches[1:] for job in batch]
            self.model.queue.started(len(waiting))
            self.model.queue.requeue([job for job in waiting if job.id in inflight])
            running = {job.id for job in batches[0]}
            for job_id, job in inflight.items():
                if job_id in running:
                    job.fail(WorkerDied())
        self._slot_freed.set()

    async def _cleanup(self) -> None:
        if self.state is not WorkerState.STOPPED:
            self.state = WorkerState.STARTING
        self._release_jobs()
        self._timed_out = False
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
