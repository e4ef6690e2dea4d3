"""Run coroutines eagerly: step each once, and use the event loop only for those that really wait.

Most model coroutines (an ``async def predict`` that computes and returns) finish without ever waiting; handing
each to an event loop (a task, several loop passes, an ``epoll`` each) costs more than the model. As Python 3.12's
eager tasks do, :func:`run_all` runs each coroutine's first step at once, with the runtime's loop set as the running
loop (so ``asyncio.get_running_loop()``, ``create_task`` and ``run_in_executor`` work in it), and only the
coroutines that suspended go on together on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

_set_running_loop = asyncio.events._set_running_loop  # what the loop itself calls around each pass


def run_all(loop: asyncio.AbstractEventLoop, coroutines: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """The results of ``coroutines``, in order; exceptions propagate as from ``asyncio.gather``."""
    results: list[Any] = [None] * len(coroutines)
    waiting: list[tuple[int, Any]] = []
    for index, coroutine in enumerate(coroutines):
        _set_running_loop(loop)
        try:
            yielded = coroutine.send(None)
        except StopIteration as finished:
            results[index] = finished.value
            continue
        except BaseException:
            for _, rest in waiting:
                rest.close()
            raise
        finally:
            _set_running_loop(None)
        waiting.append((index, _resume(coroutine, yielded)))
    if waiting:
        finished = loop.run_until_complete(_together([rest for _, rest in waiting]))
        for (index, _), value in zip(waiting, finished, strict=True):
            results[index] = value
    return results


async def _together(coroutines: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """``gather`` made on the running loop (outside one, ``gather`` would take the thread's default loop)."""
    return list(await asyncio.gather(*coroutines))


async def _resume(coroutine: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Go on with a coroutine that yielded ``yielded`` (an asyncio future it waits for, or None for a bare yield),
    as a task would: wait for the future, then send it on, until it returns."""
    while True:
        if yielded is None:
            await asyncio.sleep(0)
        else:
            yielded._asyncio_future_blocking = False
            await asyncio.wait([yielded])
        try:
            yielded = coroutine.send(None)
        except StopIteration as finished:
            return finished.value


async def gather_eagerly(coroutines: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """:func:`run_all` from inside a running loop: each coroutine's first step at once, the rest awaited together."""
    results: list[Any] = [None] * len(coroutines)
    waiting: list[tuple[int, Any]] = []
    for index, coroutine in enumerate(coroutines):
        try:
            yielded = coroutine.send(None)
        except StopIteration as finished:
            results[index] = finished.value
            continue
        except BaseException:
            for _, rest in waiting:
                rest.close()
            raise
        waiting.append((index, _resume(coroutine, yielded)))
    if waiting:
        finished = await asyncio.gather(*(rest for _, rest in waiting))
        for (index, _), value in zip(waiting, finished, strict=True):
            results[index] = value
    return results
