"""KServe's ``Model.__call__`` steps, run by the runtime: ``preprocess -> validate -> predict | explain ->
postprocess``, each hook sync or async, response headers for models that ask for them, and KServe's trace line.

Used for every model that keeps KServe's own ``__call__`` (the real package's or ours): the same hooks in the same
order, without KServe's Prometheus timers (in our processes nobody could scrape them) and with a choice of how a
synchronous hook runs: called at once (a worker process, whose loop serves only this model), or on a thread of its
own (a model in the server's process, whose loop must never block).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

trace_logger = logging.getLogger("kserve.trace")

Call = Callable[[Any, dict[str, str], bool], Any]
"""``call(body, headers, explain)`` -> an awaitable of ``(response, response_headers)`` (or the response alone)."""


def _ms(start: float) -> float:
    return round((time.time() - start) * 1000, 9)


def step_runner(executor: Executor | None) -> Callable[..., Any]:
    """How one hook runs: a coroutine function is awaited; a plain function is called, or with ``executor`` run on
    it (so it cannot block the caller's loop)."""
    if executor is None:

        async def run(method: Any, *args: Any) -> Any:
            if inspect.iscoroutinefunction(method):
                return await method(*args)
            return method(*args)

        return run

    async def offloaded(method: Any, *args: Any) -> Any:
        if inspect.iscoroutinefunction(method):
            return await method(*args)
        return await asyncio.get_running_loop().run_in_executor(executor, lambda: method(*args))

    return offloaded


def kserve_steps(model: Any, executor: Executor | None = None) -> Call:
    """KServe's pipeline for ``model`` (see the module docstring)."""
    run = step_runner(executor)

    async def call(body: Any, headers: dict[str, str], explain: bool) -> tuple[Any, dict[str, str]]:
        request_id = headers.get("x-request-id", "N.A.") if headers else "N.A."
        response_headers: dict[str, str] = {}
        extra = (response_headers,) if getattr(model, "required_response_headers", False) else ()
        preprocess_ms = explain_ms = predict_ms = 0.0
        start = time.time()
        payload = await run(model.preprocess, body, headers)
        preprocess_ms = _ms(start)
        payload = model.validate(payload)
        start = time.time()
        if explain:
            response = await run(model.explain, payload, headers)
            explain_ms = _ms(start)
        else:
            response = await run(model.predict, payload, headers, *extra)
            predict_ms = _ms(start)
        start = time.time()
        response = await run(model.postprocess, response, headers, *extra)
        postprocess_ms = _ms(start)
        if getattr(model, "enable_latency_logging", False) is True:
            trace_logger.info(
                f"requestId: {request_id}, preprocess_ms: {preprocess_ms}, explain_ms: {explain_ms}, "
                f"predict_ms: {predict_ms}, postprocess_ms: {postprocess_ms}"
            )
        return response, response_headers

    return call


def own_call(model: Any, verbs: Any, executor: Executor | None = None) -> Call:
    """A model's own ``__call__(body, headers=, verb=)``, with its package's ``InferenceVerb``."""
    run = step_runner(executor)

    async def call(body: Any, headers: dict[str, str], explain: bool) -> Any:
        verb = verbs.EXPLAIN if explain else verbs.PREDICT
        outcome = await run(type(model).__call__, model, body, headers, verb)
        return await outcome if inspect.isawaitable(outcome) else outcome

    return call
