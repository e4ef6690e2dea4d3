"""TorchServe's management API: list and describe models, and the API description.

Registering, scaling and unregistering arrive with the management issue; until then those
calls answer as TorchServe does with the model API disabled (405).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from ..errors import BadRequest, ServeError
from ..registry import ModelRegistry, ModelVersion
from ..router import Route
from ..worker_connection import WorkerState
from . import torchserve_http as http

_GET = frozenset({"GET"})


def _int_param(request: web.BaseRequest, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        return default


class TorchServeManagement:
    def __init__(self, registry: ModelRegistry, api_description: Callable[[], dict[str, Any]]) -> None:
        self.registry = registry
        self._api_description = api_description

    def routes(self) -> Iterable[Route]:
        tags = ("management",)
        yield Route(
            frozenset({"OPTIONS"}),
            "/",
            self.api_description,
            summary="Get the API description.",
            operation_id="apiDescription",
            tags=tags,
        )
        yield Route(
            _GET,
            "/api-description",
            self.api_description,
            summary="Get the API description.",
            operation_id="apiDescriptionGet",
            tags=tags,
        )
        yield Route(
            _GET,
            "/models",
            self.list_models,
            summary="List registered models (default versions).",
            operation_id="listModels",
            tags=tags,
            responses={200: "Models"},
        )
        describe = {
            "summary": "Describe a model's versions and workers.",
            "tags": tags,
            "responses": {200: "Describe objects", 404: "Model or version not found"},
        }
        yield Route(_GET, "/models/{model_name}", self.describe, operation_id="describeModel", **describe)
        yield Route(
            _GET, "/models/{model_name}/{model_version}", self.describe, operation_id="describeVersion", **describe
        )

    def error_response(self, error: ServeError, request: web.BaseRequest) -> web.StreamResponse:
        return http.error_response(error, request)

    async def api_description(self, request: web.BaseRequest, params: dict[str, str]) -> web.StreamResponse:
        return http.json_response(self._api_description())

    async def list_models(self, request: web.BaseRequest, params: dict[str, str]) -> web.StreamResponse:
        limit = _int_param(request, "limit", 100)
        limit = 100 if limit < 0 or limit > 100 else limit
        start = max(0, _int_param(request, "next_page_token", 0))
        names = self.registry.names()
        page = names[start : start + limit]
        body: dict[str, Any] = {}
        if start + limit < len(names):
            body["nextPageToken"] = str(start + limit)
        body["models"] = [{"modelName": n, "modelUrl": self.registry.resolve(n).spec.url} for n in page]
        return http.json_response(body)

    async def describe(self, request: web.BaseRequest, params: dict[str, str]) -> web.StreamResponse:
        name, version = params["model_name"], params.get("model_version")
        if version == "all":
            self.registry.resolve(name)
            versions = [v for v in self.registry if v.spec.name == name]
        else:
            versions = [self.registry.resolve(name, version)]
        if request.query.get("customized", "false").lower() == "true":
            raise BadRequest("customized=true describe is not supported yet")
        return http.json_response([_describe(v) for v in versions])


def _describe(model: ModelVersion) -> dict[str, Any]:
    spec = model.spec
    return {
        "modelName": spec.name,
        "modelVersion": spec.version,
        "modelUrl": spec.url,
        "runtime": "python",
        "minWorkers": spec.min_workers,
        "maxWorkers": spec.max_workers,
        "batchSize": spec.batch_size,
        "maxBatchDelay": spec.max_batch_delay_ms,
        "responseTimeout": spec.response_timeout,
        "startupTimeout": spec.startup_timeout,
        "maxRetryTimeoutInSec": spec.max_retry_timeout,
        "clientTimeoutInMills": spec.client_timeout_ms,
        "parallelType": "",
        "parallelLevel": 0,
        "deviceType": "gpu" if any(w.gpu_id is not None for w in model.workers) else "cpu",
        "continuousBatching": False,
        "useJobTicket": False,
        "useVenv": False,
        "stateful": False,
        "sequenceMaxIdleMSec": 0,
        "sequenceTimeoutMSec": 0,
        "maxNumSequence": 0,
        "maxSequenceJobQueueSize": 0,
        "loadedAtStartup": spec.loaded_at_startup,
        "workers": [
            {
                "id": str(w.worker_id),
                "startTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(w.start_time))
                + f".{int(w.start_time * 1000) % 1000:03d}Z",
                "status": "READY" if w.state is WorkerState.READY else "UNLOADING",
                "memoryUsage": 0,
                "pid": w.pid if w.pid is not None else -1,
                "gpu": w.gpu_id is not None,
                "gpuUsage": "N/A",
            }
            for w in model.workers
        ],
        "jobQueueStatus": {"remainingCapacity": model.queue.remaining_capacity, "pendingRequests": model.queue.pending},
    }
