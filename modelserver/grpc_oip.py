"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService`` on the server's event loop.

Each method answers what its REST twin (:mod:`.dialects.kserve_v2`, :mod:`.dialects.kserve_v2_repository`) answers,
through the same objects: readiness and metadata from the registry and the V2 dialect, load and unload from the
repository dialect, and ``ModelInfer`` through the core call, ``ModelVersion.infer(job)``, with the tensors of
:mod:`.grpc_oip_codec`. Failures carry KServe's messages with the gRPC status of their HTTP status (404 NOT_FOUND,
400 INVALID_ARGUMENT, 503 UNAVAILABLE, ...). With token authorization on, every call needs the inference key in
its ``authorization`` metadata (``Bearer <key>``), as the REST routes do; without it, UNAUTHENTICATED.

A call the client cancels, or whose deadline passes, is cancelled by grpc.aio: its coroutine gets
``CancelledError`` inside ``ModelVersion.infer``, which drops the job from the queue or tells its worker, as an
HTTP client that goes away does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from workers import grpc_stubs

from . import __version__
from .auth import INFERENCE, InvalidKey, TokenAuthorization
from .dialects import kserve_http as http
from .dialects.kserve_v2 import EXTENSIONS, KServeV2
from .dialects.kserve_v2_repository import KServeV2Repository
from .dialects.torchserve_http import new_request_id
from .errors import ServeError
from .grpc_oip_codec import decode_request, response_bytes
from .grpc_oip_wire import WireError, split_request
from .grpc_server import ServiceTable, metadata_value
from .oip_codec import OIPError
from .types import PREDICT, Job, ResultStream

logger = logging.getLogger("modelserver")

SERVICE = "inference.GRPCInferenceService"
OWN_WIRE = frozenset({"ModelInfer"})
"""Methods that read and write their messages themselves (:mod:`.grpc_oip_wire`: raw tensors not copied)."""
WIRE_MIN_BYTES = 64 * 1024
"""From this size on, a request's or answer's raw tensors are read or written by :mod:`.grpc_oip_wire` (no copy);
below it, by protobuf, whose C code costs fewer instructions than the Python walk for a small message (callgrind:
~45k more per call for a 64-byte tensor)."""
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
    507: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_code(http_status: int) -> grpc.StatusCode:
    """The gRPC status of an HTTP status: its listed twin, else INVALID_ARGUMENT for 4xx and INTERNAL for 5xx."""
    code = STATUS_CODES.get(http_status)
    if code is not None:
        return code
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= http_status < 500 else grpc.StatusCode.INTERNAL


