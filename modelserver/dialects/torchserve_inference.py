"""TorchServe's inference API: ``/ping``, the API description, ``/predictions``, ``/explanations``
and the KServe-v1-style ``/v1/models/{model}:predict|:explain`` that TorchServe routes to a handler.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from ..errors import ServeError
from ..registry import ModelRegistry, ModelVersion
from ..router import ANY, Route
from ..types import InferenceResult, Job, ResultStream
from . import torchserve_http as http
from .request_inputs import read_inputs

_PREDICT_RESPONSES = {
    200: "The handler's output",
    400: "Bad request",
    404: "Model or version not found",
    413: "Request body too large",
    500: "Worker died",
    503: "No worker, queue full, or the handler failed",
    507: "Out of resources",
}


class TorchServeInference(http.TorchServeDialect):
    """The routes of TorchServe's inference port, over the model registry."""

    tag = "inference"

    def __init__(self, registry: ModelRegistry, api_description: Callable[[], dict[str, Any]]) -> None:
        super().__init__(api_description)
        self.registry = registry

    def routes(self) -> Iterable[Route]:
        yield Route(ANY, "/ping", self.ping, summary="Get TorchServe status.", operation_id="ping", tags=("inference",))
        yield from self.description_routes()
        for prefix, method in (("predictions", "predict"), ("explanations", "explain")):
            handler = self._inference_handler(method)
            meta: dict[str, Any] = {"tags": ("inference",), "request_body": "*/*", "responses": _PREDICT_RESPONSES}
            yield Route(
                ANY,
                f"/{prefix}/{{model_name}}",
                handler,
                summary=f"{method.title()} with the default version.",
                operation_id=method,
                **meta,
            )
            yield Route(
                ANY,
                f"/{prefix}/{{model_name}}/{{model_version}}",
                handler,
                summary=f"{method.title()} with a given model version.",
                operation_id=f"{method}Version",
                **meta,
            )
            yield Route(
                ANY,
                f"/{prefix}/{{model_name}}/{{model_version}}/{{url_path:path}}",
                handler,
                summary=f"{method.title()}; the extra path reaches the handler as header url_path.",
                operation_id=f"{method}VersionPath",
                **meta,
            )
        for verb in ("predict", "explain"):
            yield Route(
                frozenset({"POST"}),
                f"/v1/models/{{model_name}}:{verb}",
                self._kserve_handler(verb),
                summary=f"KServe v1 {verb} with the model's handler.",
                operation_id=f"kserveV1{verb.title()}",
                tags=("inference",),
                request_body="application/json",
                responses=_PREDICT_RESPONSES,
            )

    # -- handlers --------------------------------------------------------------------------------

    async def ping(self, request: web.BaseRequest, params: dict[str, str]) -> web.StreamResponse:
        if self.registry.healthy():
            return http.json_response({"status": "Healthy"})
        return http.json_response({"status": "Unhealthy"}, 500)

    def _inference_handler(self, method: str) -> Callable[[web.BaseRequest, dict[str, str]], Any]:
        async def handler(request: web.BaseRequest, params: dict[str, str]) -> web.StreamResponse:
            version = params.get("model_version")
            model = self.registry.resolve(params["model_name"], version)
            if request.method == "OPTIONS":
                return http.json_response(self._model_description(model))
            extra = {"url_path": params.get("url_path", ""), "explain": "True" if method == "explain" else "False"}
            return await self._infer(request, model, method, extra, explicit_version=bool(version))

        return handler

    def _kserve_handler(self, verb: str) -> Callable[[web.BaseRequest, dict[str, str]], Any]:
        async def handler(request: web.BaseRequest, params: dict[str, str]) -> web.StreamResponse:
            model = self.registry.resolve(params["model_name"])
            extra = {"url_path": "", "explain": "True" if verb == "explain" else "False"}
            return await self._infer(request, model, verb, extra, explicit_version=False)

        return handler

    # -- the inference round trip ----------------------------------------------------------------

    async def _infer(
        self, request: web.BaseRequest, model: ModelVersion, method: str, extra: dict[str, str], explicit_version: bool
    ) -> web.StreamResponse:
        inputs = await read_inputs(request)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.raw_headers}
        headers.update(extra)
        job = Job(http.new_request_id(), headers, inputs, method, loop=model.loop)
        model.metrics.admit(job, explicit_version)  # counted before queueing, so a 503 counts too
        model.submit(job, explicit_version)
        try:
            outcome = await job.future
        except asyncio.CancelledError:
            model.cancel(job)
            raise
        if isinstance(outcome, ResultStream):
            model.metrics.streams += 1
            try:
                return await self._stream(request, model, job, outcome)
            finally:
                model.metrics.streams -= 1
        return self._response(job.request_id, outcome)

    def _response(self, request_id: str, result: InferenceResult) -> web.Response:
        headers = _headers(request_id, result)
        response = web.Response(status=result.status, reason=result.reason or None, body=result.body, headers=headers)
        if result.status >= 400:
            response.force_close()
        return response

    async def _stream(
        self, request: web.BaseRequest, model: ModelVersion, job: Job, stream: ResultStream
    ) -> web.StreamResponse:
        """One HTTP chunk per piece, written as it arrives; headers and status come from the first."""
        first = stream.first
        headers = _headers(job.request_id, first)
        headers["X-Accel-Buffering"] = "no"
        response = web.StreamResponse(status=first.status, reason=first.reason or None, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for piece in stream:
                if piece.body:
                    await response.write(piece.body)
        except ServeError:
            # The worker died mid-stream: cut the connection so the client sees a truncated chunked body,
            # never a clean end (aiohttp's own write_eof then fails quietly on the closed transport).
            if request.transport is not None:
                request.transport.abort()
            return response
        except (asyncio.CancelledError, ConnectionError):
            model.cancel(job)
            raise
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    def _model_description(self, model: ModelVersion) -> dict[str, Any]:
        document = self._api_description()
        paths = {p: v for p, v in document.get("paths", {}).items() if p.startswith(("/predictions", "/explanations"))}
        return {**document, "paths": paths}


def _headers(request_id: str, result: InferenceResult) -> MutableMapping[str, str]:
    """Our headers, then the handler's (case-insensitively replacing ours), then its content type.

    A plain dict when the handler set no headers of its own (the usual case): aiohttp copies whatever it is given
    into a ``CIMultiDict`` anyway, so building one here would be done twice."""
    if not result.headers:
        plain = http.response_headers(request_id)
        if result.content_type:
            plain["Content-Type"] = result.content_type
        return plain
    headers = CIMultiDict(http.response_headers(request_id))
    headers.update(result.headers)
    if result.content_type:
        headers["Content-Type"] = result.content_type
    return headers
