"""TorchServe's inference API: ``/ping``, the API description, ``/predictions``, ``/explanations``, and the
KServe-style ``/v1/models/{model}:predict|:explain`` and ``/v2/models/{model}/infer|explain`` that TorchServe 0.12
passes to a handler as they are (a configured ``service_envelope`` translates them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from multidict import CIMultiDict

from ..http_messages import AnyResponse, Request, Response, StreamingResponse
from ..model_version import ModelVersion
from ..registry import ModelRegistry
from ..router import ANY, Route
from ..types import EXPLAIN, PREDICT, BodyChunks, InferenceResult, Job, ResultStream
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
        for prefix, method in (("predictions", PREDICT), ("explanations", EXPLAIN)):
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
        for verb, suffix in ((PREDICT, "infer"), (EXPLAIN, "explain")):
            yield Route(
                frozenset({"POST"}),
                f"/v2/models/{{model_name}}/{suffix}",
                self._kserve_handler(verb),
                summary=f"Open Inference Protocol {suffix} route, passed to the handler as TorchServe does.",
                operation_id=f"kserveV2{suffix.title()}",
                tags=("inference",),
                request_body="application/json",
                responses=_PREDICT_RESPONSES,
                protocol="torchserve",
                model_param="model_name",
            )
        for verb in (PREDICT, EXPLAIN):
            yield Route(
                frozenset({"POST"}),
                f"/v1/models/{{model_name}}:{verb}",
                self._kserve_handler(verb),
                summary=f"KServe v1 {verb} with the model's handler.",
                operation_id=f"kserveV1{verb.title()}",
                tags=("inference",),
                request_body="application/json",
                responses=_PREDICT_RESPONSES,
                protocol="torchserve",
                model_param="model_name",
            )

    # -- handlers --------------------------------------------------------------------------------

    async def ping(self, request: Request, params: dict[str, str]) -> Response:
        if self.registry.healthy():
            return http.json_response({"status": "Healthy"})
        return http.json_response({"status": "Unhealthy"}, 500)

    def _inference_handler(self, method: str) -> Callable[[Request, dict[str, str]], Any]:
        async def handler(request: Request, params: dict[str, str]) -> AnyResponse:
            version = params.get("model_version")
            model = self.registry.resolve(params["model_name"], version)
            if request.method == "OPTIONS":
                return http.json_response(self._model_description(model))
            return await self._infer(request, model, method, params.get("url_path", ""), bool(version))

        return handler

    def _kserve_handler(self, verb: str) -> Callable[[Request, dict[str, str]], Any]:
        async def handler(request: Request, params: dict[str, str]) -> AnyResponse:
            model = self.registry.resolve(params["model_name"])
            return await self._infer(request, model, verb, "", explicit_version=False)

        return handler

    # -- one inference: decode, the core call, encode -----------------------------------------------

    async def _infer(
        self, request: Request, model: ModelVersion, method: str, url_path: str, explicit_version: bool
    ) -> AnyResponse:
        inputs = await read_inputs(request)
        job = Job(http.new_request_id(), request.header_dict(), inputs, method, url_path=url_path, loop=model.loop)
        outcome = await model.infer(job, explicit_version)
        if type(outcome) is ResultStream:
            first = outcome.first
            headers = _headers(job.request_id, first)
            headers["X-Accel-Buffering"] = "no"
            return StreamingResponse(BodyChunks(outcome), first.status, headers, first.reason or None)
        return Response(
            outcome.status,
            _headers(job.request_id, outcome),
            outcome.body,
            outcome.reason or None,
            close=outcome.status >= 400,
        )

    def _model_description(self, model: ModelVersion) -> dict[str, Any]:
        document = self._api_description()
        paths = {p: v for p, v in document.get("paths", {}).items() if p.startswith(("/predictions", "/explanations"))}
        return {**document, "paths": paths}


def _headers(request_id: str, result: InferenceResult) -> MutableMapping[str, str]:
    """Our headers, then the handler's (case-insensitively replacing ours), then its content type.

    A plain dict when the handler set no headers of its own (the usual case): the HTTP layer copies whatever it is
    given into a case-insensitive map anyway, so building one here would be done twice."""
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
