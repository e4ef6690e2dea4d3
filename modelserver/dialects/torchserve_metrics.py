"""TorchServe's metrics port: ``/metrics`` (any method) in the Prometheus text format.

What is on it depends on ``metrics_mode`` (:mod:`modelserver.metrics`): nothing in TorchServe's default ``log`` mode
(200 with an empty body), the three ``ts_*`` counters in ``legacy`` mode, every family in ``prometheus`` mode.
Repeated ``name[]`` query parameters keep only the samples with those names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from ..api_docs import Param, Reply
from ..http_messages import Request, Response
from ..metrics import CONTENT_TYPE, ServerMetrics
from ..router import ANY, Route
from . import torchserve_http as http

PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE


class TorchServeMetrics(http.TorchServeDialect):
    tag: ClassVar[str] = "metrics"

    def __init__(self, api_description: Callable[[], dict[str, Any]], metrics: ServerMetrics | None = None) -> None:
        super().__init__(api_description)
        self._metrics = metrics

    def routes(self) -> Iterable[Route]:
        yield from self.description_routes()
        yield Route(
            ANY,
            "/metrics",
            self.metrics,
            summary="Get TorchServe application metrics in prometheus format.",
            operation_id="metrics",
            tags=("metrics",),
            parameters=(Param("name[]", "Only these metrics (repeat the parameter for several)", type="array"),),
            responses={
                200: Reply("TorchServe application metrics", {"type": "string"}, (PROMETHEUS_CONTENT_TYPE,)),
                500: "Internal Server Error",
            },
            doc_methods=("GET",),
        )

    async def metrics(self, request: Request, params: dict[str, str]) -> Response:
        headers = http.response_headers(http.new_request_id())
        headers["Content-Type"] = PROMETHEUS_CONTENT_TYPE
        body = b""
        if self._metrics is not None:
            body = (await self._metrics.scrape(request.query.getall("name[]", ()))).encode("utf-8")
        return Response(200, headers, body)
