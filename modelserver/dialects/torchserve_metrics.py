"""TorchServe's metrics port. In TorchServe's default ``metrics_mode=log`` nothing is registered
with Prometheus, so ``/metrics`` answers 200 with an empty body; the Prometheus families arrive
with the metrics issue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from ..errors import ServeError
from ..router import ANY, Route
from . import torchserve_http as http

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class TorchServeMetrics:
    def __init__(self, api_description: Callable[[], dict[str, Any]]) -> None:
        self._api_description = api_description

    def routes(self) -> Iterable[Route]:
        yield Route(
            frozenset({"OPTIONS"}),
            "/",
            self.api_description,
            summary="Get the API description.",
            operation_id="apiDescription",
            tags=("metrics",),
        )
        yield Route(
            frozenset({"GET"}),
            "/api-description",
            self.api_description,
            summary="Get the API description.",
            operation_id="apiDescriptionGet",
            tags=("metrics",),
        )
        yield Route(
            ANY,
            "/metrics",
            self.metrics,
            summary="Get the metrics in Prometheus format.",
            operation_id="metrics",
            tags=("metrics",),
        )

    def error_response(self, error: ServeError, request: web.BaseRequest) -> web.StreamResponse:
        return http.error_response(error, request)

    async def api_description(self, request: web.BaseRequest, params: dict[str, str]) -> web.StreamResponse:
        return http.json_response(self._api_description())

    async def metrics(self, request: web.BaseRequest, params: dict[str, str]) -> web.StreamResponse:
        headers = http.response_headers(http.new_request_id())
        headers["Content-Type"] = PROMETHEUS_CONTENT_TYPE
        return web.Response(body=b"", headers=headers)
