"""Dynamic batching: one bounded queue per model version, pulled by its free workers.

A free worker calls :meth:`BatchQueue.next_batch`. It waits, without a deadline, for the first
job; from the moment it holds that job it waits up to ``max_batch_delay`` for ``batch_size - 1``
more (TorchServe's ``pollBatch``). Only one worker collects at a time, so two idle workers never
split a batch that one of them could fill; with a backlog a full batch goes out at once.

A busy worker may collect its *next* batch ahead of time (``prefetch=True``), but only while no
idle worker of the model is waiting: an idle worker always gets the work first. Prefetched jobs
still count against ``capacity`` until their batch starts (:meth:`BatchQueue.started`), so
``job_queue_size`` means what it means in TorchServe.

Jobs sit in a deque behind an event rather than in an ``asyncio.Queue``: cancelling a waiting
``Queue.get()`` under a timeout has lost items before (cpython#92824). Jobs whose client left are
skipped, and jobs past their deadline are answered here, before they cost compute.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from .errors import RequestExpired, ServeError
from .types import Job


class QueueFull(Exception):
    """Raised by :meth:`BatchQueue.put` when ``capacity`` jobs are already waiting."""


class BatchQueue:
    def __init__(
        self,
        capacity: int,
        batch_size: int = 1,
        max_batch_delay: float = 0.1,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.capacity = capacity
        self.batch_size = max(1, batch_size)
        self.max_batch_delay = max(0.0, max_batch_delay)
        self._items: deque[Job] = deque()
        self._grew = asyncio.Event()  # set whenever something a waiter looks at changes
        self._collecting = asyncio.Lock()
        self._idle_collectors = 0
        self._prefetched = 0  # jobs handed to a busy worker whose batch has not started yet
        self._clock = clock or asyncio.get_running_loop().time

    def __len__(self) -> int:
        return len(self._items)

    @property
    def pending(self) -> int:
        """Jobs waiting for a worker to start them: queued plus prefetched."""
        return len(self._items) + self._prefetched

    @property
    def remaining_capacity(self) -> int:
        return max(0, self.capacity - self.pending)

    def hold(self, count: int) -> None:
        """A busy worker took ``count`` jobs it will start later: they still count against capacity."""
        self._prefetched += count

    def started(self, count: int) -> None:
        """A prefetched batch of ``count`` jobs started running (or went back to the queue)."""
        self._prefetched = max(0, self._prefetched - count)

    def put(self, job: Job) -> None:
        if self.pending >= self.capacity:
            raise QueueFull
        job.enqueued_at = self._clock()
        self._items.append(job)
        self._grew.set()

    def requeue(self, jobs: list[Job]) -> None:
        """Put jobs back at the head, in order (their worker went away before running them)."""
        self._items.extendleft(reversed([j for j in jobs if not j.cancelled]))
        if self._items:
            self._grew.set()

    def fail_all(self, error: ServeError) -> None:
        while self._items:
            self._items.popleft().fail(error)

    def take_ready(self, prefetch: bool = False) -> list[Job]:
        """A full batch at once if one is waiting, else ``[]``: no await, no lock, no delay to wait out.

        ``prefetch`` has the meaning it has in :meth:`next_batch`. This is the path of a loaded server, where the
        queue holds work whenever a worker has room; :meth:`next_batch` is for waiting."""
        if len(self._items) < self.batch_size or (prefetch and self._idle_collectors):
            return []
        return self._take()

    async def next_batch(self, prefetch: bool = False) -> list[Job]:
        """Wait for the next batch: at least one live job, at most ``batch_size``.

        ``prefetch``: the caller is busy; it takes work only while no idle caller is waiting.
        """
        if prefetch:
            await self._wait_for(lambda: self._idle_collectors == 0 and bool(self._items), None)
            return await self._collect()
        self._idle_collectors += 1
        try:
            return await self._collect()
        finally:
            self._idle_collectors -= 1
            self._grew.set()

    async def _collect(self) -> list[Job]:
        async with self._collecting:
            while True:
                await self._wait_for(lambda: bool(self._items), None)
                deadline = self._clock() + self.max_batch_delay
                await self._wait_for(lambda: len(self._items) >= self.batch_size, deadline)
                batch = self._take()
                if batch:
                    return batch

    async def _wait_for(self, ready: Callable[[], bool], deadline: float | None) -> None:
        while not ready():
            self._grew.clear()
            if deadline is None:
                await self._grew.wait()
                continue
            left = deadline - self._clock()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._grew.wait()

    def _take(self) -> list[Job]:
        batch: list[Job] = []
        now = self._clock()
        while self._items and len(batch) < self.batch_size:
            job = self._items.popleft()
            if job.cancelled:
                continue
            if job.deadline is not None and now > job.deadline:
                job.fail(RequestExpired())
                continue
            if batch and (job.solo or batch[0].solo):  # a solo job (a describe call) runs in a batch of its own
                self._items.appendleft(job)
                break
            batch.append(job)
        return batch
