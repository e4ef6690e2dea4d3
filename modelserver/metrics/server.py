"""Every metric of one server: :class:`ServerMetrics` builds the families the configured mode records, hands each
model version its :class:`~modelserver.metrics.version.VersionMetrics`, takes the events that are not a model
version's (response statuses, ``[METRICS]`` lines, host samples), answers ``/metrics`` and the per-version
summaries, and runs the background work (host sampling, metric log flushing).

``metrics_mode`` decides where each metric goes (TorchServe's rules):

* ``log`` (the default): every update is a line in ``ts_metrics.log`` (frontend) or ``model_metrics.log``
  (backend) in ``METRICS_LOCATION``, and ``/metrics`` answers an empty body;
* ``prometheus``: every family is on ``/metrics``, plus this server's own histograms and gauges; no metric lines;
* ``legacy``: the three ``ts_*`` counters are on ``/metrics``, everything else is logged.

The request statistics (:mod:`modelserver.metrics.stats`) are kept in every mode. At scrape time custom collectors
in a prometheus-client ``CollectorRegistry`` turn the families into prometheus-client metric families, and
:func:`~modelserver.metrics.text_format.render` prints them in TorchServe's text form.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from .backend_lines import BackendMetric, detected_spec, parse_metric_line, valid_prometheus_family
from .config import LEGACY_METRICS, MODEL_METRICS_LOG, TS_METRICS_LOG, MetricSpec, MetricsSettings
from .merge import export, export_summaries, merge, merge_summaries
from .metric_log import MetricLog
from .series import NULL_SERIES, Family, Series, torchserve_help
from .stats import LATENCY_BUCKETS, Summary, latency_layout
from .system import SYSTEM_METRICS, SystemSampler
from .text_format import java_double, render
from .version import LabelSet, TotalLatency, VersionMetrics, request_counters

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from ..config import ServerConfig

logger = logging.getLogger("modelserver.metrics")

PeerNumbers = Callable[[str], Awaitable[list[Any]]]
"""Asks every other frontend process for ``metrics`` (an :func:`~.merge.export`) or ``summaries``."""
VersionGauges = tuple[str, str, int, int]
"""What the live gauges read of one registered model version: its name, version, queue depth and open streams."""

# Batch-size buckets of modelserver_batch_size.
BATCH_BUCKETS: Final[tuple[float, ...]] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
# TorchServe's per-request families, in the order their children are made.
REQUEST_FAMILIES: Final[tuple[str, ...]] = (
    "ts_inference_requests_total",
    "ts_inference_latency_microseconds",
    "ts_queue_latency_microseconds",
)


class ServerMetrics:
    """Every metric family of one server, where each goes in the configured mode, and the ``/metrics`` text."""

    def __init__(
        self,
        settings: MetricsSettings | None = None,
        versions: Callable[[], Iterable[VersionGauges]] = tuple,
        hostname: str | None = None,
        ts_log: MetricLog | None = None,
        model_log: MetricLog | None = None,
    ) -> None:
        self.settings = settings or MetricsSettings()
        self.mode = self.settings.mode
        self.hostname = hostname or socket.gethostname()
        self.ts_log = ts_log or MetricLog()
        self.model_log = model_log or MetricLog()
        self._versions = versions
        self._layout = latency_layout(self.settings.summary_buckets_ms)
        self._frontend: dict[str, Family] = {}
        self._backend: dict[str, Family] = {}
        self._own: dict[str, Family] = {}
        self._rejected: set[str] = set()
        self._version_metrics: dict[tuple[str, str], VersionMetrics] = {}
        self._label_sets: dict[tuple[str, str], LabelSet] = {}
        self._system_task: asyncio.Task[None] | None = None
        self._build_frontend()
        self._build_backend()
        self._build_own()
        host = self.hostname
        self.requests_2xx = self.frontend_child("Requests2XX", "Host", host)
        self.requests_4xx = self.frontend_child("Requests4XX", "Host", host)
        self.requests_5xx = self.frontend_child("Requests5XX", "Host", host)
        self.peers: PeerNumbers | None = None
        """With several frontend processes: how ``/metrics`` and the summaries reach the other frontends' numbers."""
        self._registry: CollectorRegistry | None = None

    @property
    def registry(self) -> CollectorRegistry:
        """The prometheus-client registry a scrape collects: made (and the library imported) on first use."""
        if self._registry is None:
            from .families import CollectorRegistry

            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_FamiliesCollector(self))
            self._registry.register(_LiveCollector(self))
        return self._registry

    @classmethod
    def from_config(cls, config: ServerConfig, versions: Callable[[], Iterable[VersionGauges]]) -> ServerMetrics:
        return cls(MetricsSettings.from_config(config), versions)

    # -- where each family goes -------------------------------------------------------------------------------------

    def _frontend_target(self, name: str) -> str:
        if self.mode == "prometheus" or (self.mode == "legacy" and name in LEGACY_METRICS):
            return "prometheus"
        return "log"

    def _backend_target(self) -> str:
        return "prometheus" if self.mode == "prometheus" else "log"

    def _build_frontend(self) -> None:
        for name, labels in _FRONTEND_LABELS.items():
            spec = self.settings.config.frontend.get(name)
            if spec is None:  # not declared in the metrics yaml: TorchServe does not record it
                continue
            target = self._frontend_target(name)
            help_text = torchserve_help(spec.kind, spec.unit)
            kind = "counter" if name in _FRONTEND_COUNTERS else "gauge"
            self._frontend[name] = Family(name, kind, help_text, labels, target, spec.unit, self.ts_log)

    def _build_backend(self) -> None:
        for spec in self.settings.config.model.values():
            self._add_backend(spec)

    def _add_backend(self, spec: MetricSpec) -> Family | None:
        labels = (*spec.dimensions, "Hostname")
        target = self._backend_target()
        if target == "prometheus" and not valid_prometheus_family(spec.name, labels, self._frontend):
            self._reject(spec.name, "is not a valid Prometheus metric (its name or labels, or it has a frontend name)")
            return None
        family = Family(spec.name, spec.kind, torchserve_help(spec.kind, spec.unit), labels, target, spec.unit)
        family.sink = self.model_log
        self._backend[spec.name] = family
        return family

    def _build_own(self) -> None:
        if self.mode != "prometheus":
            return
        version_labels = ("model_name", "model_version")
        for name, kind, help_text, labels, buckets in (
            (
                "modelserver_request_latency_seconds",
                "histogram",
                "Latency of successful inference requests by stage: queue (waiting for a worker), worker (sent to the"
                " worker until its answer arrived), total (admitted until answered).",
                (*version_labels, "stage"),
                LATENCY_BUCKETS,
            ),
            ("modelserver_batch_size", "histogram", "Jobs per batch sent to a worker.", version_labels, BATCH_BUCKETS),
            (
                "modelserver_worker_restarts_total",
                "counter",
                "Worker processes started again after dying, timing out or failing to load.",
                version_labels,
                (),
            ),
        ):
            self._own[name] = Family(name, kind, help_text, labels, buckets=buckets, torchserve=False)

    def _reject(self, name: str, reason: str) -> None:
        if name not in self._rejected:
            self._rejected.add(name)
            logger.error("Backend metric %s %s; such lines are dropped", name, reason)

    # -- children ---------------------------------------------------------------------------------------------------

    def frontend_child(self, name: str, *values: str) -> Series:
        family = self._frontend.get(name)
        return NULL_SERIES if family is None else family.child(*values)

    def _backend_child(self, name: str, *values: str) -> Series:
        family = self._backend.get(name)
        if family is None or len(values) != len(family.labels):
            return NULL_SERIES
        return family.child(*values)

    def _own_child(self, name: str, *values: str) -> Series:
        family = self._own.get(name)
        return NULL_SERIES if family is None else family.child(*values)

    def for_version(self, name: str, version: str) -> VersionMetrics:
        """The metrics a model version updates; the same object again if the version is registered again."""
        key = (name, version)
        found = self._version_metrics.get(key)
        if found is None:
            found = self._version_metrics[key] = self._make_version(name, version)
        return found

    def _make_version(self, name: str, version: str) -> VersionMetrics:
        host = self.hostname
        stages: tuple[Series, Series] | None = None
        latency = self._own.get("modelserver_request_latency_seconds")
        if latency is not None:  # prometheus mode
            stages = (latency.child(name, version, "queue"), latency.child(name, version, "worker"))
        batch_size = self._own.get("modelserver_batch_size")
        metrics = VersionMetrics(
            self.label_set(name, "default").member(),
            self.label_set(name, version).member(),
            layout=self._layout,
            hostname=host,
            queue_time=self.frontend_child("QueueTime", "Host", host),
            worker_thread_time=self.frontend_child("WorkerThreadTime", "Host", host),
            prediction_time=self._backend_child("PredictionTime", name, "Model", host),
            load_time=self._frontend.get("WorkerLoadTime"),
            stages=stages,
            batch_size=None if batch_size is None else batch_size.child(name, version),
            restarts=self._own_child("modelserver_worker_restarts_total", name, version),
            backend_line=self.backend_line,
        )
        if latency is not None:  # the total stage is read from the statistics
            latency.adopt((name, version, "total"), TotalLatency(metrics.stats))
        return metrics

    def label_set(self, name: str, version_label: str) -> LabelSet:
        """One label set of the ``ts_*`` families, made on first use: the ``default`` label set of a model is the
        same for all its versions, as TorchServe's counter child is."""
        key = (name, version_label)
        found = self._label_sets.get(key)
        if found is None:
            found = self._label_sets[key] = self._make_label_set(name, version_label)
        return found

    def _make_label_set(self, name: str, version_label: str) -> LabelSet:
        values = (name, version_label, self.hostname)
        families = [self._frontend.get(family_name) for family_name in REQUEST_FAMILIES]
        logged = [NULL_SERIES if f is None or f.target != "log" else f.child(*values) for f in families]
        requests_line, latency_line, queue_line = logged
        label_set = LabelSet(
            None if requests_line is NULL_SERIES else requests_line,
            None if latency_line is NULL_SERIES and queue_line is NULL_SERIES else (latency_line, queue_line),
        )
        for family, counter in zip(families, request_counters(label_set), strict=True):
            if family is not None and family.target == "prometheus":
                family.adopt(values, counter)
        return label_set

    # -- events -----------------------------------------------------------------------------------------------------

    def observe_status(self, status: int) -> None:
        """A response went out with this status: TorchServe counts 2xx, 4xx, and everything else as 5xx."""
        if 200 <= status < 300:
            self.requests_2xx.update(1.0)
        elif 400 <= status < 500:
            self.requests_4xx.update(1.0)
        else:
            self.requests_5xx.update(1.0)

    def backend_line(self, line: str) -> None:
        """A ``[METRICS]`` line a worker printed (with its prefix). Declared metrics are recorded; undeclared ones
        only with ``model_metrics_auto_detect=true``, as TorchServe does."""
        text = line.split("[METRICS]", 1)[1]
        metric = parse_metric_line(text)
        if metric is None:
            logger.error('Failed to parse metrics line: "%s".', line)
            return
        family = self._backend.get(metric.name)
        if family is None:
            if not self.settings.auto_detect or metric.name in self._rejected:
                return
            logger.info("Registering auto detected backend metric: %s", metric.name)
            family = self._add_backend(detected_spec(metric))
            if family is None:
                return
        values = [v for _, v in metric.dimensions]
        if family.target == "log":
            self._log_backend(family, metric, values)
            return
        if len(values) + 1 != len(family.labels):
            self._reject(metric.name, f"has dimension values {values} for dimensions {list(family.labels[:-1])}")
            return
        family.child(*values, metric.hostname).update(metric.value)

    def _log_backend(self, family: Family, metric: BackendMetric, values: list[str]) -> None:
        """TorchServe's LogMetric line: the declared dimension names with the line's values, in order."""
        dims = ",".join(f"{k}:{v}" for k, v in zip(family.labels[:-1], values, strict=False))
        ids = f",requestID:{metric.request_ids}" if metric.request_ids else ""
        head = f"{family.name}.{family.unit}:{java_double(metric.value)}"
        self.model_log.write(f"{head}|#{dims}|#hostname:{metric.hostname}{ids}")

    # -- lifetime ---------------------------------------------------------------------------------------------------

    def start(self, system: bool = True) -> None:
        """Open the metric logs and start collecting the host metrics every ``metric_time_interval`` (unless
        ``system`` is False: with several frontend processes, frontend 0 samples the host for all)."""
        self.open_logs()
        self.ts_log.start()
        self.model_log.start()
        if system and self.settings.system_metrics and self._system_task is None:
            self._system_task = asyncio.get_running_loop().create_task(self._collect_system(), name="system-metrics")

    def open_logs(self) -> None:
        """Create ``ts_metrics.log`` and ``model_metrics.log`` in ``METRICS_LOCATION`` (in every mode, as TorchServe
        does); a directory that cannot be written is reported and the lines are dropped."""
        location = Path(self.settings.location)
        try:
            self.ts_log.open(location / TS_METRICS_LOG)
            self.model_log.open(location / MODEL_METRICS_LOG)
        except OSError as err:
            logger.error("Cannot write metric logs in %s: %s", location, err.strerror)

    def record_system(self, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self.frontend_child(name, "Host", self.hostname).update(value)

    async def _collect_system(self) -> None:
        sampler = SystemSampler()
        while True:
            self.record_system(sampler.sample())
            await asyncio.sleep(self.settings.interval)

    def close(self) -> None:
        if self._system_task is not None:
            self._system_task.cancel()
            self._system_task = None
        self.ts_log.close()
        self.model_log.close()

    # -- reading ----------------------------------------------------------------------------------------------------

    def summaries(self) -> list[tuple[str, str, Summary]]:
        """``(model_name, model_version, summary)`` for every model version that has metrics (each
        :meth:`for_version` ever made, unregistered ones too), in the order they were made; values as of now."""
        return [(name, version, metrics.summary()) for (name, version), metrics in self._version_metrics.items()]

    def families(self) -> Iterator[Family]:
        for group in (self._frontend, self._backend, self._own):
            yield from (f for f in group.values() if f.target == "prometheus")

    def exposition(self, names: Iterable[str] = ()) -> str:
        """The ``/metrics`` body: the registry's families in TorchServe's text form."""
        return render(self.registry.collect(), names)

    async def scrape(self, names: Iterable[str] = ()) -> str:
        """``/metrics``: :meth:`exposition`, with the other frontend processes' numbers added in when there are
        some (:mod:`.merge`)."""
        if self.peers is None or self.mode == "log":
            return self.exposition(names)
        own = export(self.registry.collect())
        return render(merge([own, *await self.peers("metrics")]), names)

    async def all_summaries(self) -> list[tuple[str, str, Summary]]:
        """:meth:`summaries`, with the other frontend processes' requests added in when there are some."""
        if self.peers is None:
            return self.summaries()
        return merge_summaries([export_summaries(self.summaries()), *await self.peers("summaries")])

    def live_families(self) -> Iterator[Metric]:
        """Gauges read at scrape time from the registered model versions (prometheus mode only)."""
        if self.mode != "prometheus":
            return
        from .families import GaugeMetricFamily

        labels = ["model_name", "model_version"]
        depth = GaugeMetricFamily("modelserver_queue_depth", _QUEUE_DEPTH_HELP, labels=labels)
        streams = GaugeMetricFamily("modelserver_inflight_streams", _STREAMS_HELP, labels=labels)
        for name, version, queued, open_streams in self._versions():
            depth.add_metric([name, version], float(queued))
            streams.add_metric([name, version], float(open_streams))
        yield depth
        yield streams


_QUEUE_DEPTH_HELP: Final = "Jobs waiting for a worker: queued, or taken by a busy worker that has not started them."
_STREAMS_HELP: Final = "Streamed (chunked) inference responses being sent."

# The frontend metrics this server records, with TorchServe's label names (the hostname label is last).
_FRONTEND_LABELS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "Requests2XX": ("Level", "Hostname"),
        "Requests4XX": ("Level", "Hostname"),
        "Requests5XX": ("Level", "Hostname"),
        "ts_inference_requests_total": ("model_name", "model_version", "hostname"),
        "ts_inference_latency_microseconds": ("model_name", "model_version", "hostname"),
        "ts_queue_latency_microseconds": ("model_name", "model_version", "hostname"),
        "QueueTime": ("Level", "Hostname"),
        "WorkerThreadTime": ("Level", "Hostname"),
        "WorkerLoadTime": ("WorkerName", "Level", "Hostname"),
        **dict.fromkeys(SYSTEM_METRICS, ("Level", "Hostname")),
    }
)
_FRONTEND_COUNTERS: Final = frozenset({"Requests2XX", "Requests4XX", "Requests5XX"} | LEGACY_METRICS)


class _FamiliesCollector:
    """The stored families of a :class:`ServerMetrics`, as prometheus-client metric families."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for family in self._metrics.families():
            yield family.collect()


class _LiveCollector:
    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.live_families()
