"""The currency between dialects and the core: jobs going in, results and streamed pieces coming out.

A dialect decodes an HTTP request into a :class:`Job` and hands it to the core inference call
(:meth:`~modelserver.model_version.ModelVersion.infer`), which answers with an :class:`InferenceResult`, or
with a :class:`ResultStream` when the handler sends intermediate responses, or raises a
:class:`~modelserver.errors.ServeError`. A job carries opaque body inputs (TorchServe's ``data``
rows), typed :class:`~workers.tensors.Tensor` inputs (the tensor protocols), request parameters and
requested outputs; a result carries a body and, for tensor runtimes, output tensors. Nothing here
knows HTTP or sockets. ``Job`` uses ``__slots__`` because one is made per request on the hot path.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from workers.protocol import job_to_wire

from .errors import ServeError

if TYPE_CHECKING:
    from workers.tensors import Tensor, TensorMap

_job_ids = itertools.count(1)

Input = tuple[str, str, Any]
"""``(name, content_type, value)``: one opaque input (a form field, a multipart part, or the body) as bytes."""

PREDICT: Final = "predict"
EXPLAIN: Final = "explain"
DESCRIBE: Final = "describe"


class InferenceResult:
    """One answer for one job: status, reason, headers and content type the handler set, its body, and output
    tensors when the model's runtime answers with tensors."""

    __slots__ = ("body", "content_type", "headers", "parameters", "reason", "status", "tensors")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str],
        content_type: str,
        body: bytes | bytearray,
        tensors: list[Tensor] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_type = content_type
        self.body = body
        self.tensors = tensors
        self.parameters = parameters


class ResultStream:
    """The pieces of a streamed answer, in order: an async iterator of :class:`InferenceResult`.

    The first piece is already here when a dialect gets the stream. The worker connection pushes pieces and ends
    the stream with the final piece, or with an error (the worker died): iteration then raises it. Whoever
    consumes the stream must :meth:`aclose` it when done, whatever happened: the core then records the outcome
    and, if the stream did not end, cancels the job (its client went away).
    """

    __slots__ = (
        "_buffered",
        "_closer",
        "_done",
        "_error",
        "_flow",
        "_paused",
        "_pieces",
        "_sent_first",
        "_waiter",
        "first",
    )

    buffer_limit: ClassVar[int] = 2 * 1024 * 1024  # ClassVar: compiled, a plain default is fixed at build
    """``stream_buffer_size``: bytes of pieces held for a slow consumer before the producer is asked to wait."""

    def __init__(self, first: InferenceResult) -> None:
        self.first = first
        self._pieces: deque[InferenceResult] = deque()
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._sent_first = False
        self._closer: Callable[[ResultStream], None] | None = None
        self._buffered = 0
        self._paused = False
        self._flow: Callable[[bool], None] | None = None

    def on_flow(self, flow: Callable[[bool], None]) -> None:
        """Backpressure: ``flow(True)`` once more than :attr:`buffer_limit` bytes wait for the consumer (the worker
        should wait), ``flow(False)`` when they are down to half of it again."""
        self._flow = flow

    @property
    def ended(self) -> bool:
        """The final piece (or an error) has arrived."""
        return self._done

    @property
    def error(self) -> BaseException | None:
        return self._error

    def push(self, piece: InferenceResult, last: bool = False) -> None:
        self._pieces.append(piece)
        self._done = self._done or last
        self._buffered += len(piece.body)
        if not self._paused and self._buffered > self.buffer_limit and not self._done and self._flow is not None:
            self._paused = True
            self._flow(True)
        self._wake()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def on_close(self, closer: Callable[[ResultStream], None]) -> None:
        """Run ``closer`` once, at :meth:`aclose` (the core's bookkeeping)."""
        self._closer = closer

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> InferenceResult:
        if not self._sent_first:
            self._sent_first = True
            return self.first
        while not self._pieces:
            if self._done:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        piece = self._pieces.popleft()
        self._buffered -= len(piece.body)
        if self._paused and self._buffered <= self.buffer_limit // 2:
            self._paused = False
            if not self._done and self._flow is not None:
                self._flow(False)
        return piece

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._pieces.clear()  # a consumer that left frees what it had not taken
        self._buffered = 0
        closer, self._closer = self._closer, None
        if closer is not None:
            closer(self)


