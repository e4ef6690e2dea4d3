"""The workers of one model version: starting and stopping them, choosing one for a job, their health.

Worker ids are global and never reused, starting at TorchServe's ``initial_worker_port`` (9000). A
model on GPUs gets its devices round-robin over the ids it may use.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from .frontend_plan import worker_share
from .types import Job
from .worker_connection import WorkerConnection
from .worker_feed import BatchFeed
from .worker_plan import WorkerPlan, WorkerState

FIRST_WORKER_ID = 9000
WORKER_IDS_PER_FRONTEND = 1000
_worker_ids = itertools.count(FIRST_WORKER_ID)
_gpu_round_robin = itertools.count()


def number_workers_for(frontend: int) -> None:
    """Frontend process ``frontend``'s workers: ids from ``9000 + 1000 * frontend`` (names stay apart in the shared
    logs), and its GPUs round-robin starting one further along than the frontend before it."""
    global _worker_ids, _gpu_round_robin
    _worker_ids = itertools.count(FIRST_WORKER_ID + WORKER_IDS_PER_FRONTEND * frontend)
    _gpu_round_robin = itertools.count(frontend)


WorkerFactory = Callable[[int, WorkerPlan, "int | None"], Any]
"""Makes a pool member from its id, plan and GPU: a :class:`WorkerConnection` (a process), or an in-process worker."""


class WorkerPool:
    def __init__(
        self, plan: WorkerPlan, gpu_ids: tuple[int, ...] = (), make_worker: WorkerFactory | None = None
    ) -> None:
        self.plan = plan
        self.workers: list[WorkerConnection] = []
        self._make_worker: WorkerFactory = make_worker or WorkerConnection
        self._gpu_ids = gpu_ids
        self._retiring: set[asyncio.Task[None]] = set()
        self.target = (0, 0)
        """The last ``scale`` call's ``(count, maximum)``: the whole server's numbers."""
        self.portion = (0, 1)
        """``(index, count)`` of this frontend process among the frontends: it runs its :func:`worker_share`."""

    def __len__(self) -> int:
        return len(self.workers)

    def __iter__(self) -> Iterator[WorkerConnection]:
        return iter(self.workers)

    def _next_gpu(self) -> int | None:
        ids = self._gpu_ids
        return ids[next(_gpu_round_robin) % len(ids)] if ids else None

    def scale(self, count: int, maximum: int | None = None) -> list[WorkerConnection]:
        """Start workers up to ``count``; stop the newest ones above ``maximum`` (default ``count``).

        Returns the workers started, whose :meth:`WorkerConnection.wait_ready` tells when they have loaded.
        """
        maximum = count if maximum is None else maximum
        self.target = (count, maximum)
        index, frontends = self.portion
        if frontends > 1:
            count, maximum = worker_share(count, index, frontends), worker_share(maximum, index, frontends)
        started = []
        while len(self.workers) < count:
            worker = self._make_worker(next(_worker_ids), self.plan, self._next_gpu())
            self.workers.append(worker)
            worker.start()
            started.append(worker)
        while len(self.workers) > maximum:
            task = asyncio.create_task(self.workers.pop().stop())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        return started

    def with_room(self) -> BatchFeed | None:
        """The worker to take a job now (its feed): an idle one first, else the one with the fewest batches
        outstanding."""
        best, best_load = None, 0
        for worker in self.workers:
            feed = worker.feed
            if feed.free_slots <= 0:
                continue
            load = feed.outstanding
            if load == 0:
                return feed
            if best is None or load < best_load:
                best, best_load = feed, load
        return best

    def cancel(self, job: Job) -> None:
        for worker in self.workers:
            worker.feed.cancel(job)

    def share(self, count: int) -> int:
        """This frontend's part of ``count`` workers of the whole server."""
        return worker_share(count, *self.portion)

    def healthy_count(self, max_retry_seconds: float, loaded_at_startup: bool) -> int:
        return sum(worker.healthy(max_retry_seconds, loaded_at_startup) for worker in self.workers)

    @property
    def any_ready(self) -> bool:
        return any(worker.state is WorkerState.READY for worker in self.workers)

    @property
    def ready_count(self) -> int:
        return sum(worker.state is WorkerState.READY for worker in self.workers)

    async def stop(self) -> None:
        workers, self.workers = self.workers, []
        await asyncio.gather(*(worker.stop() for worker in workers), *self._retiring)
