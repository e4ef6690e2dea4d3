"""What KServe's V1 and V2 (Open Inference Protocol) REST APIs share: compact JSON, ``{"error": ...}`` bodies with
KServe's status codes and messages, its model lookup (no version: the highest one) and its readiness rule.

KServe's server is FastAPI: a path it does not know answers 404 ``{"detail": "Not Found"}``, a wrong method 405
``{"detail": "Method Not Allowed"}``; every other failure ``{"error": "<message>"}``.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import MethodNotAllowed, ModelNotFound, ModelVersionNotFound, ResourceNotFound, ServeError
from ..http_messages import Request, Response
from ..model_version import ModelVersion
from ..registry import ModelRegistry

JSON = "application/json"
ERROR_SCHEMA = "KServeError"
"""The component schema of KServe's error bodies, for the OpenAPI document."""


class KServeError(ServeError):
    """A failure in KServe's words; ``status`` as KServe answers it."""

    type_name = "KServeError"


def model_not_found(name: str) -> KServeError:
    return KServeError(f"Model with name {name} does not exist.", 404)


def model_not_ready(name: str) -> KServeError:
    return KServeError(f"Model with name {name} is not ready.", 503)


def json_body(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"Content-Type": JSON, **(headers or {})}, json_body(value))


def error_response(error: ServeError, request: Request | None = None) -> Response:
    if isinstance(error, ResourceNotFound):
        return json_response({"detail": "Not Found"}, 404)
    if isinstance(error, MethodNotAllowed):
        return json_response({"detail": "Method Not Allowed"}, 405)
    return json_response({"error": error.message}, error.status)


class KServeDialect:
    """The model lookup and error shape of KServe's APIs, over the model registry."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def error_response(self, error: ServeError, request: Request) -> Response:
        return error_response(error, request)

    def find(self, name: str, version: str | None = None) -> ModelVersion:
        """The named version, or the highest one; KServe's 404 when the model (or that version) is unknown."""
        try:
            return self.registry.latest(name, version)
        except (ModelNotFound, ModelVersionNotFound):
            raise model_not_found(name) from None

    async def ready(self, name: str, version: str | None = None) -> ModelVersion:
        """The model version if it can serve now (a worker has loaded it and the model says it is healthy), else
        KServe's 503."""
        model = self.find(name, version)
        if not await is_ready(model):
            raise model_not_ready(name)
        return model


async def is_ready(model: ModelVersion) -> bool:
    """A worker has loaded ``model``, and the model, when it answers for itself (:attr:`ModelVersion.health`), says
    it is ready."""
    health = model.health
    return model.ready and (health is None or await health())
