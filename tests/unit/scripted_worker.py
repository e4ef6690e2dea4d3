"""A scripted worker: it stands where a worker connection stands in a model version's pool, takes batches from the
version's real queue, and answers each job the way a test tells it to (the core's tests need no process)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from modelserver.model_version import ModelVersion
from modelserver.types import Job
from modelserver.worker_plan import WorkerState

Answer = Callable[[Job], Awaitable[None]]


class ScriptedWorker:
    """Takes batches from the version's queue (never directly: no free slots) and runs ``answer`` for each job."""

    free_slots = 0
    outstanding = 0
    state = WorkerState.READY

    @property
    def feed(self) -> ScriptedWorker:
        """It is its own feed (the part of a worker connection that holds batches)."""
        return self

    def __init__(self, version: ModelVersion, answer: Answer) -> None:
        self.queue = version.queue
        self.answer = answer
        self.taken: list[Job] = []
        self.batches: list[list[str]] = []
        self.cancelled: list[int] = []
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.queue.next_batch()
            self.batches.append([job.method for job in batch])
            for job in batch:
                self.taken.append(job)
                asyncio.get_running_loop().create_task(self.answer(job))

    def cancel(self, job: Job) -> None:
        self.cancelled.append(job.id)

    def healthy(self, *args: Any) -> bool:
        return True

    async def stop(self) -> None:
        self.task.cancel()
