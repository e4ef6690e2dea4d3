"""TorchServe 0.12's gRPC management API, ``org.pytorch.serve.grpc.management.ManagementAPIsService``.

Each method is the REST management route of the same name (:class:`.dialects.torchserve_management.
TorchServeManagement`), called with the request's fields as the route's query parameters, so registration,
scaling, describing, listing, the default version and unregistering behave exactly as over REST. The answer's
``msg`` is what TorchServe puts there: the JSON for describe and list, the status text for the others. A failure
is the gRPC status of its HTTP status by TorchServe's table (404 NOT_FOUND, 400 INVALID_ARGUMENT, 409 ABORTED,
5xx INTERNAL, ...) with TorchServe's message and, after a newline, the Java exception TorchServe names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc

from workers import grpc_stubs

from .auth import MANAGEMENT, InvalidKey, TokenAuthorization
from .dialects.torchserve_management import TorchServeManagement
from .errors import BadRequest, ServeError
from .grpc_server import ServiceTable, metadata_value
from .grpc_torchserve import torchserve_code
from .http_messages import Response

logger = logging.getLogger("modelserver")

SERVICE = "org.pytorch.serve.grpc.management.ManagementAPIsService"
_PACKAGES = {
    "ModelNotFoundException": "org.pytorch.serve.archive.model",
    "ModelVersionNotFoundException": "org.pytorch.serve.archive.model",
    "InvalidModelException": "org.pytorch.serve.archive.model",
    "ModelException": "org.pytorch.serve.archive.model",
    "DownloadArchiveException": "org.pytorch.serve.archive",
    "InvalidSnapshotException": "org.pytorch.serve.snapshot",
}


def java_name(error: ServeError) -> str:
    """The canonical Java name of the exception TorchServe raises for ``error``."""
    name = error.type_name
    return f"{_PACKAGES.get(name, 'org.pytorch.serve.http')}.{name}"


class _Call:
    """What the REST routes read of a request, for a gRPC call: its fields as the query, no body."""

    method = "POST"
    content_type = ""

    def __init__(self, query: Mapping[str, Any], headers: dict[str, str]) -> None:
        self.query = {
            key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in query.items()
        }
        self._headers = headers

    def header_dict(self) -> dict[str, str]:
        return dict(self._headers)


class TorchServeManagementService:
    """The servicer of :data:`SERVICE`."""

    def __init__(self, management: TorchServeManagement, auth: TokenAuthorization | None = None) -> None:
        self.management = management
        self.auth = auth
        self.messages = grpc_stubs.load("ts_management")

    def handler(self) -> ServiceTable:
        return ServiceTable(SERVICE, self.messages.services[SERVICE], self)

    async def _answer(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        route: Callable[[Any, dict[str, str]], Awaitable[Response]],
        params: dict[str, str],
        query: Mapping[str, Any],
        text: bool,
    ) -> Any:
        """Run the REST route; ``text``: the answer is the status text of its JSON, else the JSON itself."""
        if self.auth is not None and not self.auth.allows((MANAGEMENT,), metadata_value(context, "authorization")):
            logger.info("gRPC %s: UNAUTHENTICATED (no valid management key)", method)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, InvalidKey().message)
        headers = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        try:
            response = await route(_Call(query, headers), params)
        except ServeError as err:
            code = torchserve_code(err.status)
            logger.info("gRPC %s: %s %s", method, code.name, err.message)
            await context.abort(code, f"{err.message}\n{java_name(err)}")
        body = bytes(response.body).decode("utf-8")
        msg = json.loads(body).get("status", "") if text else body.rstrip("\n")
        return self.messages.ManagementResponse(msg=msg)

    # -- methods -------------------------------------------------------------------------------------

    async def describe_model(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        params = {"model_name": request.model_name}
        if request.model_version:
            params["model_version"] = request.model_version
        query = {"customized": True} if request.customized else {}
        return await self._answer("DescribeModel", context, self.management.describe, params, query, text=False)

    async def list_models(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        query: dict[str, Any] = {"next_page_token": request.next_page_token}
        if request.limit:
            query["limit"] = request.limit
        return await self._answer("ListModels", context, self.management.list_models, {}, query, text=False)

    async def register_model(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        query: dict[str, Any] = {"synchronous": request.synchronous}
        for field in ("url", "model_name", "handler", "runtime"):
            if getattr(request, field):
                query[field] = getattr(request, field)
        for field in ("batch_size", "initial_workers", "max_batch_delay", "response_timeout"):
            if getattr(request, field) > 0:  # 0 is "not given" in proto3, as TorchServe reads it
                query[field] = getattr(request, field)
        return await self._answer("RegisterModel", context, self.management.register, {}, query, text=True)

    async def scale_worker(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        low = request.min_worker if request.min_worker > 0 else 1
        high = request.max_worker if request.max_worker > 0 else low
        query: dict[str, Any] = {"min_worker": low, "max_worker": high, "synchronous": request.synchronous}
        params = {"model_name": request.model_name}
        if request.model_version:
            params["model_version"] = request.model_version
        return await self._answer("ScaleWorker", context, self.management.scale, params, query, text=True)

    async def set_default(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        params = {"model_name": request.model_name, "model_version": request.model_version}
        return await self._answer("SetDefault", context, self.management.set_default, params, {}, text=True)

    async def unregister_model(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if not request.model_name:
            error = BadRequest("Parameter url is required.")  # TorchServe's words for a missing model name
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{error.message}\n{java_name(error)}")
        params = {"model_name": request.model_name}
        if request.model_version:
            params["model_version"] = request.model_version
        return await self._answer("UnregisterModel", context, self.management.unregister, params, {}, text=True)
