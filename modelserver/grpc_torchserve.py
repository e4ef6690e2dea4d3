"""TorchServe 0.12's gRPC inference API, ``org.pytorch.serve.grpc.inference.InferenceAPIsService``.

``Ping`` answers the JSON of ``GET /ping``; ``Predictions`` and ``StreamPredictions`` run a job through the core
call, ``ModelVersion.infer``, with the request's ``input`` map as the handler's inputs (name -> bytes, no content
type, as TorchServe passes them). ``StreamPredictions`` sends one response per piece a handler sends with
``send_intermediate_predict_response``, then the last; ``Predictions`` answers the first piece only, as TorchServe
does. ``StreamPredictions2`` takes a stream of requests of a sequence (``sequenceId``) and answers each in turn,
its intermediate responses included, a failed one with a response carrying its ``status`` (and the stream goes
on), as TorchServe does; the handler gets the sequence's id (and start and end) as request headers. There is no
sequence batching here: a sequence's requests are not held for one worker.

Errors are TorchServe's: a missing model, a missing version, no worker or a full queue are INTERNAL with
TorchServe's message and, after a newline, the exception TorchServe names; a failure the handler reports has the
gRPC status of its HTTP status by TorchServe's table (``GRPCUtils.getGRPCStatusCode``). A cancelled call, or one
past its deadline, cancels its job as an HTTP client that leaves does.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc

from workers import grpc_stubs

from .auth import INFERENCE, InvalidKey, TokenAuthorization
from .dialects.torchserve_http import new_request_id
from .dialects.torchserve_inference import TorchServeInference
from .errors import ModelNotFound, ModelVersionNotFound, NoWorker, ServeError
from .grpc_server import ServiceTable, metadata_value
from .registry import ModelRegistry
from .types import PREDICT, InferenceResult, Job, ResultStream

logger = logging.getLogger("modelserver")

SERVICE = "org.pytorch.serve.grpc.inference.InferenceAPIsService"
_TS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    416: grpc.StatusCode.OUT_OF_RANGE,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_FAILED = "org.pytorch.serve.http.InternalServerException"
_ERROR_INFO_URL = "type.googleapis.com/google.rpc.ErrorInfo"
SEQUENCE_KEYS = ("ts_header_key_sequence_id", "ts_header_key_sequence_start", "ts_header_key_sequence_end")
SEQUENCE_DEFAULTS = ("ts_request_sequence_id", "ts_request_sequence_start", "ts_request_sequence_end")
"""TorchServe's settings naming the request headers of a sequence (StreamPredictions2), and their defaults."""
_NOT_FOUND = {
    ModelNotFound: "org.pytorch.serve.archive.model.ModelNotFoundException",
    ModelVersionNotFound: "org.pytorch.serve.archive.model.ModelVersionNotFoundException",
}


def sequence_headers(properties: Mapping[str, str]) -> tuple[str, str, str]:
    """The header names of a sequence's id, start and end: TorchServe's ``ts_header_key_sequence_*`` settings."""
    names = [
        (properties.get(key) or "").strip() or default
        for key, default in zip(SEQUENCE_KEYS, SEQUENCE_DEFAULTS, strict=True)
    ]
    return names[0], names[1], names[2]


def torchserve_code(http_status: int) -> grpc.StatusCode:
    """TorchServe's gRPC status for an HTTP status: its table, else FAILED_PRECONDITION (4xx), INTERNAL (5xx)."""
    code = _TS_CODES.get(http_status)
    if code is not None:
        return code
    if 400 <= http_status < 500:
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL if 500 <= http_status < 600 else grpc.StatusCode.UNKNOWN


class _Failure(Exception):
    """A call's failure as TorchServe words it: a status, a message and the reason (the Java exception's name)."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason

    @property
    def details(self) -> str:
        """What a unary or server-streaming call's status says: the message, a newline, the reason."""
        return f"{self.message}\n{self.reason}"


