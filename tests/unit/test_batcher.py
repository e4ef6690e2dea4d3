"""The batch queue on a real event loop: nothing lost or duplicated, order kept, sizes and windows honoured."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelserver.batcher import BatchQueue, QueueFull
from modelserver.errors import RequestExpired
from modelserver.types import Job


def make_job(n: int) -> Job:
    return Job(f"req-{n}", {}, [("body", "", str(n).encode())])


def run(coro):
    return asyncio.run(coro)


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=40),
    batch_size=st.integers(min_value=1, max_value=9),
    cancelled=st.sets(st.integers(min_value=0, max_value=39)),
)
def test_no_job_lost_or_duplicated_and_order_kept(count: int, batch_size: int, cancelled: set[int]) -> None:
    async def scenario() -> tuple[list[list[Job]], list[Job]]:
        queue = BatchQueue(capacity=100, batch_size=batch_size, max_batch_delay=0.0)
        jobs = [make_job(i) for i in range(count)]
        for i, job in enumerate(jobs):
            queue.put(job)
            job.cancelled = i in cancelled
        batches = []
        while len(queue):
            batch = await asyncio.wait_for(queue.next_batch(), 1) if any(not j.cancelled for j in queue._items) else []
            if not batch:
                break
            batches.append(batch)
        return batches, jobs

    batches, jobs = run(scenario())
    flat = [job for batch in batches for job in batch]
    assert flat == [job for i, job in enumerate(jobs) if i not in cancelled]
    assert all(1 <= len(batch) <= batch_size for batch in batches)


def test_backlog_gives_full_batches_at_once() -> None:
    async def scenario() -> tuple[list[int], float]:
        queue = BatchQueue(capacity=100, batch_size=8, max_batch_delay=5.0)
        for i in range(17):
            queue.put(make_job(i))
        started = time.monotonic()
        sizes = [len(await queue.next_batch()), len(await queue.next_batch())]
        return sizes, time.monotonic() - started

    sizes, elapsed = run(scenario())
    assert sizes == [8, 8]
    assert elapsed < 1.0


def test_lone_job_waits_for_the_window_then_goes() -> None:
    async def scenario() -> float:
        queue = BatchQueue(capacity=10, batch_size=8, max_batch_delay=0.2)
        queue.put(make_job(0))
        started = time.monotonic()
        batch = await queue.next_batch()
        assert len(batch) == 1
        return time.monotonic() - started

    elapsed = run(scenario())
    assert 0.18 <= elapsed < 1.0


def test_window_opens_at_first_job_and_late_jobs_join() -> None:
    async def scenario() -> list[int]:
        queue = BatchQueue(capacity=10, batch_size=4, max_batch_delay=0.3)
        consumer = asyncio.create_task(queue.next_batch())
        await asyncio.sleep(0.05)
        for i in range(3):
            queue.put(make_job(i))
            await asyncio.sleep(0.02)
        batch = await consumer
        return [int(job.request_id.split("-")[1]) for job in batch]

    assert run(scenario()) == [0, 1, 2]


def test_two_idle_consumers_do_not_split_a_batch() -> None:
    async def scenario() -> list[int]:
        queue = BatchQueue(capacity=10, batch_size=4, max_batch_delay=0.5)
        first = asyncio.create_task(queue.next_batch())
        second = asyncio.create_task(queue.next_batch())
        await asyncio.sleep(0.01)
        for i in range(4):
            queue.put(make_job(i))
            await asyncio.sleep(0.01)
        batch = await asyncio.wait_for(first, 2)
        second.cancel()
        return [len(batch), len(queue)]

    assert run(scenario()) == [4, 0]


def test_capacity_bounds_the_queue() -> None:
    async def scenario() -> None:
        queue = BatchQueue(capacity=2)
        queue.put(make_job(0))
        queue.put(make_job(1))
        with pytest.raises(QueueFull):
            queue.put(make_job(2))
        assert queue.remaining_capacity == 0

    run(scenario())


def test_expired_jobs_are_answered_not_run() -> None:
    async def scenario() -> tuple[list[Job], Job]:
        queue = BatchQueue(capacity=10, batch_size=4, max_batch_delay=0.0)
        stale, fresh = make_job(0), make_job(1)
        stale.deadline = asyncio.get_running_loop().time() - 1
        queue.put(stale)
        queue.put(fresh)
        return await queue.next_batch(), stale

    batch, stale = run(scenario())
    assert [job.request_id for job in batch] == ["req-1"]
    assert isinstance(stale.future.exception(), RequestExpired)


def test_requeue_puts_jobs_back_at_the_head_in_order() -> None:
    async def scenario() -> list[str]:
        queue = BatchQueue(capacity=10, batch_size=2, max_batch_delay=0.0)
        for i in range(4):
            queue.put(make_job(i))
        taken = await queue.next_batch()
        queue.requeue(taken)
        return [job.request_id for job in await queue.next_batch()]

    assert run(scenario()) == ["req-0", "req-1"]


def test_prefetch_yields_to_an_idle_collector() -> None:
    async def scenario() -> tuple[int, bool]:
        queue = BatchQueue(capacity=10, batch_size=1, max_batch_delay=0.0)
        busy = asyncio.create_task(queue.next_batch(prefetch=True))
        idle = asyncio.create_task(queue.next_batch())
        await asyncio.sleep(0.01)
        queue.put(make_job(0))
        batch = await asyncio.wait_for(idle, 1)
        await asyncio.sleep(0.01)
        prefetch_waiting = not busy.done()
        queue.put(make_job(1))
        prefetched = await asyncio.wait_for(busy, 1)
        return len(batch) + len(prefetched), prefetch_waiting

    assert run(scenario()) == (2, True)


def test_held_jobs_count_against_capacity_until_started() -> None:
    async def scenario() -> None:
        queue = BatchQueue(capacity=2)
        queue.put(make_job(0))
        queue.put(make_job(1))
        batch = await queue.next_batch(prefetch=True)
        queue.hold(len(batch))
        with pytest.raises(QueueFull):
            queue.put(make_job(2))
        queue.started(len(batch))
        queue.put(make_job(3))
        assert queue.pending == 2

    run(scenario())


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=40),
    batch_size=st.integers(min_value=1, max_value=9),
    cancelled=st.sets(st.integers(min_value=0, max_value=39)),
    use_ready=st.lists(st.booleans(), min_size=1, max_size=20),
)
def test_take_ready_mixed_with_next_batch_loses_nothing(
    count: int, batch_size: int, cancelled: set[int], use_ready: list[bool]
) -> None:
    """The synchronous path and the waiting path take from one queue: together they give every live job once, in
    order, and the synchronous path only ever gives full batches unless it skipped dead jobs."""

    async def scenario() -> tuple[list[list[Job]], list[Job], list[bool]]:
        queue = BatchQueue(capacity=100, batch_size=batch_size, max_batch_delay=0.0)
        jobs = [make_job(i) for i in range(count)]
        for i, job in enumerate(jobs):
            queue.put(job)
            job.cancelled = i in cancelled
        batches: list[list[Job]] = []
        partial_ready: list[bool] = []
        step = 0
        while any(not j.cancelled for j in queue._items):
            batch = []
            if use_ready[step % len(use_ready)]:
                before = list(queue._items)
                batch = queue.take_ready()
                if len(before) < batch_size:
                    assert batch == []
                skipped = any(j.cancelled for j in before)
                partial_ready.append(bool(batch) and len(batch) < batch_size and not skipped)
            if not batch:  # nothing full was ready (or this step waits): the waiting path takes the rest
                batch = await asyncio.wait_for(queue.next_batch(), 1)
            if batch:
                batches.append(batch)
            step += 1
        return batches, jobs, partial_ready

    batches, jobs, partial_ready = run(scenario())
    flat = [job for batch in batches for job in batch]
    assert flat == [job for i, job in enumerate(jobs) if i not in cancelled]
    assert all(1 <= len(batch) <= batch_size for batch in batches)
    assert not any(partial_ready)


def test_take_ready_leaves_work_to_an_idle_collector_when_prefetching() -> None:
    async def scenario() -> tuple[list[Job], list[Job], int]:
        queue = BatchQueue(capacity=10, batch_size=1, max_batch_delay=0.0)
        idle = asyncio.create_task(queue.next_batch())
        await asyncio.sleep(0.01)  # an idle worker is now waiting in next_batch
        queue.put(make_job(0))
        refused = queue.take_ready(prefetch=True)
        taken_by_idle = await asyncio.wait_for(idle, 1)
        queue.put(make_job(1))
        prefetched = queue.take_ready(prefetch=True)  # nobody idle now
        return refused, prefetched, len(taken_by_idle)

    refused, prefetched, idle_count = run(scenario())
    assert refused == [] and idle_count == 1 and len(prefetched) == 1
