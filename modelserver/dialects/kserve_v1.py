"""KServe's V1 REST API: ``GET /``, ``GET /v1/models``, ``GET /v1/models/{m}``, ``POST /v1/models/{m}:predict`` and
``:explain`` (KServe 0.21's behaviour; /work/shared/specs §2).

The body goes to the model as it came, with its content type: the model's runtime decodes it by KServe's rule
(JSON for ``application/json`` and its kin or no content type, raw bytes for any other). ``GET /v1/models/{m}`` and
``:predict``/``:explain`` are shared with TorchServe's routes of the same path: a model of protocol ``kserve`` is
served here, others by the TorchServe dialect (:mod:`modelserver.listener`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..api_docs import Reply, handler_input, handler_output
from ..http_messages import AnyResponse, Request, Response, StreamingResponse
from ..registry import ModelRegistry
from ..router import Route
from ..types import EXPLAIN, PREDICT, BodyChunks, Job, ResultStream
from . import kserve_http as http
from .torchserve_http import new_request_id

GET = frozenset({"GET"})
POST = frozenset({"POST"})
_TAGS = ("kserve-v1",)


class KServeV1(http.KServeDialect):
    def __init__(self, registry: ModelRegistry, serve_root: bool = True) -> None:
        super().__init__(registry)
        self.serve_root = serve_root
        """``GET /`` answers KServe's liveness; a server whose default protocol is TorchServe's leaves ``/`` to
        TorchServe (405 for GET, the API description for OPTIONS)."""

    def routes(self) -> Iterable[Route]:
        if self.serve_root:
            yield Route(
                GET,
                "/",
                self.alive,
                summary="KServe liveness.",
                responses={200: Reply("Alive", "KServeAlive")},
                operation_id="kserveAlive",
                tags=_TAGS,
                error_schema=http.ERROR_SCHEMA,
            )
        yield Route(
            GET,
            "/v1/models",
            self.list_models,
            summary="Models, in registration order.",
            responses={200: Reply("The model names", "ModelNames")},
            operation_id="kserveV1Models",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
        )
        yield Route(
            GET,
            "/v1/models/{model_name}",
            self.model_ready,
            summary="Whether the model is ready.",
            operation_id="kserveV1ModelReady",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
            responses={200: Reply("Ready", "ModelReadiness"), 404: "Unknown model", 503: "Not ready"},
            protocol="kserve",
            model_param="model_name",
        )
        for verb in (PREDICT, EXPLAIN):
            yield Route(
                POST,
                f"/v1/models/{{model_name}}:{verb}",
                self._inference(verb),
                summary=f"KServe v1 {verb}.",
                operation_id=f"kserveV1{verb.title()}",
                tags=_TAGS,
                error_schema=http.ERROR_SCHEMA,
                request_body=handler_input('The model\'s input, usually JSON ({"instances": [...]}).', required=True),
                responses={
                    200: handler_output('The model\'s answer, usually JSON ({"predictions": [...]}).'),
                    400: "Invalid input",
                    404: "Unknown model",
                    500: "The model failed",
                    503: "Not ready",
                },
                protocol="kserve",
                model_param="model_name",
            )

    async def alive(self, request: Request, params: dict[str, str]) -> Response:
        return http.json_response({"status": "alive"})

    async def list_models(self, request: Request, params: dict[str, str]) -> Response:
        return http.json_response({"models": self.registry.registration_order()})

    async def model_ready(self, request: Request, params: dict[str, str]) -> Response:
        name = params["model_name"]
        await self.ready(name)
        return http.json_response({"name": name, "ready": True})

    def _inference(self, verb: str) -> Callable[[Request, dict[str, str]], Any]:
        async def handler(request: Request, params: dict[str, str]) -> AnyResponse:
            model = await self.ready(params["model_name"])
            inputs = [("body", request.content_type, await request.read_body())]
            headers = request.header_dict()
            request_id = request.headers.get("x-request-id") or new_request_id()
            job = Job(request_id, headers, inputs, verb, loop=model.loop)
            outcome = await model.infer(job)
            if type(outcome) is ResultStream:  # an AsyncIterator answer: chunked, no content type (as KServe)
                return StreamingResponse(BodyChunks(outcome), outcome.first.status, outcome.first.headers or None)
            headers_out = dict(outcome.headers)
            if outcome.content_type and not (headers_out and _names_content_type(headers_out)):
                headers_out["Content-Type"] = outcome.content_type  # the model's own content type wins (KServe's)
            return Response(outcome.status, headers_out, outcome.body)

        return handler


def _names_content_type(headers: dict[str, str]) -> bool:
    """Whether the model's response headers set a content type (any spelling of the name)."""
    return any(name.lower() == "content-type" for name in headers)
