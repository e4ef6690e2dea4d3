"""TorchServe's management API (spec section 4): register, scale, describe, list, unregister, set-default.

Every call answers with TorchServe's status codes and messages; success bodies are ``{"status": "..."}``, errors
``{"code", "type", "message"}``. Registering and unregistering answer 405 unless ``enable_model_api=true`` (or
``--enable-model-api``). ``POST /models`` takes its parameters from the query string, or from a JSON body when the
request says ``Content-Type: application/json``. Where a registration's ``url`` may point, and how a download is
guarded, is :mod:`modelserver.downloads`. Every call that changes the models writes a config snapshot, and with
several frontend processes answers once every frontend has the change (:meth:`ModelServer.models_changed`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from .. import TORCHSERVE_VERSION
from ..api_docs import Param, Reply
from ..downloads import DownloadPolicy
from ..errors import (
    CleanupTimedOut,
    InvalidRuntime,
    MaxWorkersBelowMin,
    MethodNotAllowed,
    NegativeWorkers,
    UrlRequired,
    WorkersFailed,
)
from ..http_messages import Request, Response
from ..model_version import ModelVersion
from ..openapi import openapi_info
from ..registration import version_from_url
from ..registry import ModelHost, ModelRegistry, wait_started
from ..router import Route
from ..worker_connection import WorkerConnection
from . import torchserve_http as http
from .management_args import (
    REGISTER_BODY,
    REGISTER_PARAMS,
    RUNTIMES,
    SYNCHRONOUS,
    WORKER_TIMEOUT,
    RegisterArgs,
    bool_param,
    int_param,
    register_source,
)
from .management_describe import add_other_frontends, customized_metadata, describe_version

logger = logging.getLogger("modelserver.management")

_GET = frozenset({"GET"})
_PUT = frozenset({"PUT"})
_DELETE = frozenset({"DELETE"})
_OPTIONS = frozenset({"OPTIONS"})
UNREGISTER_TIMEOUT_S = 120
"""TorchServe's default ``unregister_model_timeout``."""
_UNLOADING: set[asyncio.Future[None]] = set()
_TAGS = ("management",)
_STATUS = "Status"


def _status(message: str, status: int = 200) -> Response:
    return http.json_response({"status": message}, status)


# -- the dialect ---------------------------------------------------------------------------------


