"""TorchServe's metrics: Prometheus families for ``/metrics``, metric log lines, the parser for worker metric lines,
and request statistics kept in every mode.

One module per concern, each importing only the ones listed before it (no cycles):

* :mod:`.config`: the metrics yaml and the ``config.properties`` keys (:class:`MetricsSettings`), shared constants;
* :mod:`.text_format`: TorchServe's Prometheus text (:func:`render`, :func:`java_double`);
* :mod:`.families`: the prometheus-client objects a scrape builds, imported on the first scrape;
* :mod:`.backend_lines`: the ``[METRICS]`` lines workers print (:func:`parse_metric_line`);
* :mod:`.system`: host gauges from ``/proc`` (:class:`SystemSampler`);
* :mod:`.metric_log`: ``ts_metrics.log`` / ``model_metrics.log`` (:class:`MetricLog`);
* :mod:`.series`: values and families (:class:`Family`, :class:`Counter`, :class:`LogSeries`, ...);
* :mod:`.stats`: request statistics kept in every mode (:class:`RequestStats`, :class:`LatencySums`,
  :class:`VersionStats`, :class:`Summary`);
* :mod:`.version`: what one model version updates per request (:class:`VersionMetrics`);
* :mod:`.server`: every family of a server, the mode's routing, ``/metrics``, summaries (:class:`ServerMetrics`).

Everything the rest of the server and the tests use is re-exported here: import from ``modelserver.metrics``.
"""

from __future__ import annotations

from .backend_lines import METRIC_LINE_PREFIXES, BackendMetric, parse_metric_line
from .config import (
    CONTENT_TYPE,
    DEFAULT_METRICS_CONFIG,
    DEFAULT_METRICS_DOCUMENT,
    DEFAULT_SUMMARY_BUCKETS_MS,
    KINDS,
    LEGACY_METRICS,
    MODEL_METRICS_LOG,
    MODES,
    TS_METRICS_LOG,
    MetricsConfig,
    MetricSpec,
    MetricsSettings,
    load_metrics_config,
    parse_metrics_yaml,
    parse_summary_buckets,
)
from .metric_log import MetricLog
from .series import DEFAULT_BUCKETS, NULL_SERIES, Counter, Family, Gauge, Histogram, LogSeries, Series
from .server import BATCH_BUCKETS, REQUEST_FAMILIES, ServerMetrics
from .stats import LATENCY_BUCKETS, LatencyLayout, LatencySums, RequestStats, Summary, VersionStats, latency_layout
from .system import SYSTEM_METRICS, SystemSampler, resident_bytes
from .text_format import java_double, render
from .version import NULL_VERSION_METRICS, STAGES, LabelSet, RequestSeries, VersionMetrics

__all__ = [
    "BATCH_BUCKETS",
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "DEFAULT_METRICS_CONFIG",
    "DEFAULT_METRICS_DOCUMENT",
    "DEFAULT_SUMMARY_BUCKETS_MS",
    "KINDS",
    "LATENCY_BUCKETS",
    "LEGACY_METRICS",
    "METRIC_LINE_PREFIXES",
    "MODEL_METRICS_LOG",
    "MODES",
    "NULL_SERIES",
    "NULL_VERSION_METRICS",
    "REQUEST_FAMILIES",
    "STAGES",
    "SYSTEM_METRICS",
    "TS_METRICS_LOG",
    "BackendMetric",
    "Counter",
    "Family",
    "Gauge",
    "Histogram",
    "LabelSet",
    "LatencyLayout",
    "LatencySums",
    "LogSeries",
    "MetricLog",
    "MetricSpec",
    "MetricsConfig",
    "MetricsSettings",
    "RequestSeries",
    "RequestStats",
    "Series",
    "ServerMetrics",
    "Summary",
    "SystemSampler",
    "VersionMetrics",
    "VersionStats",
    "java_double",
    "latency_layout",
    "load_metrics_config",
    "parse_metric_line",
    "parse_metrics_yaml",
    "parse_summary_buckets",
    "render",
    "resident_bytes",
]
