"""The batches one worker holds: sending them, matching its answers to their jobs, its response timeout, and how
many batches to keep on its socket.

While the worker runs one batch the next ones may already be on its socket, so the worker never
waits for a busy event loop between batches, and frontend and worker wake each other less often.
How many: about ``PREFETCH_WORK_S`` of work by the measured time per batch, between
``MIN_OUTSTANDING`` and ``MAX_OUTSTANDING`` (16 for the echo model, 2 for a 10 ms model, whose
jobs then stay in the shared queue where any worker can take them). Those batches are collected
only when no other worker of the model is idle. Under load the socket is topped up from the
callback that delivers a result (:meth:`BatchFeed._refill`), and with batch size 1 an idle worker
takes a job straight from the request (:meth:`BatchFeed.take_now`). The worker answers batches in
order, one ``result`` frame each, so the oldest outstanding batch is always the running one: its
``responseTimeout`` runs from when it started, and each streamed chunk restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from workers.protocol import check_item, item_fault
from workers.tensors import Tensor, TensorError

from .errors import BackendError, WorkerDied
from .types import InferenceResult, Job
from .worker_channel import FrameChannel
from .worker_plan import WorkerPlan

logger = logging.getLogger("modelserver.worker")

MIN_OUTSTANDING: Final = 2
MAX_OUTSTANDING: Final = 16
PREFETCH_WORK_S: Final = 0.001
"""How much work (by the measured time per batch) to keep queued on a worker's socket: enough that the worker never
waits for the frontend, little enough that a slow model's jobs stay in the shared queue, where any worker can take
them."""


class BatchFeed:
    """The in-flight batches of one worker connection. The connection opens it on a socket once the model has
    loaded (:meth:`open`), closes it to stop taking work (:meth:`close`), and releases its jobs when the process is
    gone (:meth:`release`)."""

    def __init__(self, name: str, plan: WorkerPlan, kill: Callable[[], None]) -> None:
        self.name = name
        self._queue = plan.queue
        self._metrics = plan.metrics
        self._loop = plan.loop
        self._response_timeout = plan.response_timeout
        self._failures = plan.failures
        self._kill = kill
        self._channel: FrameChannel | None = None
        self.accepting = False
        """Open on a ready worker and not stopping: only then does it take batches."""
        self.timed_out = False
        self._inflight: dict[int, Job] = {}
        self._batches: deque[list[Job]] = deque()  # sent, not yet answered; [0] is running
        self._slot_freed: asyncio.Event = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._head_started = 0.0  # loop time when the running batch started or last streamed
        self._fixed_depth = plan.depth or (0 if plan.prefetch else 1)
        self._depth = self._fixed_depth or MIN_OUTSTANDING
        self._batch_seconds = PREFETCH_WORK_S  # moving average of the time a batch takes, from start to result

    def open(self, channel: FrameChannel) -> None:
        """The worker on ``channel`` has loaded its model: take batches."""
        self._channel = channel
        self.timed_out = False
        self.accepting = True

    def close(self) -> None:
        """Take no more batches; :meth:`run` returns once the worker has answered the ones it holds."""
        self.accepting = False
        self._slot_freed.set()

    def cancel(self, job: Job) -> None:
        """Tell the worker a client went away while its job was in flight."""
        if job.id in self._inflight and self._channel is not None:
            self._channel.send({"kind": "cancel", "ids": [job.id]})

    async def run(self) -> None:
        """Keep up to ``self._depth`` batches on the worker's socket until stopped.

        Cancelling this task is safe: jobs leave the queue only in a synchronous step that also sends them.
        """
        queue = self._queue
        while self.accepting:
            if len(self._batches) >= self._depth:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            prefetch = bool(self._batches)
            batch = queue.take_ready(prefetch) or await queue.next_batch(prefetch)
            if not self.accepting or self._channel is None:
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
        return self._depth - len(self._batches) if self.accepting else 0

    @property
    def outstanding(self) -> int:
        return len(self._batches)

    def take_now(self, batch: list[Job]) -> None:
        """Send a batch straight from the submitting request, without a round through the queue and this worker's
        feeding task (:meth:`~modelserver.model_version.ModelVersion.submit` checks ``free_slots`` first)."""
        self._dispatch(batch)

    def _dispatch(self, batch: list[Job]) -> None:
        assert self._channel is not None
        for job in batch:
            self._inflight[job.id] = job
        self._batches.append(batch)
        self._metrics.dispatched(batch)
        self._channel.send({"kind": "infer", "jobs": [job.to_wire() for job in batch]}, checked=False)
        self._metrics.sent()
        if len(self._batches) == 1:
            self._arm_timer()
        else:
            self._queue.hold(len(batch))

    def _arm_timer(self) -> None:
        """The running batch started (or streamed a chunk) now: its ``responseTimeout`` counts from here.

        One timer per worker stays armed while batches run and checks the deadline when it fires, so a batch costs a
        clock read instead of scheduling and cancelling a timer."""
        loop = self._loop
        self._head_started = loop.time()
        if self._timer is None:
            self._timer = loop.call_at(self._head_started + self._response_timeout, self._check_timeout)

    def _disarm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_timeout(self) -> None:
        self._timer = None
        if not self._batches:
            return
        loop = self._loop
        deadline = self._head_started + self._response_timeout
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._check_timeout)
            return
        logger.error(
            "%s: no response in %d s; Number or consecutive unsuccessful inference %d",
            self.name,
            self._response_timeout,
            self._failures.grow(),
        )
        self.timed_out = True
        self._kill()

    # -- frames from the worker -----------------------------------------------------------------

    def on_chunk(self, item: list[Any]) -> None:
        """A streamed piece: deliver it; the running batch is alive, so its response timeout starts again."""
        self._deliver(item, last=False)
        self._arm_timer()

    def on_result(self, items: list[list[Any]]) -> None:
        for item in items:
            self._deliver(item, last=True)
        if self._failures.count:
            self._failures.count = 0
        if self._batches:
            for job in self._batches.popleft():  # a job the worker did not answer must not wait forever
                if self._inflight.pop(job.id, None) is not None:
                    job.fail(BackendError("number of batch response mismatched", 503))
            if not self._fixed_depth:
                self._adapt_depth()
        if self._batches:
            self._arm_timer()  # the next batch starts running now
            self._queue.started(len(self._batches[0]))
        self._refill()
        if len(self._batches) < self._depth:
            self._slot_freed.set()

    def on_result_of(self, first_job_id: int, items: list[list[Any]]) -> None:
        """The answer to the batch that begins with job ``first_job_id``, whichever outstanding batch that is: an
        in-process runtime (:mod:`modelserver.local_worker`) answers the batches it runs together as they finish."""
        head = self._batches[0] if self._batches else None
        if head is None or head[0].id == first_job_id:
            self.on_result(items)
            return
        batch = next((b for b in self._batches if b[0].id == first_job_id), None)
        for item in items:
            self._deliver(item, last=True)
        if batch is None:  # released meanwhile (the feed was closed)
            return
        self._batches.remove(batch)
        self._queue.started(len(batch))  # it was counted as waiting behind the head
        for job in batch:
            if self._inflight.pop(job.id, None) is not None:
                job.fail(BackendError("number of batch response mismatched", 503))
        self._refill()
        if len(self._batches) < self._depth:
            self._slot_freed.set()

    def _adapt_depth(self) -> None:
        """Keep about ``PREFETCH_WORK_S`` of work on the socket: 16 batches of a 50 us echo, 2 of a 10 ms model."""
        took = self._loop.time() - self._head_started
        self._batch_seconds += (took - self._batch_seconds) * 0.2
        wanted = int(PREFETCH_WORK_S / self._batch_seconds) + 1 if self._batch_seconds > 0 else MAX_OUTSTANDING
        self._depth = min(MAX_OUTSTANDING, max(MIN_OUTSTANDING, wanted))

    def _refill(self) -> None:
        """Send the batches that are ready in the queue now, up to this worker's free slots, from the callback that
        freed them: under load the worker's socket is topped up without waking the feeding task."""
        queue = self._queue
        while self.free_slots > 0:
            batch = queue.take_ready(prefetch=bool(self._batches))
            if not batch:
                return
            self._dispatch(batch)

    def _deliver(self, item: list[Any], last: bool) -> None:
        """One item array (``workers.protocol.check_item``: ``[id, status, reason, headers, content_type, body,
        optional]``) to its job. A job taken from the in-flight map always gets an answer: values of the wrong type
        fail it with a 500 instead of leaving its client waiting."""
        job_id, status, reason, headers, content_type, body, optional = check_item(item)
        job = self._inflight.pop(job_id, None) if last else self._inflight.get(job_id)
        if job is None:
            return
        fault = item_fault(item)
        if fault is not None:
            logger.error("%s sent a malformed answer: %s", self.name, fault)
            job.fail(BackendError(f"Malformed answer from the worker: {fault}", 500))
            return
        error = optional.get("error") if optional is not None else None
        if error is not None:
            job.fail(BackendError(str(error), status))
            return
        try:
            result = InferenceResult(status, reason, headers, content_type, body)
            if optional is not None:
                wired = optional.get("tensors")
                # no list comprehension for the usual none (an answer made as JSON by the runtime)
                result.tensors = (
                    [each if type(each) is Tensor else Tensor.from_wire(each) for each in wired] if wired else []
                )
                result.parameters = optional.get("parameters")
        except (TensorError, TypeError, KeyError, AttributeError) as err:
            logger.error("%s sent a malformed answer: %s", self.name, err)
            job.fail(BackendError(f"Malformed answer from the worker: {err}", 500))
            return
        try:
            job.succeed(result, last)
        except Exception as err:  # never leave a job taken from the in-flight map without an answer
            logger.exception("%s: an answer could not be delivered", self.name)
            job.fail(BackendError(f"Malformed answer from the worker: {err}", 500))
            return
        if not last:
            stream = job.stream
            if stream is not None and stream.first is result:
                stream.on_flow(partial(self._flow, job))

    def _flow(self, job: Job, pause: bool) -> None:
        """A stream's consumer is behind (``pause``) or caught up: the worker holds or resumes the handler's
        ``send_intermediate_predict_response`` for that job. A waiting handler is not a stuck one: its
        ``responseTimeout`` starts again."""
        channel = self._channel
        if job.id in self._inflight and channel is not None:
            send = getattr(channel, "send_now", channel.send)  # an in-process worker's channel has no socket
            send({"kind": "pause" if pause else "resume", "ids": [job.id]})
            if self._batches and job in self._batches[0]:
                self._arm_timer()

    def release(self) -> None:
        """The running batch gets "Worker died."; batches the worker never started go back to the queue."""
        self._disarm_timer()
        batches, self._batches = list(self._batches), deque()
        inflight, self._inflight = self._inflight, {}
        if batches:
            waiting = [job for batch in batches[1:] for job in batch]
            self._queue.started(len(waiting))
            self._queue.requeue([job for job in waiting if job.id in inflight])
            running = {job.id for job in batches[0]}
            for job_id, job in inflight.items():
                if job_id in running:
                    job.fail(WorkerDied())
        self._channel = None
        self.accepting = False
        self._slot_freed.set()
