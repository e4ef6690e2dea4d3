"""TorchServe's inference API: ``/ping``, the API description, ``/predictions``, ``/explanations``, SageMaker's
``/invocations`` and ``/models/{model}/invoke``, the legacy ``/{model}[/{version}]/predict``, and the KServe-style
``/v1/models/{model}:predict|:explain`` and ``/v2/models/{model}/infer|explain`` that TorchServe 0.12 passes to a
handler as they are (a configured ``service_envelope`` translates them).

Only the SageMaker and legacy routes pass the query parameters to the handler (as inputs before the body's), as
TorchServe does; every route goes through the same core call (:meth:`ModelVersion.infer`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, ClassVar, Final

from multidict import CIMultiDict

from ..api_docs import Param, Reply, handler_input, handler_output
from ..errors import BadRequest
from ..http_messages import AnyResponse, HeaderBlock, Request, Response, StreamingResponse, ready
from ..model_version import ModelVersion
from ..openapi import openapi_info
from ..registry import ModelRegistry
from ..router import ANY, Route
from ..types import EXPLAIN, PREDICT, BodyChunks, InferenceResult, Input, Job, ResultStream
from . import torchserve_http as http
from .request_inputs import query_inputs, read_inputs, ready_inputs

_ERROR_REPLIES: Final[dict[int, str | Reply]] = {
    400: "Bad request",
    404: "Model not found or Model Version not found",
    413: Reply("Request body larger than max_request_size (an empty body)", media_types=()),
    500: "Internal Server Error (a worker died)",
    503: "No worker is available to serve request, the queue is full, or the handler failed",
    507: "Out of resources",
}
_PREDICT_RESPONSES: Final[dict[int, str | Reply]] = {200: handler_output(), **_ERROR_REPLIES}
_MODEL_NAME_QUERY: Final = Param(
    "model_name",
    "Name of model. Without it: the only model loaded at start-up, else a form field model_name.",
)
_MODEL_PATHS: Final[tuple[str, ...]] = (
    "/predictions/",
    "/explanations/",
    "/v1/models/{model_name}:",
    "/v2/models/{model_name}/infer",
    "/v2/models/{model_name}/explain",
)
"""The paths of a model's own API description (``OPTIONS /predictions/{m}``), as TorchServe's ``getModelApi``."""
MODEL_API_VERSION: Final = "1.0.0"
"""The ``info.version`` TorchServe gives a model's own API description, whatever the model's version."""
_PASSED_ON: Final = "Query parameters are passed to the handler as inputs."


class TorchServeInference(http.TorchServeDialect):
    """The routes of TorchServe's inference port, over the model registry."""

    tag: ClassVar[str] = "inference"

    def __init__(self, registry: ModelRegistry, api_description: Callable[[], dict[str, Any]]) -> None:
        super().__init__(api_description)
        self.registry = registry

    def routes(self) -> Iterable[Route]:
        yield Route(
            ANY,
            "/ping",
            self.ping,
            summary="Get TorchServe status.",
            operation_id="ping",
            tags=("inference",),
            responses={
                200: Reply("TorchServe status", "Status"),
                500: Reply("Unhealthy: a startup model cannot load", "Status"),
            },
            doc_methods=("GET",),
        )
        yield from self.description_routes()
        meta: dict[str, Any] = {
            "tags": ("inference",),
            "request_body": handler_input(required=True),
            "responses": _PREDICT_RESPONSES,
            "doc_methods": ("POST",),
        }
        for prefix, method, ids in (("predictions", PREDICT, "predictions"), ("explanations", EXPLAIN, "explanations")):
            handler = self._inference_handler(method)
            what = "Predictions" if method == PREDICT else "Explanations"
            yield Route(
                ANY,
                f"/{prefix}/{{model_name}}",
                handler,
                summary=f"{what} entry point to get inference using default model version.",
                operation_id=ids,
                **meta,
            )
            yield Route(
                ANY,
                f"/{prefix}/{{model_name}}/{{model_version}}",
                handler,
                summary=f"{what} entry point to get inference using specific model version.",
                operation_id=f"version_{ids}",
                **meta,
            )
            yield Route(
                ANY,
                f"/{prefix}/{{model_name}}/{{model_version}}/{{url_path:path}}",
                handler,
                summary=f"{what} with a model version; the extra path reaches the handler as header url_path.",
                operation_id=f"version_{ids}_path",
                **meta,
            )
        yield from self._sagemaker_routes(meta)
        shared: dict[str, Any] = {
            **meta,
            "doc_methods": (),
            "error_schema": "AnyError",
            "protocol": "torchserve",
            "model_param": "model_name",
        }
        for verb, suffix in ((PREDICT, "infer"), (EXPLAIN, "explain")):
            yield Route(
                frozenset({"POST"}),
                f"/v2/models/{{model_name}}/{suffix}",
                self._kserve_handler(verb),
                summary=f"Open Inference Protocol {suffix}: a TorchServe model's handler gets the body as it is, a "
                "KServe model answers in the protocol.",
                operation_id=f"{'predictions' if verb == PREDICT else 'explanations'}_v2",
                **shared,
            )
        for verb in (PREDICT, EXPLAIN):
            yield Route(
                frozenset({"POST"}),
                f"/v1/models/{{model_name}}:{verb}",
                self._kserve_handler(verb),
                summary=f"KServe v1 {verb}: a TorchServe model's handler gets the body as it is.",
                operation_id=f"{'predictions' if verb == PREDICT else 'explanations'}_v1",
                **shared,
            )

    def _sagemaker_routes(self, meta: dict[str, Any]) -> Iterable[Route]:
        """SageMaker's ``/invocations`` and ``/models/{m}/invoke``, and the legacy ``/{m}[/{v}]/predict``: the
        query parameters become inputs too."""
        yield Route(
            ANY,
            "/invocations",
            self._invocations,
            summary="SageMaker-compatible inference; the model is named by the query (or a form field) model_name.",
            description=_PASSED_ON,
            operation_id="invocations",
            parameters=(_MODEL_NAME_QUERY,),
            **{**meta, "responses": {**_PREDICT_RESPONSES, 400: "Parameter model_name is required, or a bad request"}},
        )
        yield Route(
            ANY,
            "/models/{model_name}/invoke",
            self._invoke,
            summary="SageMaker-compatible inference with the default model version.",
            description=_PASSED_ON,
            operation_id="invoke",
            **meta,
        )
        legacy = {
            **meta,
            "request_body": handler_input(),
            "doc_methods": ("GET", "POST"),
            "deprecated": True,
            "description": _PASSED_ON,
        }
        data = (Param("data", "The input, as the handler's input data (legacy form)."),)
        yield Route(
            ANY,
            "/{model_name}/predict",
            self._legacy_predict,
            summary="Legacy predict with the default model version.",
            operation_id="legacy_predict",
            parameters=data,
            **legacy,
        )
        yield Route(
            ANY,
            "/{model_name}/{model_version}/predict",
            self._legacy_predict,
            summary="Legacy predict with a given model version.",
            operation_id="version_legacy_predict",
            parameters=data,
            **legacy,
        )

    # -- handlers --------------------------------------------------------------------------------

    async def ping(self, request: Request, params: dict[str, str]) -> Response:
        if await self.registry.server_healthy():
            return http.json_response({"status": "Healthy"})
        return http.json_response({"status": "Unhealthy"}, 500)

    def _inference_handler(self, method: str) -> Callable[[Request, dict[str, str]], Any]:
        # A plain function handing back the coroutine of the inference: one coroutine less per request.
        def handler(request: Request, params: dict[str, str]) -> Awaitable[AnyResponse]:
            version = params.get("model_version")
            model = self.registry.resolve(params["model_name"], version)
            if request.method == "OPTIONS":
                return ready(http.json_response(self._model_description(model)))
            return self._infer(request, model, method, params.get("url_path", ""), bool(version))

        return handler

    async def _invocations(self, request: Request, params: dict[str, str]) -> AnyResponse:
        """TorchServe's order: the query's ``model_name``; if none or empty, the only model loaded at start-up;
        if the query had none at all, the first input named ``model_name`` (a form field); else 400."""
        inputs = query_inputs(request) + await read_inputs(request)
        name = request.query.get("model_name")
        if not name:
            name = self._only_startup_model() or name
        if name is None:
            name = next((value.decode("utf-8", "replace") for key, _, value in inputs if key == "model_name"), None)
        if name is None:
            raise BadRequest("Parameter model_name is required.")
        return await self._answer(request, name, None, inputs)

    async def _invoke(self, request: Request, params: dict[str, str]) -> AnyResponse:
        inputs = query_inputs(request) + await read_inputs(request)
        return await self._answer(request, params["model_name"], None, inputs)

    async def _legacy_predict(self, request: Request, params: dict[str, str]) -> AnyResponse:
        inputs = query_inputs(request) + await read_inputs(request)
        return await self._answer(request, params["model_name"], params.get("model_version"), inputs)

    async def _answer(self, request: Request, name: str, version: str | None, inputs: list[Input]) -> AnyResponse:
        model = self.registry.resolve(name, version)
        if request.method == "OPTIONS":
            return http.json_response(self._model_description(model))
        return await self._infer(request, model, PREDICT, "", bool(version), inputs)

    def _only_startup_model(self) -> str | None:
        names = {version.spec.name for version in self.registry if version.spec.loaded_at_startup}
        return next(iter(names)) if len(names) == 1 else None

    def _kserve_handler(self, verb: str) -> Callable[[Request, dict[str, str]], Any]:
        async def handler(request: Request, params: dict[str, str]) -> AnyResponse:
            model = self.registry.resolve(params["model_name"])
            return await self._infer(request, model, verb, "", explicit_version=False)

        return handler

    # -- one inference: decode, the core call, encode -----------------------------------------------

    async def _infer(
        self,
        request: Request,
        model: ModelVersion,
        method: str,
        url_path: str,
        explicit_version: bool,
        inputs: list[Input] | None = None,
    ) -> AnyResponse:
        if inputs is None:
            inputs = ready_inputs(request)
            if inputs is None:
                inputs = await read_inputs(request)
        job = Job(http.new_request_id(), request.raw_headers, inputs, method, url_path=url_path, loop=model.loop)
        outcome = await model.infer(job, explicit_version)
        if isinstance(outcome, ResultStream):
            first = outcome.first
            headers = _headers(job.request_id, first)
            headers["X-Accel-Buffering"] = "no"
            return StreamingResponse(BodyChunks(outcome), first.status, headers, first.reason or None)
        return Response(
            outcome.status,
            _header_block(job.request_id, outcome),
            outcome.body,
            outcome.reason or None,
            close=outcome.status >= 400,
        )

    def _model_description(self, model: ModelVersion) -> dict[str, Any]:
        document = self._api_description()
        paths = {p: v for p, v in document.get("paths", {}).items() if p.startswith(_MODEL_PATHS)}
        info = openapi_info(f"RESTful API for: {model.spec.name}", MODEL_API_VERSION)  # TorchServe's getModelApi
        return {**document, "info": info, "paths": paths}


def _header_block(request_id: str, result: InferenceResult) -> HeaderBlock | MutableMapping[str, str]:
    """A whole answer's headers, written out once (:mod:`.torchserve_http`) unless a handler header replaces one of
    ours: then as the map of :func:`_headers`."""
    if not result.headers:
        return http.header_block(request_id, result.content_type)
    return http.header_block_with(request_id, result.headers, result.content_type) or _headers(request_id, result)


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