class TorchServeInferenceService:
    """The servicer of :data:`SERVICE`."""

    def __init__(
        self,
        registry: ModelRegistry,
        inference: TorchServeInference,
        auth: TokenAuthorization | None = None,
        sequence_headers: tuple[str, str, str] = SEQUENCE_DEFAULTS,
    ) -> None:
        self.registry = registry
        self.inference = inference
        self.auth = auth
        self.sequence_headers = sequence_headers
        """The request headers (and ``input`` keys) of a sequence's id, start and end."""
        self.messages = grpc_stubs.load("ts_inference")
        self.error_info = grpc_stubs.load("google/rpc/error_details").ErrorInfo

    def handler(self) -> ServiceTable:
        return ServiceTable(SERVICE, self.messages.services[SERVICE], self)

    async def _check(self, name: str, context: grpc.aio.ServicerContext) -> None:
        if self.auth is not None and not self.auth.allows((INFERENCE,), metadata_value(context, "authorization")):
            logger.info("gRPC %s: UNAUTHENTICATED (no valid inference key)", name)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, InvalidKey().message)

    # -- methods -------------------------------------------------------------------------------------

    async def ping(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._check("Ping", context)
        answer = await self.inference.ping(None, {})  # type: ignore[arg-type]
        return self.messages.TorchServeHealthResponse(health=bytes(answer.body).decode("utf-8").rstrip("\n"))

    async def predictions(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._check("Predictions", context)
        try:
            outcome = await self._run(request, context)
            if type(outcome) is ResultStream:  # TorchServe answers a unary call with the first piece
                await outcome.aclose()
                outcome = outcome.first
            return self._answer(outcome)
        except _Failure as failure:
            await self._abort("Predictions", context, failure)

    async def stream_predictions(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await self._check("StreamPredictions", context)
        try:
            outcome = await self._run(request, context)
            if type(outcome) is not ResultStream:
                yield self._answer(outcome)
                return
            try:
                async for piece in outcome:
                    yield self._answer(piece)
            except ServeError as err:  # the worker died mid-stream
                raise _Failure(torchserve_code(err.status), err.message, _FAILED) from None
            finally:
                await outcome.aclose()
        except _Failure as failure:
            await self._abort("StreamPredictions", context, failure)

    async def stream_predictions2(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        """TorchServe's bidirectional stream: the requests one after another, in the order they come, each answered
        by its responses (the intermediate ones first) before the next is read; a request that fails is answered by
        a response carrying its ``status`` and the stream goes on. The call ends when the client has sent its last
        request and that request is answered."""
        await self._check("StreamPredictions2", context)
        async for request in requests:
            try:
                headers = self._sequence_headers(request)
                outcome = await self._run(request, context, headers)
                if type(outcome) is not ResultStream:
                    yield self._answer(outcome)
                    continue
                try:
                    async for piece in outcome:
                        yield self._answer(piece)
                except ServeError as err:  # the worker died mid-stream
                    raise _Failure(torchserve_code(err.status), err.message, _FAILED) from None
                finally:
                    await outcome.aclose()
            except _Failure as failure:
                logger.info("gRPC StreamPredictions2: %s %s", failure.code.name, failure.message)
                yield self._status_response(failure)

    def _sequence_headers(self, request: Any) -> dict[str, str]:
        """The sequence's headers for the handler: its id (a new ``ts-seq-<uuid>`` when the request starts a sequence
        without one), and start and end when the request's ``input`` says so. No id and no start is TorchServe's
        "Parameter sequenceId is required." failure."""
        id_key, start_key, end_key = self.sequence_headers
        flags = {key: bytes(request.input.get(key, b"")).strip().lower() == b"true" for key in (start_key, end_key)}
        sequence = request.sequenceId
        headers = {}
        if not sequence:
            if not flags[start_key]:
                raise _Failure(grpc.StatusCode.INTERNAL, "Parameter sequenceId is required.", "BadRequestException.()")
            sequence = f"ts-seq-{uuid.uuid4()}"
        headers[id_key] = sequence
        for key, on in flags.items():
            if on:
                headers[key] = "true"
        return headers

    def _status_response(self, failure: _Failure) -> Any:
        """A ``PredictionResponse`` whose ``status`` says why a request of the stream failed: the gRPC code, the
        message, and an ``ErrorInfo`` with the reason, as TorchServe sends it."""
        response = self.messages.PredictionResponse()
        response.status.code = failure.code.value[0]
        response.status.message = failure.message
        info = self.error_info(reason=failure.reason)
        response.status.details.add(type_url=_ERROR_INFO_URL, value=info.SerializeToString())
        return response

    # -- one prediction ------------------------------------------------------------------------------

    async def _run(
        self, request: Any, context: grpc.aio.ServicerContext, extra_headers: dict[str, str] | None = None
    ) -> InferenceResult | ResultStream:
        name = request.model_name
        if not name:
            raise _Failure(grpc.StatusCode.INTERNAL, "Parameter model_name is required.", "BadRequestException.()")
        version = request.model_version or None
        try:
            model = self.registry.resolve(name, version)
        except (ModelNotFound, ModelVersionNotFound) as err:
            raise _Failure(grpc.StatusCode.INTERNAL, err.message, _NOT_FOUND[type(err)]) from None
        headers = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        if extra_headers:
            headers.update(extra_headers)
        inputs = [(key, "", value) for key, value in request.input.items()]
        job = Job(new_request_id(), headers, inputs, PREDICT, loop=model.loop)
        try:
            return await model.infer(job, bool(version))
        except NoWorker as err:
            raise _Failure(grpc.StatusCode.INTERNAL, err.message, "InternalServerException.()") from None
        except ServeError as err:
            raise _Failure(torchserve_code(err.status), err.message, _FAILED) from None

    def _answer(self, outcome: InferenceResult) -> Any:
        if outcome.status >= 400:
            raise _Failure(torchserve_code(outcome.status), _error_text(outcome.body), _FAILED)
        return self.messages.PredictionResponse(prediction=bytes(outcome.body))

    async def _abort(self, method: str, context: grpc.aio.ServicerContext, failure: _Failure) -> None:
        logger.info("gRPC %s: %s %s", method, failure.code.name, failure.details.partition("\n")[0])
        await context.abort(failure.code, failure.details)


def _error_text(body: bytes | bytearray) -> str:
    """TorchServe's error body's ``message``, else the body as text."""
    text = bytes(body).decode("utf-8", "replace")
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return document["message"]
    return text
