"""The Open Inference Protocol (V2) REST API, as KServe 0.21 and Triton serve it: health, server and model metadata,
model readiness, ``infer`` (JSON and the binary tensor extension) and ``explain``, with and without
``/versions/{v}`` (/work/shared/specs §3). The repository and Triton's config/statistics routes are
:mod:`.kserve_v2_repository`.

A request is decoded by :mod:`modelserver.oip_codec` into typed tensors (binary inputs stay views of the body,
never re-encoded) and answered by the model's runtime with output tensors, encoded back as JSON or binary by the
request's ``binary_data`` flags. ``POST /v2/models/{m}/infer`` and ``/explain`` are shared with TorchServe's routes
of the same path: a model of protocol ``torchserve`` gets the raw request there, as TorchServe 0.12 does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from .. import __version__
from ..api_docs import Body, Reply
from ..http_messages import Request, Response
from ..model_version import ModelVersion
from ..oip_codec import OIPError, decode_request, encode_response
from ..router import Route
from ..types import EXPLAIN, PREDICT, Job, ResultStream
from . import kserve_http as http
from .torchserve_http import new_request_id

GET = frozenset({"GET"})
POST = frozenset({"POST"})
_TAGS = ("open-inference-protocol",)
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = [
    "binary_tensor_data",
    "model_repository",
    "model_repository_extension",
    "statistics",
    "model_configuration",
]


def versioned(pattern: str) -> tuple[str, str]:
    """``/v2/models/{model_name}<rest>`` and ``/v2/models/{model_name}/versions/{model_version}<rest>``."""
    return f"/v2/models/{{model_name}}{pattern}", f"/v2/models/{{model_name}}/versions/{{model_version}}{pattern}"


class KServeV2(http.KServeDialect):
    def routes(self) -> Iterable[Route]:
        yield Route(
            GET,
            "/v2",
            self.server_metadata,
            summary="Server metadata.",
            operation_id="oipServerMetadata",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
            responses={200: Reply("Server metadata", "ServerMetadata")},
        )
        yield Route(
            GET,
            "/v2/health/live",
            self.live,
            summary="Server liveness.",
            operation_id="oipLive",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
            responses={200: Reply("Live", "ServerLive")},
        )
        yield Route(
            GET,
            "/v2/health/ready",
            self.server_ready,
            summary="Ready when every model can answer (latest, default and startup versions).",
            operation_id="oipReady",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
            responses={200: Reply("Ready", "ServerReady"), 503: "Not ready"},
        )
        yield Route(
            GET,
            "/v2/models",
            self.list_models,
            summary="Models.",
            operation_id="oipModels",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
            responses={200: Reply("The model names", "ModelNames")},
        )
        found = {200: Reply("Model metadata", "ModelMetadata"), 404: "Unknown model or version"}
        plain, with_version = versioned("")
        yield Route(
            GET,
            plain,
            self.model_metadata,
            summary="Model metadata.",
            operation_id="oipModelMetadata",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
            responses=found,
        )
        yield Route(
            GET,
            with_version,
            self.model_metadata,
            summary="Model version metadata.",
            operation_id="oipModelVersionMetadata",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
            responses=found,
        )
        plain, with_version = versioned("/ready")
        ready = {200: Reply("Ready", "ModelReadiness"), 404: "Unknown model or version", 503: "Not ready"}
        yield Route(
            GET,
            plain,
            self.model_ready,
            summary="Model readiness.",
            operation_id="oipModelReady",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
            responses=ready,
        )
        yield Route(
            GET,
            with_version,
            self.model_ready,
            summary="Model version readiness.",
            operation_id="oipModelVersionReady",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
            responses=ready,
        )
        answers = {
            200: Reply(
                "Outputs: JSON, or a JSON header and binary tensors (Inference-Header-Content-Length)",
                "InferenceResponse",
                (http.JSON, "application/octet-stream"),
            ),
            400: "Invalid request",
            404: "Unknown model",
            500: "The model failed",
            503: "Not ready",
        }
        request = Body("InferenceRequest", (http.JSON, "application/octet-stream"))
        for verb, suffix in ((PREDICT, "/infer"), (EXPLAIN, "/explain")):
            plain, with_version = versioned(suffix)
            handler = self._inference(verb)
            yield Route(
                POST,
                plain,
                handler,
                summary=f"Open Inference Protocol {suffix[1:]}.",
                operation_id=f"oip{suffix[1:].title()}",
                tags=_TAGS,
                error_schema=http.ERROR_SCHEMA,
                request_body=request,
                responses=answers,
                protocol="kserve",
                model_param="model_name",
            )
            yield Route(
                POST,
                with_version,
                handler,
                summary=f"Open Inference Protocol {suffix[1:]}, one version.",
                operation_id=f"oipVersion{suffix[1:].title()}",
                tags=_TAGS,
                error_schema=http.ERROR_SCHEMA,
                request_body=request,
                responses=answers,
            )

    # -- server --------------------------------------------------------------------------------------

    async def server_metadata(self, request: Request, params: dict[str, str]) -> Response:
        return http.json_response({"name": "modelserver", "version": __version__, "extensions": EXTENSIONS})

    async def live(self, request: Request, params: dict[str, str]) -> Response:
        return http.json_response({"live": True})

    async def server_ready(self, request: Request, params: dict[str, str]) -> Response:
        """Ready when every model can answer: :meth:`ModelRegistry.ready` (the OIP's rule, and the startup models')."""
        if await self.registry.server_ready():
            return http.json_response({"ready": True})
        return http.json_response({"error": "Server is not ready."}, 503)

    async def list_models(self, request: Request, params: dict[str, str]) -> Response:
        return http.json_response({"models": self.registry.registration_order()})

    # -- models --------------------------------------------------------------------------------------

    async def model_metadata(self, request: Request, params: dict[str, str]) -> Response:
        name = params["model_name"]
        model = self.find(name, params.get("model_version"))
        versions = [version.spec.version for version in self.registry.versions(name)]
        described = await self.types_of(model)
        body = {"name": name, "versions": versions, "platform": "", **described}
        return http.json_response(body)

    async def types_of(self, model: ModelVersion) -> dict[str, Any]:
        """``{"inputs": [...], "outputs": [...]}`` as the model declares them (KServe's ``get_input_types`` and
        ``get_output_types``), asked of a worker once per version; none for a model that cannot declare them."""
        cached = model.declared_types
        if cached is not None:
            return cached
        described: dict[str, Any] = {"inputs": [], "outputs": []}
        if model.spec.runtime == "kserve" and model.ready:
            job = Job(new_request_id(), {}, [], "metadata", solo=True, loop=model.loop)
            outcome = await model.infer(job, admit=False)
            if isinstance(outcome, ResultStream):
                outcome.close()
                outcome = outcome.first
            if outcome.status < 400:
                described = json.loads(bytes(outcome.body))
                model.declared_types = described
        return described

    async def model_ready(self, request: Request, params: dict[str, str]) -> Response:
        name = params["model_name"]
        await self.ready(name, params.get("model_version"))
        return http.json_response({"name": name, "ready": True})

    def _inference(self, verb: str) -> Callable[[Request, dict[str, str]], Any]:
        async def handler(request: Request, params: dict[str, str]) -> Response:
            version = params.get("model_version")
            model = await self.ready(params["model_name"], version)
            return await self.infer(request, model, verb, bool(version))

        return handler

    async def infer(self, request: Request, model: ModelVersion, verb: str, explicit_version: bool) -> Response:
        body = await request.read_body()
        try:
            decoded = decode_request(body, request.headers.get(HEADER_LENGTH), request.content_type)
        except OIPError as err:
            raise http.KServeError(str(err), 400) from None
        if decoded.binary_inputs:  # KServe's decoder keeps binary_data_size on a binary input: models tell them by it
            binary = set(decoded.binary_inputs)
            for tensor in decoded.inputs:
                if tensor.name in binary:
                    tensor.parameters = {**(tensor.parameters or {}), "binary_data_size": len(tensor.data)}
        outputs = [{"name": o.name, "parameters": o.parameters} for o in decoded.outputs or ()]
        request_id = request.headers.get("x-request-id") or new_request_id()
        job = Job(
            request_id,
            request.header_dict(),
            [],
            verb,
            tensors=decoded.inputs,
            parameters=decoded.parameters or None,
            outputs=outputs or None,
            infer_id=decoded.id,
            loop=model.loop,
        )
        outcome = await model.infer(job, explicit_version)
        if type(outcome) is ResultStream:  # the V2 infer route cannot stream (as KServe)
            await outcome.aclose()
            raise http.KServeError("Streaming responses are not supported by the infer endpoint.", 500)
        if outcome.tensors is None or outcome.status >= 400:  # not a tensor answer: the model's body as it is
            headers = {"Content-Type": outcome.content_type or http.JSON, **outcome.headers}
            return Response(outcome.status, headers, outcome.body)
        spec = model.spec
        try:
            encoded = encode_response(
                spec.name,
                spec.version,
                decoded.id if decoded.id is not None else request_id,
                outcome.parameters or {},
                outcome.tensors,
                decoded.outputs,
                decoded.binary_output_default,
            )
        except OIPError as err:
            raise http.KServeError(str(err), 400) from None
        headers = {**outcome.headers, "Content-Type": encoded.content_type}
        if encoded.header_length is not None:
            headers[HEADER_LENGTH] = str(encoded.header_length)
        parts = encoded.parts
        return Response(200, headers, parts[0] if len(parts) == 1 else b"".join(parts))
