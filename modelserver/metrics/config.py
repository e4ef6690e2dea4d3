"""What the metrics are told to do: the metrics yaml (which metrics exist, their units and dimensions) and the
``config.properties`` keys about metrics, resolved once into :class:`MetricsSettings`.

This module is the bottom of the package: constants every other module shares (modes, log file names, the metric
kinds) and parsing, with no metric objects. A bad value is never fatal here: TorchServe logs it and falls back to its
default, and so do we.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import ServerConfig

# One logger for the whole package, named as before the package was split (the server log prints the name).
logger = logging.getLogger("modelserver.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MODES = ("log", "prometheus", "legacy")
# The frontend families that ``legacy`` mode puts on ``/metrics`` (every other metric is logged).
LEGACY_METRICS = frozenset(
    {"ts_inference_requests_total", "ts_inference_latency_microseconds", "ts_queue_latency_microseconds"}
)
TS_METRICS_LOG = "ts_metrics.log"
MODEL_METRICS_LOG = "model_metrics.log"
KINDS = ("counter", "gauge", "histogram")

# Angel Serving's ``--count_distribution_bucket`` default: the summary's latency buckets in milliseconds.
DEFAULT_SUMMARY_BUCKETS_MS = (5, 10, 15)
_SUMMARY_BUCKETS = re.compile(r"\s*([0-9]+)\s*,\s*([0-9]+)\s*,\s*([0-9]+)\s*")

# TorchServe's ts/configs/metrics.yaml, without OpenSessions (gRPC) and the GPU metrics of hosts without GPUs: the
# document as yaml.safe_load reads it, written as data so that a start without a metrics yaml never imports yaml.
_LEVEL_HOST = ["Level", "Hostname"]
_REQUEST_LABELS = ["model_name", "model_version", "hostname"]
DEFAULT_METRICS_DOCUMENT: dict[str, Any] = {
    "dimensions": ["ModelName", "WorkerName", "Level", "Hostname"],
    "ts_metrics": {
        "counter": [
            {"name": "Requests2XX", "unit": "Count", "dimensions": _LEVEL_HOST},
            {"name": "Requests4XX", "unit": "Count", "dimensions": _LEVEL_HOST},
            {"name": "Requests5XX", "unit": "Count", "dimensions": _LEVEL_HOST},
            {"name": "ts_inference_requests_total", "unit": "Count", "dimensions": _REQUEST_LABELS},
            {"name": "ts_inference_latency_microseconds", "unit": "Microseconds", "dimensions": _REQUEST_LABELS},
            {"name": "ts_queue_latency_microseconds", "unit": "Microseconds", "dimensions": _REQUEST_LABELS},
        ],
        "gauge": [
            {"name": "QueueTime", "unit": "Milliseconds", "dimensions": _LEVEL_HOST},
            {"name": "WorkerThreadTime", "unit": "Milliseconds", "dimensions": _LEVEL_HOST},
            {"name": "WorkerLoadTime", "unit": "Milliseconds", "dimensions": ["WorkerName", *_LEVEL_HOST]},
            {"name": "CPUUtilization", "unit": "Percent", "dimensions": _LEVEL_HOST},
            {"name": "MemoryUsed", "unit": "Megabytes", "dimensions": _LEVEL_HOST},
            {"name": "MemoryAvailable", "unit": "Megabytes", "dimensions": _LEVEL_HOST},
            {"name": "MemoryUtilization", "unit": "Percent", "dimensions": _LEVEL_HOST},
            {"name": "DiskUsage", "unit": "Gigabytes", "dimensions": _LEVEL_HOST},
            {"name": "DiskUtilization", "unit": "Percent", "dimensions": _LEVEL_HOST},
            {"name": "DiskAvailable", "unit": "Gigabytes", "dimensions": _LEVEL_HOST},
        ],
    },
    "model_metrics": {
        "gauge": [
            {"name": "HandlerTime", "unit": "ms", "dimensions": ["ModelName", "Level"]},
            {"name": "PredictionTime", "unit": "ms", "dimensions": ["ModelName", "Level"]},
        ],
    },
}


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
    """Read TorchServe's metrics yaml format; raises ValueError when it is not that shape (yaml.YAMLError when it is
    not yaml)."""
    import yaml

    return metrics_config_of(yaml.safe_load(text) or {})


def metrics_config_of(document: Any) -> MetricsConfig:
    """The declarations of a metrics yaml document as read; raises ValueError when it is not that shape."""
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


DEFAULT_METRICS_CONFIG = metrics_config_of(DEFAULT_METRICS_DOCUMENT)


def load_metrics_config(path: str | None) -> MetricsConfig:
    """``metrics_config``: the yaml at ``path``; TorchServe's defaults when unset, or (with an error) unreadable."""
    if not path:
        return DEFAULT_METRICS_CONFIG
    import yaml

    try:
        return parse_metrics_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:
        logger.error("Failed to load metrics configuration %s: %s; using the default metrics", path, err)
        return DEFAULT_METRICS_CONFIG


@dataclass(frozen=True)
class MetricsSettings:
    """The configuration keys about metrics, resolved.

    ``summary_buckets_ms`` are the three latency bounds (milliseconds, inclusive) of the per-version summary's
    distribution, Angel Serving's ``count_distribution_bucket``.
    """

    mode: str = "log"
    api_enabled: bool = True
    auto_detect: bool = False
    system_metrics: bool = True
    interval: float = 60.0
    location: str = "logs"
    config: MetricsConfig = DEFAULT_METRICS_CONFIG
    summary_buckets_ms: tuple[int, int, int] = DEFAULT_SUMMARY_BUCKETS_MS

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
            summary_buckets_ms=parse_summary_buckets(props.get("count_distribution_bucket")),
        )


def parse_summary_buckets(value: str | None) -> tuple[int, int, int]:
    """``count_distribution_bucket``: exactly three strictly ascending positive integers, ``"5,10,15"`` (spaces
    allowed). Anything else is logged once and the default is used, as Angel Serving falls back to its default."""
    if value is None:
        return DEFAULT_SUMMARY_BUCKETS_MS
    match = _SUMMARY_BUCKETS.fullmatch(value)
    if match is not None:
        first, second, third = (int(group) for group in match.groups())
        if 0 < first < second < third:
            return first, second, third
    default = ",".join(str(bound) for bound in DEFAULT_SUMMARY_BUCKETS_MS)
    logger.warning(
        'Invalid count_distribution_bucket "%s": expected three ascending positive integers such as "5,10,15"; '
        'using "%s"',
        value,
        default,
    )
    return DEFAULT_SUMMARY_BUCKETS_MS


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
