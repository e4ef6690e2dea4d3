"""Several frontend processes' metrics as one server's (:mod:`modelserver.metrics.merge`): what each exports crosses
the control channel as msgpack, and the merged families render as one scrape."""

from __future__ import annotations

from typing import Any

import msgpack
from prometheus_client.parser import text_string_to_metric_families

from modelserver.metrics import MetricLog, MetricsSettings, ServerMetrics, render
from modelserver.metrics.merge import export, export_summaries, merge, merge_summaries
from tests.unit.metrics_jobs import new_job

HOST = "host1"


def frontend(queued: int = 0) -> ServerMetrics:
    versions = lambda: [("m", "1.0", queued, 0)]  # noqa: E731
    settings = MetricsSettings(mode="prometheus")
    return ServerMetrics(settings, versions, hostname=HOST, ts_log=MetricLog(memory=[]), model_log=MetricLog(memory=[]))


def serve(metrics: ServerMetrics, requests: int, status: int = 200) -> None:
    version = metrics.for_version("m", "1.0")
    for _ in range(requests):
        job = new_job()
        version.admit(job, explicit_version=False)
        version.dispatched([job])
        version.sent()
        version.finished(job, status)
        metrics.observe_status(status)


def over_the_wire(metrics: ServerMetrics) -> list[Any]:
    """What a frontend sends: its export, packed and unpacked as the control channel does."""
    return msgpack.unpackb(msgpack.packb(export(metrics.registry.collect()), use_bin_type=True), raw=False)


def scrape(*frontends: ServerMetrics) -> dict[str, Any]:
    text = render(merge([over_the_wire(metrics) for metrics in frontends]))
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], family: str, name: str | None = None, **labels: str) -> float | None:
    for sample in families[family].samples:
        if (name is None or sample.name == name) and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


def test_counters_and_histograms_add_up() -> None:
    first, second = frontend(), frontend()
    serve(first, 3)
    serve(second, 5)
    serve(second, 2, status=404)
    families = scrape(first, second)
    assert value(families, "ts_inference_requests", model_name="m", model_version="default", hostname=HOST) == 10
    assert value(families, "Requests2XX", Level="Host") == 8
    assert value(families, "Requests4XX", Level="Host") == 2
    stage = "modelserver_request_latency_seconds"
    assert value(families, stage, f"{stage}_count", model_version="1.0", stage="total") == 8  # 404s are no success
    assert value(families, "modelserver_batch_size", "modelserver_batch_size_count", model_version="1.0") == 10


def test_queue_depth_adds_up_and_other_gauges_take_the_highest() -> None:
    first, second = frontend(queued=2), frontend(queued=3)
    first.for_version("m", "1.0").worker_loaded("W-9000-m_1.0", 0.25)
    second.for_version("m", "1.0").worker_loaded("W-9000-m_1.0", 0.75)
    families = scrape(first, second)
    assert value(families, "modelserver_queue_depth", model_name="m", model_version="1.0") == 5
    assert value(families, "WorkerLoadTime", WorkerName="W-9000-m_1.0") == 750.0


def test_the_merged_text_is_the_text_of_one_frontend_when_alone() -> None:
    metrics = frontend(queued=1)
    serve(metrics, 4)
    metrics.for_version("m", "1.0").worker_loaded("W-9000-m_1.0", 0.5)
    assert render(merge([over_the_wire(metrics)])) == metrics.exposition()


def test_a_series_only_one_frontend_has_is_kept() -> None:
    first, second = frontend(), frontend()
    serve(second, 1)
    second.for_version("other", "2.0")
    families = scrape(first, second)
    assert value(families, "ts_inference_requests", model_name="m") == 1
    restarts = "modelserver_worker_restarts"
    assert value(families, restarts, model_name="other", model_version="2.0") == 0


def test_summaries_add_up_per_version_in_order_of_appearance() -> None:
    first, second = frontend(), frontend()
    serve(first, 2)
    serve(second, 3)
    serve(second, 1, status=500)
    second.for_version("late", "1.0")
    exports = [msgpack.unpackb(msgpack.packb(export_summaries(m.summaries())), raw=False) for m in (first, second)]
    merged = merge_summaries(exports)
    assert [(name, version) for name, version, _ in merged] == [("m", "1.0"), ("late", "1.0")]
    summary = merged[0][2]
    assert (summary.requests, summary.succeeded, summary.failed) == (6, 5, 1)
    assert sum(summary.distribution) == 5
    own = first.summaries()[0][2]
    assert summary.total_latency_ms >= own.total_latency_ms
