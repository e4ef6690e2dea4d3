"""TorchServe's metrics: Prometheus families for ``/metrics``, metric log lines, and the parser for worker metrics.

``metrics_mode`` decides where each metric goes (TorchServe's rules, spec section 4b):

* ``log`` (the default): every update is a line in ``ts_metrics.log`` (frontend) or ``model_metrics.log``
  (backend) in ``METRICS_LOCATION``, and ``/metrics`` answers an empty body;
* ``prometheus``: every family is on ``/metrics``, plus this server's own histograms and gauges; no metric lines;
* ``legacy``: the three ``ts_*`` counters are on ``/metrics``, everything else is logged.

Values live in plain slotted objects (:class:`Counter`, :class:`Gauge`, :class:`Histogram`) that the request path
updates through children it looked up once (per model version, per worker), so a request costs a few attribute
updates and no label lookups or string formatting. At scrape time custom collectors in a prometheus-client
``CollectorRegistry`` turn them into ``CounterMetricFamily`` / ``GaugeMetricFamily`` / ``HistogramMetricFamily``
objects, and :func:`render` writes those in TorchServe's text form (Java simpleclient 0.9.0): ``# HELP``/``# TYPE``
per family, counters without a ``_total`` suffix, a comma after the last label, values as Java prints doubles.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import os
import re
import socket
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from aiohttp import web

    from .config import ServerConfig
    from .registry import ModelVersion
    from .types import Job

__all__ = [
    "CONTENT_TYPE",
    "MODES",
    "NULL_VERSION_METRICS",
    "BackendMetric",
    "MetricLog",
    "MetricSpec",
    "MetricsConfig",
    "MetricsSettings",
    "ServerMetrics",
    "VersionMetrics",
    "java_double",
    "load_metrics_config",
    "parse_metric_line",
    "render",
]

logger = logging.getLogger("modelserver.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MODES = ("log", "prometheus", "legacy")
LEGACY_METRICS = frozenset(
    {"ts_inference_requests_total", "ts_inference_latency_microseconds", "ts_queue_latency_microseconds"}
)
TS_METRICS_LOG = "ts_metrics.log"
MODEL_METRICS_LOG = "model_metrics.log"
KINDS = ("counter", "gauge", "histogram")

# TorchServe's ts/configs/metrics.yaml, without OpenSessions (gRPC) and the GPU metrics of hosts without GPUs.
DEFAULT_METRICS_YAML = """
dimensions:
  - &model_name "ModelName"
  - &worker_name "WorkerName"
  - &level "Level"
  - &hostname "Hostname"
ts_metrics:
  counter:
    - {name: Requests2XX, unit: Count, dimensions: [*level, *hostname]}
    - {name: Requests4XX, unit: Count, dimensions: [*level, *hostname]}
    - {name: Requests5XX, unit: Count, dimensions: [*level, *hostname]}
    - {name: ts_inference_requests_total, unit: Count, dimensions: [model_name, model_version, hostname]}
    - {name: ts_inference_latency_microseconds, unit: Microseconds, dimensions: [model_name, model_version, hostname]}
    - {name: ts_queue_latency_microseconds, unit: Microseconds, dimensions: [model_name, model_version, hostname]}
  gauge:
    - {name: QueueTime, unit: Milliseconds, dimensions: [*level, *hostname]}
    - {name: WorkerThreadTime, unit: Milliseconds, dimensions: [*level, *hostname]}
    - {name: WorkerLoadTime, unit: Milliseconds, dimensions: [*worker_name, *level, *hostname]}
    - {name: CPUUtilization, unit: Percent, dimensions: [*level, *hostname]}
    - {name: MemoryUsed, unit: Megabytes, dimensions: [*level, *hostname]}
    - {name: MemoryAvailable, unit: Megabytes, dimensions: [*level, *hostname]}
    - {name: MemoryUtilization, unit: Percent, dimensions: [*level, *hostname]}
    - {name: DiskUsage, unit: Gigabytes, dimensions: [*level, *hostname]}
    - {name: DiskUtilization, unit: Percent, dimensions: [*level, *hostname]}
    - {name: DiskAvailable, unit: Gigabytes, dimensions: [*level, *hostname]}
model_metrics:
  gauge:
    - {name: HandlerTime, unit: ms, dimensions: [*model_name, *level]}
    - {name: PredictionTime, unit: ms, dimensions: [*model_name, *level]}