class TorchServeManagement(http.TorchServeDialect):
    tag: ClassVar[str] = "management"

    def __init__(
        self,
        registry: ModelRegistry,
        api_description: Callable[[], dict[str, Any]],
        host: ModelHost | None = None,
    ) -> None:
        super().__init__(api_description)
        self.registry = registry
        self._host = host
        properties = host.config.properties if host is not None else {}
        self._policy = DownloadPolicy.from_properties(properties)

    def routes(self) -> Iterable[Route]:
        yield from self.description_routes()
        yield from self._collection_routes()
        yield from self._model_routes("/models/{model_name}", "Model")
        yield from self._model_routes("/models/{model_name}/{model_version}", "Version")
        yield Route(
            _PUT,
            "/models/{model_name}/{model_version}/set-default",
            self.set_default,
            summary="Set default version of a model",
            operation_id="setDefault",
            tags=_TAGS,
            param_docs={
                "model_name": "Name of model whose default version needs to be updated.",
                "model_version": "Version of model to be set as default version for the model",
            },
            responses={
                200: Reply("Default version successfully updated for model", _STATUS),
                404: "Model not found or Model version not found",
                500: "Internal Server Error",
            },
        )
        yield Route(
            _GET,
            "/v1/models/{model_name}",
            self.kserve_ready,
            summary="KServe v1 readiness: whether the model has workers.",
            operation_id="kserveV1ModelReady",
            tags=_TAGS,
            responses={200: Reply("Readiness", "ModelReadiness"), 404: "Model not found"},
            protocol="torchserve",
            model_param="model_name",
        )

    def _collection_routes(self) -> Iterable[Route]:
        yield Route(
            _GET,
            "/models",
            self.list_models,
            summary="List registered models in TorchServe.",
            operation_id="listModels",
            tags=_TAGS,
            parameters=(
                Param("limit", "Models per page (1 to 100); default 100.", type="integer"),
                Param("next_page_token", "Where the page starts: the nextPageToken of the previous page."),
            ),
            responses={200: Reply("OK", "ModelList"), 500: "Internal Server Error"},
        )
        yield Route(
            frozenset({"POST"}),
            "/models",
            self.register,
            summary="Register a new model in TorchServe (needs enable_model_api).",
            operation_id="registerModel",
            tags=_TAGS,
            parameters=REGISTER_PARAMS,
            request_body=REGISTER_BODY,
            responses={
                200: Reply("Model registered", _STATUS),
                202: Reply("Accepted", _STATUS),
                400: "Bad request",
                404: "Model not found",
                405: "Model API disabled",
                409: "Model already registered",
                500: "Internal Server Error",
                507: "Out of resources",
            },
        )

    def _model_routes(self, pattern: str, name: str) -> Iterable[Route]:
        versioned = name == "Version"
        prefix = "version_" if versioned else ""
        found = {404: "Model not found or Model version not found", 500: "Internal Server Error"}
        which = "the specified version" if versioned else "the default version"
        yield Route(
            _GET,
            pattern,
            self.describe,
            summary=f"Provides detailed information about {which} of a model"
            + ('; "all" as the version: every version.' if versioned else "."),
            operation_id=f"{prefix}describeModel",
            tags=_TAGS,
            parameters=(Param("customized", "true: add the handler's describe_handle output.", type="boolean"),),
            responses={200: Reply("OK", "ModelDescriptions"), 503: "No worker for a customized describe", **found},
        )
        yield Route(
            _PUT,
            pattern,
            self.scale,
            summary=f"Configure number of workers for {which} of a model.",
            operation_id=f"{prefix}setAutoScale",
            tags=_TAGS,
            parameters=(
                Param("min_worker", "The fewest workers to keep; default 1.", type="integer"),
                Param("max_worker", "The most workers to allow; default min_worker.", type="integer"),
                Param("number_gpu", "GPU workers to create (accepted and ignored).", type="integer"),
                SYNCHRONOUS,
                WORKER_TIMEOUT,
                *(() if versioned else (Param("model_version", "The version to scale (instead of the default)."),)),
            ),
            responses={
                200: Reply("Model workers updated", _STATUS),
                202: Reply("Accepted", _STATUS),
                206: Reply("Partial Success", _STATUS),
                400: "Bad request",
                507: "Out of resources",
                **found,
            },
        )
        yield Route(
            _DELETE,
            pattern,
            self.unregister,
            summary=f"Unregister {which} of a model from TorchServe (needs enable_model_api).",
            operation_id=f"{prefix}unregisterModel",
            tags=_TAGS,
            parameters=(SYNCHRONOUS, WORKER_TIMEOUT),
            responses={
                200: Reply("Model unregistered", _STATUS),
                403: "Cannot remove the default version while other versions exist",
                405: "Model API disabled",
                408: "Request Timeout Error",
                **found,
            },
        )
        yield Route(
            _OPTIONS,
            pattern,
            self.model_api,
            summary="The model's management API description.",
            operation_id=f"{prefix}modelApiDescription",
            tags=_TAGS,
            responses={200: Reply("A openapi 3.0.1 descriptor", "ApiDescription"), **found},
        )

    @property
    def host(self) -> ModelHost:
        if self._host is None:
            raise MethodNotAllowed()
        return self._host

    def _require_model_api(self) -> ModelHost:
        host = self.host
        if not host.config.enable_model_api:
            raise MethodNotAllowed()
        return host

    # -- reading -----------------------------------------------------------------------------

    async def model_api(self, request: Request, params: dict[str, str]) -> Response:
        model = self.registry.resolve(params["model_name"], params.get("model_version"))
        document = self._api_description()
        paths = {p: v for p, v in document.get("paths", {}).items() if p.startswith("/models/{model_name}")}
        info = openapi_info(f"RESTful Management API for: {model.spec.name}", TORCHSERVE_VERSION)  # as TorchServe's
        return http.json_response({**document, "info": info, "paths": paths})

    async def list_models(self, request: Request, params: dict[str, str]) -> Response:
        """TorchServe's ``getModelList``: ``nextPageToken`` whenever the page ends at or before the last name."""
        limit = int_param(request.query.get("limit"), 100)
        limit = 100 if limit < 0 or limit > 100 else limit
        start = max(0, int_param(request.query.get("next_page_token"), 0))
        names = [n for n in self.registry.names() if not _is_function_node(self.registry.resolve(n))]
        last = start + limit
        body: dict[str, Any] = {}
        if last <= len(names):
            body["nextPageToken"] = str(last)
        page = names[start : min(last, len(names))]
        body["models"] = [{"modelName": n, "modelUrl": self.registry.resolve(n).spec.url} for n in page]
        return http.json_response(body)

    async def describe(self, request: Request, params: dict[str, str]) -> Response:
        name, version = params["model_name"], params.get("model_version")
        if version == "all":
            bodies = [describe_version(v) for v in self.registry.versions_in_order(name)]
        else:
            model = self.registry.resolve(name, version)
            bodies = [describe_version(model)]
            if bool_param(request.query.get("customized"), False):
                metadata = await customized_metadata(request, model)
                if metadata is not None:
                    bodies[0]["customizedMetadata"] = metadata
        if self.registry.peers is not None:
            await add_other_frontends(self.registry.peers, bodies)
        return http.json_response(bodies)

    async def kserve_ready(self, request: Request, params: dict[str, str]) -> Response:
        name = params["model_name"].split(":")[0]
        model = self.registry.resolve(name)
        return http.json_response({"name": name, "ready": bool(model.workers)})

    # -- changing ----------------------------------------------------------------------------

    async def register(self, request: Request, params: dict[str, str]) -> Response:
        host = self._require_model_api()
        args = RegisterArgs.parse(await register_source(request), _configured_workers(host))
        if args.url is None:
            raise UrlRequired()
        if args.runtime is not None and args.runtime not in RUNTIMES:
            raise InvalidRuntime(args.runtime)
        version = await self._create(host, args)
        spec = version.spec
        if spec.min_workers == 0:
            await host.models_changed()
            return _status(
                f'Model "{spec.name}" Version: {spec.version} registered with 0 initial workers. '
                "Use scale workers API to add workers for the model."
            )
        started = version.scale(spec.min_workers, spec.max_workers)
        await host.models_changed(wait=args.synchronous)
        if not args.synchronous:
            return _status("Processing worker updates...", 202)
        return await self._finish_register(host, version, started)

    async def _create(self, host: ModelHost, args: RegisterArgs) -> ModelVersion:
        """Fetch or find the archive, open it and add the version; a download is deleted if anything fails."""
        version = await version_from_url(
            host,
            args.url or "",
            self._policy,
            name=args.model_name,
            api=args.api_settings(),
            initial_workers=args.initial_workers,
            handler=args.handler,
            runtime=args.runtime,
        )
        logger.info("Registered model %s version %s from %s", version.spec.name, version.spec.version, args.url)
        return version

    async def _finish_register(
        self, host: ModelHost, version: ModelVersion, started: list[WorkerConnection]
    ) -> Response:
        spec = version.spec
        status = await wait_started(started)
        if status != 200:
            await self._drop(version)
            await host.models_changed()
            raise WorkersFailed(spec.name, spec.version, status)
        return _status(
            f'Model "{spec.name}" Version: {spec.version} registered with {spec.min_workers} initial workers'
        )

    async def _drop(self, version: ModelVersion) -> None:
        """Undo a registration whose workers failed, unless someone unregistered it meanwhile."""
        spec = version.spec
        if self.registry.holds(version):
            self.registry.remove(spec.name, spec.version, force=True)
            await version.unload()

    async def scale(self, request: Request, params: dict[str, str]) -> Response:
        query = request.query
        name = params["model_name"]
        version = params.get("model_version") or query.get("model_version")
        low = int_param(query.get("min_worker"), 1)
        high = int_param(query.get("max_worker"), low)
        if high < low:
            raise MaxWorkersBelowMin()
        model = self.registry.resolve(name, version)
        if low < 0:
            raise NegativeWorkers(low)
        started = model.set_workers(low, high)
        synchronous = bool_param(query.get("synchronous"), False)
        await self.host.models_changed(wait=synchronous)
        if not synchronous:
            return _status("Processing worker updates...", 202)
        status = await wait_started(started)
        if status != 200:
            raise WorkersFailed(name, version, status)
        return _status(f"Workers scaled to {low} for model: {name}" + (f", version: {version}" if version else ""))

    async def unregister(self, request: Request, params: dict[str, str]) -> Response:
        host = self._require_model_api()
        name = params["model_name"]
        version = self.registry.remove(name, params.get("model_version"))
        unloading = asyncio.ensure_future(version.unload())  # finishes even when the answer does not wait for it
        _UNLOADING.add(unloading)
        unloading.add_done_callback(_UNLOADING.discard)
        await host.models_changed()
        timeout = max(0, int_param(host.config.properties.get("unregister_model_timeout"), UNREGISTER_TIMEOUT_S))
        done, _ = await asyncio.wait({unloading}, timeout=timeout)
        if not done:
            logger.error(
                "Unregistered %s version %s: workers still stopping after %d s", name, version.spec.version, timeout
            )
            raise CleanupTimedOut(name)
        unloading.result()
        logger.info("Unregistered model %s version %s", name, version.spec.version)
        return _status(f'Model "{name}" unregistered')

    async def set_default(self, request: Request, params: dict[str, str]) -> Response:
        name, version = params["model_name"], params["model_version"]
        self.registry.set_default(name, version)
        await self.host.models_changed()
        return _status(f'Default version successfully updated for model "{name}" to "{version}"')


# -- helpers -------------------------------------------------------------------------------------


def _is_function_node(version: ModelVersion) -> bool:
    """A workflow's function node: TorchServe lists only models with a url."""
    return version.workflow is not None and not version.spec.url


def _configured_workers(host: ModelHost) -> int:
    """``initial_workers`` defaults to the configured ``default_workers_per_model``, 0 when it is not set."""
    return max(0, int_param(host.config.properties.get("default_workers_per_model"), 0))