class OIPService:
    """The servicer: one coroutine per method of :data:`SERVICE`."""

    def __init__(self, v2: KServeV2, repository: KServeV2Repository, auth: TokenAuthorization | None = None) -> None:
        self.v2 = v2
        self.repository = repository
        self.auth = auth
        self.registry = v2.registry
        self.messages = grpc_stubs.load("oip_inference")

    def handler(self) -> ServiceTable:
        """The method table a transport serves, built from the service as the ``.proto`` declares it."""
        return ServiceTable(SERVICE, self.messages.services[SERVICE], _Guarded(self), OWN_WIRE)

    def guarded(self, name: str, method: Callable[[Any, Any], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """``method`` with token authorization first, and a :class:`ServeError` answered as a gRPC status."""
        auth = self.auth

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                if auth is not None and not auth.allows((INFERENCE,), metadata_value(context, "authorization")):
                    logger.info("gRPC %s: UNAUTHENTICATED (no valid inference key)", name)
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, InvalidKey().message)
                return await method(request, context)
            except ServeError as err:
                code = status_code(err.status)
                if err.status >= 500 and code is grpc.StatusCode.INTERNAL:
                    logger.error("gRPC %s failed: %s", name, err.message)
                else:
                    logger.info("gRPC %s: %s %s", name, code.name, err.message)
                await context.abort(code, err.message)

        return call

    # -- health and metadata -------------------------------------------------------------------------

    async def server_live(self, request: Any, context: Any) -> Any:
        return self.messages.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: Any) -> Any:
        return self.messages.ServerReadyResponse(ready=await self.registry.server_ready())

    async def model_ready(self, request: Any, context: Any) -> Any:
        model = self.v2.find(request.name, request.version or None)
        return self.messages.ModelReadyResponse(ready=await http.is_ready(model))

    async def server_metadata(self, request: Any, context: Any) -> Any:
        return self.messages.ServerMetadataResponse(name="modelserver", version=__version__, extensions=EXTENSIONS)

    async def model_metadata(self, request: Any, context: Any) -> Any:
        model = self.v2.find(request.name, request.version or None)
        described = await self.v2.types_of(model)
        response = self.messages.ModelMetadataResponse(
            name=request.name,
            versions=[version.spec.version for version in self.registry.versions(request.name)],
            platform="",
        )
        for field in ("inputs", "outputs"):
            for entry in described.get(field) or ():
                getattr(response, field).add(
                    name=str(entry.get("name", "")),
                    datatype=str(entry.get("datatype", "")),
                    shape=[int(dim) for dim in entry.get("shape") or ()],
                )
        return response

    # -- repository ----------------------------------------------------------------------------------

    async def repository_model_load(self, request: Any, context: Any) -> Any:
        name = request.model_name or request.repository_name  # Triton's field 2, else KServe's field 1
        await self.repository.load(None, {"model_name": name})  # type: ignore[arg-type]
        return self.messages.RepositoryModelLoadResponse(model_name=name, isLoaded=True)

    async def repository_model_unload(self, request: Any, context: Any) -> Any:
        name = request.model_name or request.repository_name
        await self.repository.unload(None, {"model_name": name})  # type: ignore[arg-type]
        return self.messages.RepositoryModelUnloadResponse(model_name=name, isUnloaded=True)

    # -- inference -----------------------------------------------------------------------------------

    async def model_infer(self, body: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            if len(body) < WIRE_MIN_BYTES:  # small: protobuf's C parser is faster than walking the fields here
                request, raw = self.messages.ModelInferRequest.FromString(body), None
            else:
                rest, raw = split_request(body)
                request = self.messages.ModelInferRequest.FromString(rest)
        except (WireError, DecodeError) as err:
            raise http.KServeError(f"The request is not a ModelInferRequest: {err}", 400) from None
        version = request.model_version or None
        model = await self.v2.ready(request.model_name, version)
        try:
            decoded = decode_request(request, raw)
        except OIPError as err:
            raise http.KServeError(str(err), 400) from None
        if decoded.raw:  # a raw input is a binary one (as on REST): a KServe model gets it as its buffer
            for tensor in decoded.inputs:
                tensor.parameters = {**(tensor.parameters or {}), "binary_data_size": len(tensor.data)}
        headers = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        request_id = headers.get("x-request-id") or new_request_id()
        outputs = [{"name": o.name, "parameters": o.parameters} for o in decoded.outputs or ()]
        job = Job(
            request_id,
            headers,
            [],
            PREDICT,
            tensors=decoded.inputs,
            parameters=decoded.parameters or None,
            outputs=outputs or None,
            infer_id=decoded.id or None,
            loop=model.loop,
            from_grpc=True,
        )
        outcome = await model.infer(job, bool(version))
        if type(outcome) is ResultStream:
            await outcome.aclose()
            raise http.KServeError("Streaming responses are not supported by ModelInfer.", 500)
        if outcome.status >= 400:
            raise http.KServeError(_error_text(outcome.body), outcome.status)
        if outcome.tensors is None:
            raise http.KServeError(f"Model {model.spec.name} did not answer with tensors", 500)
        spec = model.spec
        try:
            return response_bytes(
                self.messages,
                spec.name,
                spec.version,
                decoded.id or request_id,
                outcome.parameters,
                outcome.tensors,
                decoded.outputs,
                decoded.raw,
                WIRE_MIN_BYTES,
                pieces=True,  # the transport writes the raw outputs from where they are (grpcio joins them)
            )
        except OIPError as err:
            raise http.KServeError(str(err), 400) from None


def _error_text(body: bytes | bytearray) -> str:
    """The message of an error body (``{"error": ...}`` or TorchServe's ``{"message": ...}``), else its text."""
    text = bytes(body).decode("utf-8", "replace")
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict):
        for key in ("error", "message", "detail"):
            if isinstance(document.get(key), str):
                return document[key]
    return text


class _Guarded:
    """The service's methods by snake-case name, each :meth:`OIPService.guarded`."""

    def __init__(self, service: OIPService) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return self._service.guarded(name, getattr(self._service, name))
