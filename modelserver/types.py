"""The currency between dialects and the core: jobs going in, results and streamed pieces coming out.

A dialect turns an HTTP request into a :class:`Job` and awaits ``job.future``; it resolves to an
:class:`InferenceResult`, or to a :class:`ResultStream` when the handler sends intermediate
responses, or fails with a :class:`~modelserver.errors.ServeError`. Nothing here knows HTTP or
sockets. ``Job`` uses ``__slots__`` because one is made per request on the hot path.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from workers.protocol import attach

from .errors import ServeError

_job_ids = itertools.count(1)

Input = tuple[str, str, Any]
"""``(name, content_type, value)``: value is bytes, or a tensor map ``{dtype, shape, data}``."""


class InferenceResult:
    """One answer for one job: the handler's status, headers, content type and body."""

    __slots__ = ("body", "content_type", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str], content_type: str, body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_type = content_type
        self.body = body


class ResultStream:
    """The pieces of a streamed answer, in order; the first piece is already here when a dialect sees it.

    The worker connection pushes pieces and closes the stream with the final piece, or with an
    error (the worker died): iteration then raises it, and the dialect ends the chunked body there.
    """

    __slots__ = ("_done", "_error", "_pieces", "_waiter", "first")

    def __init__(self, first: InferenceResult) -> None:
        self.first = first
        self._pieces: deque[InferenceResult] = deque()
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def push(self, piece: InferenceResult, last: bool = False) -> None:
        self._pieces.append(piece)
        self._done = self._done or last
        self._wake()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def __aiter__(self) -> AsyncIterator[InferenceResult]:
        yield self.first
        while True:
            while self._pieces:
                yield self._pieces.popleft()
            if self._done:
                if self._error is not None:
                    raise self._error
                return
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None


class Job:
    """One inference request on its way to a worker."""

    __slots__ = (
        "cancelled",
        "deadline",
        "dispatched_at",
        "enqueued_at",
        "future",
        "headers",
        "id",
        "inputs",
        "method",
        "metrics",
        "request_id",
        "started_at",
        "stream",
    )

    def __init__(
        self,
        request_id: str,
        headers: dict[str, str],
        inputs: list[Input],
        method: str = "predict",
        deadline: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.id = next(_job_ids)
        self.request_id = request_id
        self.headers = headers
        self.inputs = inputs
        self.method = method
        self.deadline = deadline
        self.enqueued_at = 0.0
        self.cancelled = False
        self.metrics: Any = None  # the metrics series an inference request updates (modelserver.metrics)
        self.started_at = 0.0  # perf_counter stamps for the latency metrics
        self.dispatched_at = 0.0
        self.stream: ResultStream | None = None
        loop = loop or asyncio.get_running_loop()
        self.future: asyncio.Future[InferenceResult | ResultStream] = loop.create_future()

    def to_wire(self) -> dict[str, Any]:
        """The job as the ``infer`` frame carries it; large bodies go as attachments (docs/protocol.md)."""
        return {
            "id": self.id,
            "request_id": self.request_id,
            "headers": self.headers,
            "inputs": [(name, content_type, attach(value)) for name, content_type, value in self.inputs],
            "method": self.method,
        }

    def succeed(self, result: InferenceResult, last: bool = True) -> None:
        """Deliver a final result (``last``) or a streamed piece."""
        if self.stream is not None:
            self.stream.push(result, last)
        elif last:
            if not self.future.done():
                self.future.set_result(result)
        else:
            self.stream = ResultStream(result)
            if not self.future.done():
                self.future.set_result(self.stream)

    def fail(self, error: ServeError) -> None:
        if self.stream is not None:
            self.stream.fail(error)
        elif not self.future.done():
            self.future.set_exception(error)

    @property
    def finished(self) -> bool:
        return self.future.done() and (self.stream is None or self.stream._done)