class BodyChunks:
    """A :class:`ResultStream` as the bytes of its pieces' bodies (TorchServe streams bodies as they are)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: ResultStream) -> None:
        self._stream = stream

    def __aiter__(self) -> BodyChunks:
        return self

    async def __anext__(self) -> bytes | bytearray:
        piece = await self._stream.__anext__()
        return piece.body

    async def aclose(self) -> None:
        self._stream.close()


class Job:
    """One inference request on its way to a worker.

    ``method`` is ``predict``, ``explain``, ``describe`` or a named method of the model; ``url_path`` is the extra
    path of ``/predictions/{m}/{v}/{path}``; ``infer_id`` the id the client gave its request (the Open Inference
    Protocol's ``id``); ``solo`` makes the job run in a batch of its own (a describe call); ``from_grpc``: it came
    over the Open Inference Protocol's gRPC API (a KServe model then answers raw inputs with raw outputs).
    ``tensors`` are :class:`~workers.tensors.Tensor` objects or, from a codec that builds them as they travel,
    tensor maps (:func:`~workers.tensors.tensor_map`).
    """

    __slots__ = (
        "cancelled",
        "deadline",
        "dispatched_at",
        "enqueued_at",
        "from_grpc",
        "future",
        "headers",
        "id",
        "infer_id",
        "inputs",
        "method",
        "metrics",
        "outputs",
        "parameters",
        "request_id",
        "solo",
        "started_at",
        "stream",
        "tensors",
        "url_path",
    )

    def __init__(
        self,
        request_id: str,
        headers: Mapping[str, str] | Sequence[bytes],
        inputs: list[Input],
        method: str = PREDICT,
        *,
        url_path: str = "",
        tensors: list[Tensor] | list[TensorMap] | None = None,
        parameters: Mapping[str, Any] | None = None,
        outputs: list[dict[str, Any]] | None = None,
        infer_id: str | None = None,
        solo: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
        from_grpc: bool = False,
    ) -> None:
        self.id = next(_job_ids)
        self.request_id = request_id
        self.headers = headers
        self.inputs = inputs
        self.method = method
        self.url_path = url_path
        self.tensors = tensors
        self.parameters = parameters
        self.outputs = outputs
        self.infer_id = infer_id
        self.from_grpc = from_grpc
        self.solo = solo
        self.deadline: float | None = None
        self.enqueued_at = 0.0
        self.cancelled = False
        self.metrics: Any = None  # the metrics series an admitted request updates (modelserver.metrics)
        self.started_at = 0.0  # perf_counter stamps for the latency metrics
        self.dispatched_at = 0.0
        self.stream: ResultStream | None = None
        loop = loop or asyncio.get_running_loop()
        self.future: asyncio.Future[InferenceResult | ResultStream] = loop.create_future()

    def to_wire(self) -> list[Any]:
        """The job as the ``infer`` frame carries it (``workers.protocol.job_to_wire``; docs/protocol.md)."""
        optional: dict[str, Any] | None = None
        if self.url_path or self.tensors or self.parameters or self.outputs or self.infer_id is not None:
            optional = {}
            if self.url_path:
                optional["url_path"] = self.url_path
            if self.tensors:
                optional["tensors"] = [t if isinstance(t, dict) else t.to_wire() for t in self.tensors]
            parameters = self.parameters
            if parameters:  # msgpack packs a dict as it is (an in-process worker gets its own copy: local_worker)
                optional["parameters"] = parameters if type(parameters) is dict else dict(parameters)
            if self.outputs:
                optional["outputs"] = self.outputs
            if self.infer_id is not None:
                optional["infer_id"] = self.infer_id
        if self.from_grpc:
            optional = optional or {}
            optional["from_grpc"] = True
        return job_to_wire(self.id, self.request_id, self.headers, self.inputs, self.method, optional)

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
        return self.future.done() and (self.stream is None or self.stream.ended)