"""

# Histogram buckets of this server's own families: request latency in seconds, and batch sizes.
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
# TorchServe's Java client registers histograms with simpleclient's default buckets.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

STAGES = ("queue", "worker", "total")
SYSTEM_METRICS = (
    "CPUUtilization",
    "MemoryUsed",
    "MemoryAvailable",
    "MemoryUtilization",
    "DiskUsage",
    "DiskUtilization",
    "DiskAvailable",
)
_PROMETHEUS_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


# --- configuration -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One metric as declared in a metrics yaml: its name, type, unit and dimension (label) names."""

    name: str
    kind: str
    unit: str
    dimensions: tuple[str, ...]


@dataclass(frozen=True)
class MetricsConfig:
    """The ``ts_metrics`` (frontend) and ``model_metrics`` (backend) declarations of a metrics yaml."""

    frontend: Mapping[str, MetricSpec]
    model: Mapping[str, MetricSpec]


def parse_metrics_yaml(text: str) -> MetricsConfig:
    """Read TorchServe's metrics yaml format; raises ValueError when it is not that shape."""
    document = yaml.safe_load(text) or {}
    if not isinstance(document, dict):
        raise ValueError("the metrics configuration is not a mapping")
    return MetricsConfig(_section(document.get("ts_metrics")), _section(document.get("model_metrics")))


def _section(section: Any) -> Mapping[str, MetricSpec]:
    specs: dict[str, MetricSpec] = {}
    if section is None:
        return MappingProxyType(specs)
    if not isinstance(section, dict):
        raise ValueError("a metrics section is not a mapping of counter/gauge/histogram lists")
    for kind in KINDS:
        for entry in section.get(kind) or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ValueError(f"a {kind} entry has no name: {entry!r}")
            dimensions = tuple(str(d) for d in entry.get("dimensions") or ())
            specs[entry["name"]] = MetricSpec(entry["name"], kind, str(entry.get("unit") or ""), dimensions)
    return MappingProxyType(specs)


DEFAULT_METRICS_CONFIG = parse_metrics_yaml(DEFAULT_METRICS_YAML)


def load_metrics_config(path: str | None) -> MetricsConfig:
    """``metrics_config``: the yaml at ``path``; TorchServe's defaults when unset, or (with an error) unreadable."""
    if not path:
        return DEFAULT_METRICS_CONFIG
    try:
        return parse_metrics_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:
        logger.error("Failed to load metrics configuration %s: %s; using the default metrics", path, err)
        return DEFAULT_METRICS_CONFIG


@dataclass(frozen=True)
class MetricsSettings:
    """The configuration keys about metrics, resolved."""

    mode: str = "log"
    api_enabled: bool = True
    auto_detect: bool = False
    system_metrics: bool = True
    interval: float = 60.0
    location: str = "logs"
    config: MetricsConfig = DEFAULT_METRICS_CONFIG

    @classmethod
    def from_config(cls, config: ServerConfig) -> MetricsSettings:
        """A relative ``metrics_config`` is looked up in the working directory, then next to the config file."""
        props = config.properties
        path = props.get("metrics_config")
        if path and not os.path.isabs(path) and config.config_file:
            path = path if os.path.exists(path) else os.path.join(os.path.dirname(config.config_file), path)
        return cls(
            mode=_mode(props.get("metrics_mode")),
            api_enabled=_flag(props, "enable_metrics_api", True),
            auto_detect=_flag(props, "model_metrics_auto_detect", False),
            system_metrics=not _flag(props, "disable_system_metrics", False),
            interval=_seconds(props.get("metric_time_interval"), 60.0),
            location=config.metrics_location,
            config=load_metrics_config(path),
        )


def _mode(value: str | None) -> str:
    """TorchServe reads the mode case-insensitively and falls back to ``log`` on anything else."""
    if value is None:
        return "log"
    mode = re.sub(r"\s", "", value).lower()
    if mode not in MODES:
        logger.error('Configured metrics mode "%s" not supported. Defaulting to "log" mode', value)
        return "log"
    return mode


def _flag(props: Mapping[str, str], key: str, default: bool) -> bool:
    value = props.get(key)
    return default if value is None else value.strip().lower() == "true"


def _seconds(value: str | None, default: float) -> float:
    try:
        number = float(value) if value is not None else default
    except ValueError:
        return default
    return number if number > 0 else default


