"""The Open Inference Protocol's repository extension and Triton's model configuration and statistics routes:
``/v2/repository/index``, ``/v2/repository/models/{m}/load`` and ``/unload`` (KServe's and Triton's), and
``GET /v2/models/{m}[/versions/{v}]/config`` and ``/stats`` (Triton's, which ``perf_analyzer`` reads).

Loading and unloading change the served models, so they answer 405 unless ``enable_model_api`` is on (as
TorchServe's register and unregister do); a KServe ``ModelServer`` turns it on, as KServe serves them always.
``load`` of a registered model starts its workers (at least one) and waits for them; of an unknown one, registers
the model store's entry of that name (``m``, ``m.mar``, ``m.tar.gz``, ``m.model``). ``unload`` unregisters every
version, as KServe's repository deletes the model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..api_docs import Reply
from ..archive import open_artifact
from ..errors import MethodNotAllowed, ServeError
from ..http_messages import Request, Response
from ..model_version import ModelVersion
from ..registry import ModelHost, ModelRegistry, wait_started
from ..router import Route
from . import kserve_http as http
from .kserve_v2 import KServeV2, versioned

GET = frozenset({"GET"})
POST = frozenset({"POST"})
GET_POST = frozenset({"GET", "POST"})
_TAGS = ("open-inference-protocol",)
STORE_SUFFIXES = ("", ".mar", ".tar.gz", ".model")
TRITON_TYPES = {"BYTES": "TYPE_STRING"}


class KServeV2Repository(http.KServeDialect):
    def __init__(self, registry: ModelRegistry, v2: KServeV2, host: ModelHost | None = None) -> None:
        super().__init__(registry)
        self._v2 = v2
        self._host = host

    def routes(self) -> Iterable[Route]:
        yield Route(
            GET_POST,
            "/v2/repository/index",
            self.index,
            summary="Every model version and its state.",
            responses={200: Reply("The repository index", "RepositoryIndex")},
            operation_id="oipRepositoryIndex",
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
        )
        for action in ("load", "unload"):
            yield Route(
                POST,
                f"/v2/repository/models/{{model_name}}/{action}",
                getattr(self, action),
                summary=f"{action.title()} a model (needs enable_model_api).",
                operation_id=f"oipRepository{action.title()}",
                tags=_TAGS,
                error_schema=http.ERROR_SCHEMA,
                responses={
                    200: Reply("Done", "RepositoryAction"),
                    404: "Unknown model",
                    405: "Model API disabled",
                    503: "Failed to load",
                },
                auth="management",  # with token authorization on, changing the models needs the management key
            )
        for suffix, handler, what, schema in (
            ("/config", self.config, "Triton model configuration", "TritonConfig"),
            ("/stats", self.stats, "Triton inference statistics", "TritonStats"),
        ):
            plain, with_version = versioned(suffix)
            answers = {200: Reply(what, schema), 404: "Unknown model or version"}
            yield Route(
                GET,
                plain,
                handler,
                summary=f"{what}.",
                operation_id=f"triton{suffix[1:].title()}",
                tags=_TAGS,
                error_schema=http.ERROR_SCHEMA,
                responses=answers,
            )
            yield Route(
                GET,
                with_version,
                handler,
                summary=f"{what}, one version.",
                operation_id=f"tritonVersion{suffix[1:].title()}",
                tags=_TAGS,
                error_schema=http.ERROR_SCHEMA,
                responses=answers,
            )
        yield Route(
            GET,
            "/v2/models/stats",
            self.stats,
            summary="Triton inference statistics of every model.",
            operation_id="tritonAllStats",
            responses={200: Reply("Triton inference statistics", "TritonStats")},
            tags=_TAGS,
            error_schema=http.ERROR_SCHEMA,
        )

    # -- the repository ------------------------------------------------------------------------------

    async def index(self, request: Request, params: dict[str, str]) -> Response:
        entries = [
            {"name": version.spec.name, "version": version.spec.version, "state": _state(version)}
            for name in self.registry.registration_order()
            for version in self.registry.versions(name)
        ]
        return http.json_response(entries)

    def _model_api(self) -> ModelHost:
        if self._host is None or not self._host.config.enable_model_api:
            raise MethodNotAllowed()
        return self._host

    async def load(self, request: Request, params: dict[str, str]) -> Response:
        host = self._model_api()
        name = params["model_name"]
        if name in self.registry.registration_order():
            versions = self.registry.versions(name)
        else:
            versions = [await self._register(host, name)]
        started = [
            worker for v in versions for worker in v.scale(max(1, v.spec.min_workers), max(1, v.spec.max_workers))
        ]
        await host.models_changed(wait=True)
        if await wait_started(started) != 200 or not all(v.ready_workers for v in versions):
            raise http.model_not_ready(name)
        return http.json_response({"name": name, "load": True})

    async def _register(self, host: ModelHost, name: str) -> ModelVersion:
        load_unknown = getattr(host, "load_unknown", None)
        if load_unknown is not None:
            return await load_unknown(name)
        store = host.config.model_store
        path = next(
            (
                Path(store) / f"{name}{suffix}"
                for suffix in STORE_SUFFIXES
                if store and (Path(store) / f"{name}{suffix}").exists()
            ),
            None,
        )
        if path is None:
            raise http.model_not_found(name)
        try:
            artifact = await asyncio.to_thread(
                open_artifact, path, name, host.config.properties.get("default_service_handler")
            )
            return host.create_version(artifact, url=path.name)
        except ServeError as err:
            raise http.KServeError(
                f"Model with name {name} is not ready. Error type: {type(err).__name__} error msg: {err.message}", 503
            ) from None

    async def unload(self, request: Request, params: dict[str, str]) -> Response:
        host = self._model_api()
        name = params["model_name"]
        if name not in self.registry.registration_order():
            raise http.model_not_found(name)
        for version in sorted(
            self.registry.versions(name), key=lambda v: v.spec.version == self.registry.default_version(name)
        ):
            self.registry.remove(name, version.spec.version, force=True)
            await version.unload()
        await host.models_changed()
        return http.json_response({"name": name, "unload": True})

    # -- Triton's configuration and statistics ------------------------------------------------------------

    async def config(self, request: Request, params: dict[str, str]) -> Response:
        model = self.find(params["model_name"], params.get("model_version"))
        described = await self._v2.types_of(model)
        spec = model.spec
        body = {
            "name": spec.name,
            "platform": "",
            "backend": "python",
            "max_batch_size": 0,
            "input": [_triton_tensor(entry) for entry in described.get("inputs") or ()],
            "output": [_triton_tensor(entry) for entry in described.get("outputs") or ()],
            "instance_group": [{"name": spec.name, "kind": "KIND_CPU", "count": max(1, len(model.workers))}],
            "version_policy": {"latest": {"num_versions": 1}},
            "parameters": {
                "batchSize": {"string_value": str(spec.batch_size)},
                "maxBatchDelay": {"string_value": str(spec.max_batch_delay_ms)},
            },
        }
        return http.json_response(body)

    async def stats(self, request: Request, params: dict[str, str]) -> Response:
        name = params.get("model_name")
        if name is None:
            models = [v for n in self.registry.registration_order() for v in self.registry.versions(n)]
        else:
            version = params.get("model_version")
            models = [self.find(name, version)] if version else self.registry.versions(self.find(name).spec.name)
        return http.json_response({"model_stats": [_triton_stats(model) for model in models]})


def _state(version: ModelVersion) -> str:
    if version.ready_workers:
        return "READY"
    return "LOADING" if version.workers else "UNAVAILABLE"


def _triton_tensor(entry: dict[str, Any]) -> dict[str, Any]:
    datatype = str(entry.get("datatype", ""))
    return {
        "name": entry.get("name", ""),
        "data_type": TRITON_TYPES.get(datatype, f"TYPE_{datatype}"),
        "dims": [int(d) for d in entry.get("shape") or ()],
    }


def _triton_stats(model: ModelVersion) -> dict[str, Any]:
    """Triton's statistics of one version, from the numbers the metrics always keep (counts, nanoseconds)."""
    summary = model.metrics.summary()
    queue_ns = int(sum(series.sums.queue_us for series in (model.metrics.default, model.metrics.explicit)) * 1000)
    success_ns = int(summary.total_latency_ms * 1e6)
    answered = summary.succeeded

    def duration(count: int, ns: int) -> dict[str, int]:
        return {"count": count, "ns": max(0, ns)}

    return {
        "name": model.spec.name,
        "version": model.spec.version,
        "last_inference": int(time.time() * 1000) if summary.requests else 0,
        "inference_count": answered,
        "execution_count": answered,
        "inference_stats": {
            "success": duration(answered, success_ns),
            "fail": duration(summary.failed, 0),
            "queue": duration(answered, queue_ns),
            "compute_input": duration(answered, 0),
            "compute_infer": duration(answered, success_ns - queue_ns),
            "compute_output": duration(answered, 0),
            "cache_hit": duration(0, 0),
            "cache_miss": duration(0, 0),
        },
        "batch_stats": [],
    }
