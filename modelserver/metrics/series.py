"""Metric values and families: what the request path updates, and what a scrape turns into prometheus-client
families.

A :class:`Series` is one labelled value. The request path holds series it looked up once (per model version, per
worker) and calls ``update``, so an update is a few attribute writes with no label lookup: :class:`Counter` adds,
:class:`Gauge` sets, :class:`Histogram` counts a bucket, :class:`LogSeries` queues a metric log line, and
:data:`NULL_SERIES` drops the value (a metric that is not recorded in this mode or not declared).

A :class:`Family` is a metric's name, type, help, label names and where it goes (``prometheus``, ``log`` or
``off``); it makes its children on first use and, at scrape time, hands each child to the prometheus-client family
through :meth:`Series.export`. Series that are not updated per request but read from other numbers at scrape time
(:mod:`modelserver.metrics.version`) plug in the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from time import time as wall_time
from typing import TYPE_CHECKING, Final

from .metric_log import CHUNK_LINES, LineText, MetricLog

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

# TorchServe's Java client registers histograms with simpleclient's default buckets.
DEFAULT_BUCKETS: Final[tuple[float, ...]] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


class Series:
    """One labelled value; ``update`` is TorchServe's ``addOrUpdate``. This base class drops the value."""

    __slots__ = ()

    def update(self, value: float) -> None:
        """Counters add, gauges set, histograms observe, log series record a line."""

    def export(self, family: Metric, values: Sequence[str]) -> None:
        """Add this series' sample(s) to a prometheus-client family at scrape time; this base class has none."""


NULL_SERIES: Final = Series()


class Counter(Series):
    __slots__ = ("updated", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.updated = False

    def update(self, value: float) -> None:
        self.value += value
        self.updated = True

    def export(self, family: Metric, values: Sequence[str]) -> None:
        family.add_metric(values, self.value)  # type: ignore[attr-defined]


class Gauge(Series):
    __slots__ = ("updated", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.updated = False

    def update(self, value: float) -> None:
        self.value = value
        self.updated = True

    def export(self, family: Metric, values: Sequence[str]) -> None:
        family.add_metric(values, self.value)  # type: ignore[attr-defined]


def bucket_of(bounds: tuple[float, ...], value: float) -> int:
    """``bisect.bisect_left(bounds, value)``: the first bound not below ``value`` (a bound is inclusive, Prometheus'
    ``le``), ``len(bounds)`` for the overflow. Compiled, a scan from the smallest bound (where a request's latency
    falls) is a few comparisons of doubles; ``bisect_left`` is a call with its arguments parsed."""
    index = 0
    for bound in bounds:
        if not bound < value:
            return index
        index += 1
    return index


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
        self.counts[bucket_of(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        return cumulative_buckets(self.bounds, self.counts)

    def export(self, family: Metric, values: Sequence[str]) -> None:
        family.add_metric(values, self.buckets(), self.sum)  # type: ignore[attr-defined]


def cumulative_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (one more than ``bounds``: the last is ``+Inf``) as prometheus-client's cumulative
    ``(le, count)`` pairs."""
    from .families import floatToGoString

    cumulative, total = [], 0
    for bound, count in zip((*bounds, math.inf), counts, strict=True):
        total += count
        cumulative.append((floatToGoString(bound), float(total)))
    return cumulative


class LogSeries(Series):
    """A metric in log mode: each update becomes a line ``Name.Unit:value|#Dim:v,...|#hostname:h,timestamp:t``.

    An update only records the time and value in its :class:`MetricLog`; the lines are formatted later.
    """

    __slots__ = ("_log", "_sources", "_times", "_values", "text")

    def __init__(self, log: MetricLog, name: str, unit: str, dimensions: Iterable[tuple[str, str]], host: str) -> None:
        self._log = log
        self._times, self._values, self._sources = log.pending()
        dims = ",".join(f"{k}:{v}" for k, v in dimensions)
        self.text = LineText(f"{name}.{unit}:", f"|#{dims}|#hostname:{host}")

    def update(self, value: float) -> None:
        self._times.append(wall_time())  # compiled, a list's append is a C call (a bound method's, a Python call)
        self._values.append(value)
        sources = self._sources
        sources.append(self.text)
        if len(sources) == CHUNK_LINES:
            self._log.chunk_full()


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

    def adopt(self, values: tuple[str, ...], series: Series) -> Series:
        """Make ``series`` the child for these label values, unless there is one already (which is returned)."""
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name}: {len(values)} label values for labels {list(self.labels)}")
        return self.children.setdefault(values, series)

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
        from .families import GaugeMetricFamily, HistogramMetricFamily, TorchServeCounter

        if self.kind == "counter":
            family: Metric = TorchServeCounter(self.name, self.help, labels=self.labels, torchserve=self.torchserve)
        elif self.kind == "gauge":
            family = GaugeMetricFamily(self.name, self.help, labels=self.labels)
        else:
            family = HistogramMetricFamily(self.name, self.help, labels=self.labels)
        for values, series in self.children.items():
            if self.torchserve and not getattr(series, "updated", False):
                continue
            series.export(family, values)
        return family


def torchserve_help(kind: str, unit: str) -> str:
    """The help text TorchServe gives every family it declares."""
    return f"Torchserve prometheus {kind} metric with unit: {unit}"
