"""The ``[METRICS]`` lines a worker prints (``context.metrics.add_*`` in a handler), parsed as TorchServe does.

:func:`parse_metric_line` turns the text after ``[METRICS]`` into a :class:`BackendMetric`; :func:`detected_spec`
and :func:`valid_prometheus_family` are TorchServe's rules for an undeclared metric and for what Prometheus
accepts. Deciding what is recorded where is the server's job (:meth:`modelserver.metrics.ServerMetrics.backend_line`).
The worker side imports :data:`METRIC_LINE_PREFIXES` to take these lines out of a worker's output.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass

from .config import KINDS, MetricSpec

METRIC_LINE_PREFIXES = ("[METRICS]", "INFO > [METRICS]")

# TorchServe's Metric.PATTERN: Name.Unit:value|#Dim:v,...[|#type:TYPE]|#hostname:host,timestamp[,request ids]
_METRIC_LINE = re.compile(
    r"\s*([\w\s]+)\.([\w\s]+):([0-9\-,.eE+]+)\|#([^|]*)(?:\|#type:([^|,]+))?\|#hostname:([^,]+),([^,]+)(?:,(.*))?"
)
_PROMETHEUS_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


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


def detected_spec(metric: BackendMetric) -> MetricSpec:
    """An undeclared metric, registered as TorchServe auto-detects it: its own type (counter if none) and unit."""
    kind = metric.kind if metric.kind in KINDS else "counter"
    return MetricSpec(metric.name, kind, metric.unit, tuple(k for k, _ in metric.dimensions))


def valid_prometheus_family(name: str, labels: Iterable[str], taken: Container[str]) -> bool:
    """Whether Prometheus accepts this family: valid metric and label names, no label twice, a name not ``taken``
    (by a frontend family)."""
    label_list = list(labels)
    return (
        _PROMETHEUS_NAME.fullmatch(name) is not None
        and name not in taken
        and all(_LABEL_NAME.fullmatch(label) for label in label_list)
        and len(set(label_list)) == len(label_list)
    )