# --- values --------------------------------------------------------------------------------------------------------


class Series:
    """One labelled value; ``update`` is TorchServe's ``addOrUpdate``. This base class drops the value."""

    __slots__ = ()

    def update(self, value: float) -> None:
        """Counters add, gauges set, histograms observe, log series record a line."""


NULL_SERIES = Series()


class Counter(Series):
    __slots__ = ("updated", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.updated = False

    def update(self, value: float) -> None:
        self.value += value
        self.updated = True


class Gauge(Series):
    __slots__ = ("updated", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.updated = False

    def update(self, value: float) -> None:
        self.value = value
        self.updated = True


class Histogram(Series):
    """Per-bucket counts (not cumulative until scraped) and the sum; the last slot is ``+Inf``."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    @property
    def updated(self) -> bool:
        return any(self.counts)

    def update(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        cumulative, total = [], 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += count
            cumulative.append((floatToGoString(bound), float(total)))
        return cumulative


class LogSeries(Series):
    """A metric in log mode: each update becomes a line ``Name.Unit:value|#Dim:v,...|#hostname:h,timestamp:t``.

    An update only records the time and value in its :class:`MetricLog`; the lines are formatted later.
    """

    __slots__ = ("_add_source", "_add_time", "_add_value", "head", "tail")

    def __init__(self, log: MetricLog, name: str, unit: str, dimensions: Iterable[tuple[str, str]], host: str) -> None:
        self._add_time, self._add_value, self._add_source = log.appenders()
        self.head = f"{name}.{unit}:"
        self.tail = "|#" + ",".join(f"{k}:{v}" for k, v in dimensions) + f"|#hostname:{host}"

    def update(self, value: float) -> None:
        self._add_time(time.time())
        self._add_value(value)
        self._add_source(self)


# --- families ------------------------------------------------------------------------------------------------------


@dataclass
class Family:
    """A metric family: how it is exposed (``prometheus``, ``log`` or ``off``) and its children by label values.

    For a TorchServe family the last label is the hostname; in log mode it becomes the line's ``hostname`` field.
    A TorchServe family shows a child only once it has been updated, as the Java client did; this server's own
    families show every child from the start, at zero.
    """

    name: str
    kind: str
    help: str
    labels: tuple[str, ...]
    target: str = "prometheus"
    unit: str = ""
    sink: MetricLog | None = None
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    torchserve: bool = True
    children: dict[tuple[str, ...], Series] = field(default_factory=dict)

    def child(self, *values: str) -> Series:
        """The series for these label values (made on first use); look it up once and keep it."""
        found = self.children.get(values)
        if found is None:
            found = self.children[values] = self._make(values)
        return found

    def _make(self, values: tuple[str, ...]) -> Series:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name}: {len(values)} label values for labels {list(self.labels)}")
        if self.target == "log" and self.sink is not None:
            dimensions = zip(self.labels[:-1], values[:-1], strict=True)
            return LogSeries(self.sink, self.name, self.unit, dimensions, values[-1])
        if self.target != "prometheus":
            return NULL_SERIES
        if self.kind == "counter":
            return Counter()
        if self.kind == "gauge":
            return Gauge()
        return Histogram(self.buckets)

    def collect(self) -> Metric:
        """This family as a prometheus-client metric family (``render`` prints it in TorchServe's form)."""
        if self.kind == "counter":
            family: Metric = TorchServeCounter(self.name, self.help, labels=self.labels, torchserve=self.torchserve)
        elif self.kind == "gauge":
            family = GaugeMetricFamily(self.name, self.help, labels=self.labels)
        else:
            family = HistogramMetricFamily(self.name, self.help, labels=self.labels)
        for values, series in self.children.items():
            if self.torchserve and not getattr(series, "updated", False):
                continue
            if isinstance(series, Histogram):
                family.add_metric(values, series.buckets(), series.sum)  # type: ignore[attr-defined]
            elif isinstance(series, Counter | Gauge):
                family.add_metric(values, series.value)  # type: ignore[attr-defined]
        return family


class TorchServeCounter(CounterMetricFamily):
    """A counter family that remembers the name it is exposed under.

    prometheus-client names counter samples ``<name>_total`` (``Requests2XX_total``); TorchServe's Java client
    printed the registered name itself (``Requests2XX``, ``ts_inference_requests_total``). ``render`` uses
    ``exposed_name`` for both the ``# HELP``/``# TYPE`` lines and the samples.
    """

    def __init__(self, name: str, documentation: str, labels: Iterable[str], torchserve: bool = True) -> None:
        super().__init__(name, documentation, labels=list(labels))
        self.exposed_name = name if torchserve else self.name + "_total"


def _torchserve_help(kind: str, unit: str) -> str:
    return f"Torchserve prometheus {kind} metric with unit: {unit}"


# --- rendering -----------------------------------------------------------------------------------------------------


def render(families: Iterable[Metric], names: Iterable[str] = ()) -> str:
    """Families in TorchServe's Prometheus text (simpleclient 0.9.0 ``TextFormat.write004``).

    ``names`` (``name[]`` parameters) keeps only samples with those names, and families that then have none are
    left out, as TorchServe filters; naming a family (a histogram's base name) keeps all of its samples.
    """
    wanted = frozenset(names)
    parts: list[str] = []
    for family in families:
        exposed = getattr(family, "exposed_name", None) or _sample_name(family)
        samples = [_exposed_sample(family, exposed, s) for s in family.samples if not s.name.endswith("_created")]
        if wanted:
            if exposed not in wanted:
                samples = [s for s in samples if s[0] in wanted]
            if not samples:
                continue
        kind = "untyped" if family.type == "unknown" else family.type
        parts.append(f"# HELP {exposed} {_escape_help(family.documentation)}\n# TYPE {exposed} {kind}\n")
        parts.extend(f"{name}{_labels(labels)} {java_double(value)}\n" for name, labels, value in samples)
    return "".join(parts)


def _sample_name(family: Metric) -> str:
    """A counter's samples are ``<name>_total`` in prometheus-client's model."""
    return family.name + "_total" if family.type == "counter" else family.name


def _exposed_sample(family: Metric, exposed: str, sample: Any) -> tuple[str, Mapping[str, str], float]:
    name = exposed if family.type == "counter" else sample.name
    return name, sample.labels, sample.value


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + "".join(f'{k}="{_escape_label(v)}",' for k, v in labels.items()) + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def java_double(value: float) -> str:
    """A double as simpleclient printed it: Java's ``Double.toString`` (``8.0``, ``1.2345678E7``, ``1.0E-4``).

    Both print the shortest digits that round-trip; Java switches to ``d.dddE<n>`` outside ``[1e-3, 1e7)``.
    """
    value = float(value)
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7 or magnitude == 0.0:
        return repr(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(magnitude)
    if "e" in text:  # Python's exponent form has one digit before the point: 1.2345e-05
        mantissa, _, exponent = text.partition("e")
        digits, power = mantissa.replace(".", ""), int(exponent)
    else:  # positional: 12345678.9 or 0.00012345
        integer, _, fraction = text.partition(".")
        padded = integer + fraction
        digits = padded.lstrip("0")
        power = len(integer) - 1 - (len(padded) - len(digits))
    digits = digits.rstrip("0") or "0"
    return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:] or '0'}E{power}"


# --- worker metric lines -------------------------------------------------------------------------------------------

METRIC_LINE_PREFIXES = ("[METRICS]", "INFO > [METRICS]")

# TorchServe's Metric.PATTERN: Name.Unit:value|#Dim:v,...[|#type:TYPE]|#hostname:host,timestamp[,request ids]
_METRIC_LINE = re.compile(
    r"\s*([\w\s]+)\.([\w\s]+):([0-9\-,.eE+]+)\|#([^|]*)(?:\|#type:([^|,]+))?\|#hostname:([^,]+),([^,]+)(?:,(.*))?"
)


@dataclass(frozen=True)
class BackendMetric:
    """One parsed ``[METRICS]`` line."""

    name: str
    unit: str
    value: float
    dimensions: tuple[tuple[str, str], ...]
    kind: str | None
    hostname: str
    timestamp: str
    request_ids: str


def parse_metric_line(line: str) -> BackendMetric | None:
    """Parse what follows ``[METRICS]`` as TorchServe does; None if it does not match or the value is no number."""
    match = _METRIC_LINE.fullmatch(line)
    if match is None:
        return None
    name, unit, value, dims, kind, hostname, timestamp, request_ids = match.groups()
    try:
        number = float(value)
    except ValueError:
        return None
    return BackendMetric(
        name=name,
        unit=unit,
        value=number,
        dimensions=tuple(_dimension_pairs(dims)),
        kind=kind.lower() if kind else None,
        hostname=hostname,
        timestamp=timestamp,
        request_ids=request_ids or "",
    )


def _dimension_pairs(text: str) -> Iterator[tuple[str, str]]:
    """``Dim:v,Dim2:v2``; like Java's ``split``, trailing empty parts are dropped and odd parts skipped."""
    for item in text.split(","):
        pair = item.split(":")
        while pair and not pair[-1]:
            pair.pop()
        if len(pair) == 2:
            yield pair[0], pair[1]


# --- metric log files ----------------------------------------------------------------------------------------------


class MetricLog:
    """``ts_metrics.log`` or ``model_metrics.log``: ``2024-02-16T21:12:24,801 - <line>,timestamp:<s>``.

    An update is recorded as its time and value in two ``array('d')`` and its series (or its finished line) in a
    list, so it allocates no object the garbage collector tracks; a task started by :meth:`start` formats the
    lines into the file every ``flush_seconds``. The server opens and starts the logs before any request; until
    :meth:`open`, lines are formatted only into ``memory`` (when it is a list; tests). The file rolls over at 100 MB,
    keeping 5 old files, as TorchServe's log4j2.xml does.
    """

    ROLL_BYTES = 100 * 1024 * 1024
    KEEP = 5

    def __init__(self, flush_seconds: float = 0.2, memory: list[str] | None = None) -> None:
        self.path: Path | None = None
        self.memory = memory
        self._times = array("d")
        self._values = array("d")
        self._sources: list[LogSeries | str] = []
        self._flush_seconds = flush_seconds
        self._file: Any = None
        self._second = -1
        self._stamp = ""
        self._task: asyncio.Task[None] | None = None

    def appenders(self) -> tuple[Callable[[float], None], Callable[[float], None], Callable[[Any], None]]:
        """How a :class:`LogSeries` records an update: the time, the value, itself (the lists are cleared in place)."""
        return self._times.append, self._values.append, self._sources.append

    def write(self, line: str) -> None:
        """A finished line (a backend metric)."""
        self._times.append(time.time())
        self._values.append(0.0)
        self._sources.append(line)

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab", buffering=64 * 1024)
        self.path = path

    def start(self) -> None:
        """Flush every ``flush_seconds`` from now on (needs a running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever(), name="metric-log")

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            if self._sources:
                try:
                    self.flush()
                except OSError as err:  # the lines are dropped, the next ones are tried again
                    logger.error("Cannot write %s: %s", self.path, err)

    def lines(self) -> list[str]:
        """Flush, then what ``memory`` holds."""
        self.flush()
        return list(self.memory or ())

    def flush(self) -> None:
        """Format the recorded updates into the file and hand it to the OS."""
        text = self._format()
        if self.memory is not None:
            self.memory.extend(text.splitlines(keepends=True))
        if self._file is None:
            return
        self._file.write(text.encode("utf-8", "backslashreplace"))
        self._file.flush()
        if self._file.tell() >= self.ROLL_BYTES and self.path is not None:
            self._roll(self.path)

    def _format(self) -> str:
        lines = []
        millisecond, prefix, suffix = -1, "", ""
        for now, value, source in zip(self._times, self._values, self._sources, strict=True):
            if int(now * 1000) != millisecond:  # lines of the same millisecond share their timestamps
                millisecond = int(now * 1000)
                prefix, suffix = self._stamps(millisecond)
            if isinstance(source, str):
                lines.append(f"{prefix}{source}{suffix}")
                continue
            if value == 1.0:  # a count
                number = "1.0"
            elif 1e-3 <= value < 1e7:
                number = repr(value)
            else:
                number = java_double(value)
            lines.append(f"{prefix}{source.head}{number}{source.tail}{suffix}")
        del self._times[:], self._values[:], self._sources[:]
        return "".join(lines)

    def _stamps(self, millisecond: int) -> tuple[str, str]:
        """log4j's ``%d{ISO8601} - `` in front of a line, and TorchServe's ``,timestamp:<s>`` after it."""
        second = millisecond // 1000
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
        return f"{self._stamp},{millisecond % 1000:03d} - ", f",timestamp:{second}\n"

    def _roll(self, path: Path) -> None:
        self._file.close()
        for index in range(self.KEEP - 1, 0, -1):
            older = path.with_name(f"{path.name}.{index}")
            if older.exists():
                os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
        os.replace(path, path.with_name(f"{path.name}.1"))
        self._file = path.open("ab", buffering=64 * 1024)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


# --- host metrics --------------------------------------------------------------------------------------------------


class SystemSampler:
    """TorchServe's host gauges (its ``system_metrics.py`` uses psutil), from ``/proc`` and ``statvfs``.

    ``CPUUtilization`` is the busy share of all CPUs since the previous sample (since boot for the first one).
    What the host does not provide (no ``/proc``) is left out. GPU metrics are not collected.
    """

    def __init__(self, proc: Path = Path("/proc"), disk: str = "/") -> None:
        self._proc = proc
        self._disk = disk
        self._cpu: tuple[int, int] | None = None

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        self._add_cpu(values)
        self._add_memory(values)
        self._add_disk(values)
        return values

    def _add_cpu(self, values: dict[str, float]) -> None:
        try:
            fields = [int(x) for x in (self._proc / "stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return
        total, idle = sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)
        previous_total, previous_idle = self._cpu or (0, 0)
        self._cpu = (total, idle)
        elapsed = total - previous_total
        values["CPUUtilization"] = 100.0 * (elapsed - (idle - previous_idle)) / elapsed if elapsed > 0 else 0.0

    def _add_memory(self, values: dict[str, float]) -> None:
        try:
            info = {
                key: int(rest.split()[0]) * 1024
                for key, _, rest in (line.partition(":") for line in (self._proc / "meminfo").read_text().splitlines())
                if rest.strip()
            }
            total, available = info["MemTotal"], info["MemAvailable"]
            cached = info.get("Cached", 0) + info.get("SReclaimable", 0)
            used = total - info["MemFree"] - info.get("Buffers", 0) - cached
            if used < 0:  # as psutil: some kernels count shared memory twice
                used = total - info["MemFree"]
        except (OSError, ValueError, KeyError):
            return
        values["MemoryUsed"] = used / 2**20
        values["MemoryAvailable"] = available / 2**20
        values["MemoryUtilization"] = 100.0 * (total - available) / total if total else 0.0

    def _add_disk(self, values: dict[str, float]) -> None:
        try:
            stat = os.statvfs(self._disk)
        except OSError:
            return
        used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
        free = stat.f_bavail * stat.f_frsize
        values["DiskUsage"] = used / 2**30
        values["DiskAvailable"] = free / 2**30
        values["DiskUtilization"] = 100.0 * used / (used + free) if used + free else 0.0


# --- per model version ---------------------------------------------------------------------------------------------


class RequestSeries:
    """The ``ts_*`` counters of one ``(model_name, model_version)`` label set; ``model_version`` is ``default``
    for requests whose URL names no version."""

    __slots__ = ("latency", "queue_latency", "requests")

    def __init__(self, requests: Series, latency: Series, queue_latency: Series) -> None:
        self.requests = requests
        self.latency = latency
        self.queue_latency = queue_latency


_NULL_REQUESTS = RequestSeries(NULL_SERIES, NULL_SERIES, NULL_SERIES)


class VersionMetrics:
    """The children one model version updates, looked up once when the version is registered.

    Times come from ``time.perf_counter``: a job is stamped when admitted (``started_at``) and when its batch goes
    to a worker (``dispatched_at``); the rest is computed when its last answer arrives.
    """

    __slots__ = (
        "_batch_size",
        "_dispatch_started",
        "_last_batch",
        "_load_time",
        "_prediction_time",
        "_queue_time",
        "_stage_queue",
        "_stage_total",
        "_stage_worker",
        "_worker_thread_time",
        "backend_line",
        "default",
        "explicit",
        "hostname",
        "restarts",
        "streams",
    )

    def __init__(
        self,
        default: RequestSeries = _NULL_REQUESTS,
        explicit: RequestSeries = _NULL_REQUESTS,
        *,
        hostname: str = "",
        queue_time: Series = NULL_SERIES,
        worker_thread_time: Series = NULL_SERIES,
        prediction_time: Series = NULL_SERIES,
        load_time: Family | None = None,
        stages: tuple[Series, Series, Series] = (NULL_SERIES, NULL_SERIES, NULL_SERIES),
        batch_size: Series = NULL_SERIES,
        restarts: Series = NULL_SERIES,
        backend_line: Callable[[str], None] | None = None,
    ) -> None:
        self.default = default
        self.explicit = explicit
        self.hostname = hostname
        self.restarts = restarts
        self.backend_line = backend_line
        """Where the model's workers' ``[METRICS]`` lines go (None: to the model log like other output)."""
        self.streams = 0
        self._queue_time = queue_time
        self._worker_thread_time = worker_thread_time
        self._prediction_time = prediction_time
        self._load_time = load_time
        self._stage_queue, self._stage_worker, self._stage_total = stages
        self._batch_size = batch_size
        self._dispatch_started = 0.0
        self._last_batch = -1.0

    def admit(self, job: Job, explicit_version: bool) -> None:
        """An inference request is about to be queued: count it (503s included) and stamp it."""
        series = self.explicit if explicit_version else self.default
        series.requests.update(1.0)
        job.metrics = series
        job.started_at = time.perf_counter()

    def dispatched(self, batch: list[Job]) -> None:
        """A batch left the queue for a worker."""
        now = self._dispatch_started = time.perf_counter()
        for job in batch:
            job.dispatched_at = now
        self._batch_size.update(float(len(batch)))

    def sent(self) -> None:
        """The batch just dispatched is on the worker's socket: TorchServe's ``WorkerThreadTime`` is the frontend's
        own time on a batch, without the wait for the backend."""
        self._worker_thread_time.update((time.perf_counter() - self._dispatch_started) * 1000.0)

    def done(self, job: Job) -> None:
        """A job got its last successful answer (TorchServe adds latencies only then)."""
        series = job.metrics
        if series is None:  # not an inference request (a customized describe)
            return
        now = time.perf_counter()
        started, dispatched = job.started_at, job.dispatched_at
        series.latency.update((now - started) * 1e6)
        series.queue_latency.update((dispatched - started) * 1e6)
        self._queue_time.update((dispatched - started) * 1000.0)
        if dispatched != self._last_batch:  # once per batch: every job of a batch shares its dispatch time
            self._last_batch = dispatched
            self._prediction_time.update((now - dispatched) * 1000.0)
        self._stage_queue.update(dispatched - started)
        self._stage_worker.update(now - dispatched)
        self._stage_total.update(now - started)

    def worker_loaded(self, worker_name: str, seconds: float) -> None:
        """``WorkerLoadTime``: from starting the worker process to its model being loaded."""
        if self._load_time is not None:
            self._load_time.child(worker_name, "Host", self.hostname).update(seconds * 1000.0)

    def worker_restarted(self) -> None:
        self.restarts.update(1.0)


NULL_VERSION_METRICS = VersionMetrics()
"""What a model version updates until the server attaches its real metrics (and in tests without a server)."""


# --- the server's metrics ------------------------------------------------------------------------------------------


class ServerMetrics:
    """Every metric family of one server, where each goes in the configured mode, and the ``/metrics`` text."""

    def __init__(
        self,
        settings: MetricsSettings | None = None,
        versions: Callable[[], Iterable[ModelVersion]] = tuple,
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
        self._frontend: dict[str, Family] = {}
        self._backend: dict[str, Family] = {}
        self._own: dict[str, Family] = {}
        self._rejected: set[str] = set()
        self._version_metrics: dict[tuple[str, str], VersionMetrics] = {}
        self._system_task: asyncio.Task[None] | None = None
        self._build_frontend()
        self._build_backend()
        self._build_own()
        host = self.hostname
        self.requests_2xx = self.frontend_child("Requests2XX", "Host", host)
        self.requests_4xx = self.frontend_child("Requests4XX", "Host", host)
        self.requests_5xx = self.frontend_child("Requests5XX", "Host", host)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_FamiliesCollector(self))
        self.registry.register(_LiveCollector(self))

    @classmethod
    def from_config(cls, config: ServerConfig, versions: Callable[[], Iterable[ModelVersion]]) -> ServerMetrics:
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
            help_text = _torchserve_help(spec.kind, spec.unit)
            kind = "counter" if name in _FRONTEND_COUNTERS else "gauge"
            self._frontend[name] = Family(name, kind, help_text, labels, target, spec.unit, self.ts_log)

    def _build_backend(self) -> None:
        for spec in self.settings.config.model.values():
            self._add_backend(spec)

    def _add_backend(self, spec: MetricSpec) -> Family | None:
        labels = (*spec.dimensions, "Hostname")
        target = self._backend_target()
        if target == "prometheus" and not _valid_family(spec.name, labels, self._frontend):
            self._reject(spec.name, "is not a valid Prometheus metric (its name or labels, or it has a frontend name)")
            return None
        family = Family(spec.name, spec.kind, _torchserve_help(spec.kind, spec.unit), labels, target, spec.unit)
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
        stages = tuple(self._own_child("modelserver_request_latency_seconds", name, version, s) for s in STAGES)
        return VersionMetrics(
            self._requests(name, "default"),
            self._requests(name, version),
            hostname=host,
            queue_time=self.frontend_child("QueueTime", "Host", host),
            worker_thread_time=self.frontend_child("WorkerThreadTime", "Host", host),
            prediction_time=self._backend_child("PredictionTime", name, "Model", host),
            load_time=self._frontend.get("WorkerLoadTime"),
            stages=stages,  # type: ignore[arg-type]
            batch_size=self._own_child("modelserver_batch_size", name, version),
            restarts=self._own_child("modelserver_worker_restarts_total", name, version),
            backend_line=self.backend_line,
        )

    def _requests(self, name: str, version_label: str) -> RequestSeries:
        host = self.hostname
        return RequestSeries(
            self.frontend_child("ts_inference_requests_total", name, version_label, host),
            self.frontend_child("ts_inference_latency_microseconds", name, version_label, host),
            self.frontend_child("ts_queue_latency_microseconds", name, version_label, host),
        )

    # -- events -----------------------------------------------------------------------------------------------------

    def observe_response(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """A listener observer: TorchServe counts 2xx, 4xx, and everything else as 5xx."""
        status = response.status
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
            family = self._add_backend(_detected_spec(metric))
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

    def start(self) -> None:
        """Open the metric logs and start collecting the host metrics every ``metric_time_interval``."""
        self.open_logs()
        self.ts_log.start()
        self.model_log.start()
        if self.settings.system_metrics and self._system_task is None:
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

    # -- /metrics ---------------------------------------------------------------------------------------------------

    def families(self) -> Iterator[Family]:
        for group in (self._frontend, self._backend, self._own):
            yield from (f for f in group.values() if f.target == "prometheus")

    def exposition(self, names: Iterable[str] = ()) -> str:
        """The ``/metrics`` body: the registry's families in TorchServe's text form."""
        return render(self.registry.collect(), names)

    def live_families(self) -> Iterator[Metric]:
        """Gauges read at scrape time from the registered model versions (prometheus mode only)."""
        if self.mode != "prometheus":
            return
        labels = ["model_name", "model_version"]
        depth = GaugeMetricFamily("modelserver_queue_depth", _QUEUE_DEPTH_HELP, labels=labels)
        streams = GaugeMetricFamily("modelserver_inflight_streams", _STREAMS_HELP, labels=labels)
        for version in self._versions():
            values = [version.spec.name, version.spec.version]
            depth.add_metric(values, float(version.queue.pending))
            streams.add_metric(values, float(version.metrics.streams))
        yield depth
        yield streams


_QUEUE_DEPTH_HELP = "Jobs waiting for a worker: queued, or taken by a busy worker that has not started them."
_STREAMS_HELP = "Streamed (chunked) inference responses being sent."

# The frontend metrics this server records, with TorchServe's label names (the hostname label is last).
_FRONTEND_LABELS: Mapping[str, tuple[str, ...]] = MappingProxyType(
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
_FRONTEND_COUNTERS = frozenset({"Requests2XX", "Requests4XX", "Requests5XX"} | LEGACY_METRICS)


def _detected_spec(metric: BackendMetric) -> MetricSpec:
    """An undeclared metric, registered as TorchServe auto-detects it: its own type (counter if none) and unit."""
    kind = metric.kind if metric.kind in KINDS else "counter"
    return MetricSpec(metric.name, kind, metric.unit, tuple(k for k, _ in metric.dimensions))


def _valid_family(name: str, labels: Iterable[str], frontend: Mapping[str, Family]) -> bool:
    label_list = list(labels)
    return (
        _PROMETHEUS_NAME.fullmatch(name) is not None
        and name not in frontend
        and all(_LABEL_NAME.fullmatch(label) for label in label_list)
        and len(set(label_list)) == len(label_list)
    )


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
