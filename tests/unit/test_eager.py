"""Running coroutines eagerly (workers/runtimes/eager.py): finished ones never touch the loop, waiting ones finish
on it together, in order, with the loop visible to them as the running loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from workers.runtimes.eager import gather_eagerly, run_all


async def value(x: int) -> int:
    return x


async def later(x: int, delay: float = 0.01) -> int:
    await asyncio.sleep(delay)
    await asyncio.sleep(0)
    return x


async def in_executor(x: int) -> int:
    loop = asyncio.get_running_loop()  # works in the eager step too
    return await loop.run_in_executor(None, lambda: x * 10)


async def failing() -> int:
    raise ValueError("no")


def test_results_come_in_order_whatever_waits() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert run_all(loop, [value(1), later(2), in_executor(3), value(4), later(5, 0)]) == [1, 2, 30, 4, 5]
        assert run_all(loop, []) == []
    finally:
        loop.close()


def test_waiting_coroutines_run_together_on_the_loop() -> None:
    loop = asyncio.new_event_loop()
    started = loop.time()
    try:
        assert run_all(loop, [later(i, 0.1) for i in range(5)]) == list(range(5))
        assert loop.time() - started < 0.4  # together, not one after another
    finally:
        loop.close()


def test_an_exception_propagates_and_the_loop_stays_usable() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="no"):
            run_all(loop, [later(1), failing()])
        with pytest.raises(ValueError, match="no"):
            run_all(loop, [value(1), later(2), failing()])
        assert run_all(loop, [later(7)]) == [7]
        assert asyncio.events._get_running_loop() is None  # the eager step put the running loop back
    finally:
        loop.close()


def test_gather_eagerly_inside_a_running_loop() -> None:
    async def main() -> list[int]:
        return await gather_eagerly([value(1), later(2), in_executor(3)])

    results: list[list[int]] = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(main())))
    thread.start()
    thread.join(10)
    assert results == [[1, 2, 30]]
