"""TorchServe's backend metrics API (``context.metrics``, ``ts.metrics.*``), printing ``[METRICS]`` lines.

The worker's stdout goes to the frontend, which takes these lines out of it (``modelserver.metrics``). Line
format: ``[METRICS]Name.Unit:value|#Dim:val,...|#type:GAUGE|#hostname:h,timestamp[,request_id]``.

:class:`Metrics` is what ``context.metrics`` is, whichever ``ts`` package a handler imports: it takes metric types
as TorchServe's ``MetricTypes`` members (the real package's or the shim's) or as names, and its errors are the
``ts.metrics.metric_cache_errors`` classes of the ``ts`` that is importable, so ``except MetricsCacheKeyError``
works either way. The shim's ``ts.metrics`` modules re-export the names defined here.
"""

from __future__ import annotations

import enum
import importlib
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO


class MetricTypes(enum.Enum):
    """``ts.metrics.metric_type_enum.MetricTypes``."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Dimension:
    """``ts.metrics.dimension.Dimension``: a ``name:value`` pair attached to a metric."""

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.value = value

    def __str__(self) -> str:
        return f"{self.name}:{self.value}"

    def to_dict(self) -> dict[str, Any]:
        return {"Name": self.name, "Value": self.value}


class GeneralMetricsCacheError(Exception):
    """``ts.metrics.metric_cache_errors``: any other failure of the metrics cache."""


class MetricsCacheIOError(IOError):
    """The metrics YAML file cannot be read."""


class MetricsCachePyYamlError(Exception):
    """The metrics YAML file cannot be parsed."""


class MetricsCacheTypeError(TypeError):
    """A metric name, unit or type of the wrong type."""


class MetricsCacheValueError(ValueError):
    """A value the metrics API refuses (say a time unit other than ``ms``/``s``)."""


class MetricsCacheKeyError(KeyError):
    """No such metric in the cache, or a YAML section missing."""


def ts_error(name: str) -> type[Exception]:
    """The error class ``name`` of the importable ``ts.metrics.metric_cache_errors`` (the real one wins), else ours.

    Looked up when raising, so importing the real package's metrics modules costs nothing on the success path."""
    try:
        cls = getattr(importlib.import_module("ts.metrics.metric_cache_errors"), name)
    except Exception:  # no ts at all, or a ts without these names
        cls = None
    return cls if isinstance(cls, type) and issubclass(cls, Exception) else globals()[name]


def type_name(metric_type: Any) -> str:
    """``COUNTER``/``GAUGE``/``HISTOGRAM`` for a ``MetricTypes`` member of either package, or for a name."""
    return str(getattr(metric_type, "name", metric_type)).upper()


def dimension_text(dimension: Any) -> str:
    """A ``Dimension``-like object (``.name``/``.value``) or a ready ``"Name:value"`` string."""
    if hasattr(dimension, "name") and hasattr(dimension, "value"):
        return f"{dimension.name}:{dimension.value}"
    return str(dimension)


class CachingMetric:
    """``ts.metrics.caching_metric.CachingMetric``: a metric with fixed unit, type and dimension names."""

    def __init__(
        self,
        metric_name: str,
        unit: str,
        dimension_names: Sequence[str] | None = None,
        metric_type: Any = MetricTypes.COUNTER,
        stream: TextIO | None = None,
    ) -> None:
        self.metric_name = metric_name
        self.unit = unit
        self.dimension_names = list(dimension_names or [])
        self.metric_type = metric_type
        self._stream = stream

    def add_or_update(self, value: float, dimension_values: Sequence[Any] = (), request_id: str = "") -> None:
        """Print one line; dimension values must match the names, and a counter never goes down (else no line)."""
        problem = None
        if len(dimension_values) != len(self.dimension_names):
            problem = f"dimension values {list(dimension_values)} do not match names {self.dimension_names}"
        elif type_name(self.metric_type) == "COUNTER" and value < 0:
            problem = "Counter metric update value cannot be negative"
        if problem is not None:
            print(f"[METRICS]Failed to update metric with name:{self.metric_name}: {problem}", file=sys.stderr)
            return
        dims = [f"{n}:{v}" for n, v in zip(self.dimension_names, dimension_values, strict=True)]
        emit_line(self._stream, self.metric_name, self.unit, value, dims, self.metric_type, request_id)

    def update(self, value: float, request_id: str = "", dimensions: Sequence[Any] = ()) -> None:
        """TorchServe's older call: the dimensions given here replace the metric's dimension names."""
        self.dimension_names = [d.name for d in dimensions]
        self.add_or_update(value, [d.value for d in dimensions], request_id)


def emit_line(
    stream: TextIO | None, name: str, unit: str, value: float, dims: Sequence[str], metric_type: Any, request_id: str
) -> None:
    """Print one metric line; the request id (if any) trails the timestamp, as in TorchServe."""
    line = (
        f"[METRICS]{name}.{unit}:{value}|#{','.join(dims)}|#type:{type_name(metric_type)}"
        f"|#hostname:{socket.gethostname()},{int(time.time())}"
    )
    if request_id:
        line = f"{line},{request_id}"
    print(line, file=stream or sys.stdout, flush=True)


class Metrics:
    """``context.metrics``: TorchServe's ``MetricCacheAbstract`` API (``add_*``, ``add_metric_to_cache``,
    ``get_metric``), each call printing its line at once."""

    def __init__(self, model_name: str | None = None, stream: TextIO | None = None) -> None:
        self.model_name = model_name
        self.request_ids: Mapping[int, str] | None = None
        self.cache: dict[tuple[str, str], CachingMetric] = {}
        self._stream = stream

    def set_request_ids(self, request_ids: Mapping[int, str] | None) -> None:
        self.request_ids = request_ids

    def add_metric(
        self,
        name: str,
        value: float,
        unit: str,
        idx: Any = None,
        dimensions: Sequence[Any] = (),
        metric_type: Any = MetricTypes.COUNTER,
    ) -> None:
        self._record(name, value, unit, idx, dimensions, metric_type)

    def add_counter(self, name: str, value: float, idx: Any = None, dimensions: Sequence[Any] = ()) -> None:
        self._record(name, value, "count", idx, dimensions, MetricTypes.COUNTER)

    def add_time(
        self,
        name: str,
        value: float,
        idx: Any = None,
        unit: str = "ms",
        dimensions: Sequence[Any] = (),
        metric_type: Any = MetricTypes.GAUGE,
    ) -> None:
        if unit not in ("ms", "s"):
            raise ts_error("MetricsCacheValueError")("the unit for a timed metric should be one of ['ms', 's']")
        self._record(name, value, unit, idx, dimensions, metric_type)

    def add_size(
        self,
        name: str,
        value: float,
        idx: Any = None,
        unit: str = "MB",
        dimensions: Sequence[Any] = (),
        metric_type: Any = MetricTypes.GAUGE,
    ) -> None:
        if unit not in ("MB", "kB", "GB", "B"):
            raise ValueError("The unit for size based metric is one of ['MB','kB', 'GB', 'B']")
        self._record(name, value, unit, idx, dimensions, metric_type)

    def add_percent(
        self,
        name: str,
        value: float,
        idx: Any = None,
        dimensions: Sequence[Any] = (),
        metric_type: Any = MetricTypes.GAUGE,
    ) -> None:
        self._record(name, value, "percent", idx, dimensions, metric_type)

    def add_error(self, name: str, value: float, dimensions: Sequence[Any] = ()) -> None:
        emit_line(self._stream, name, "", value, self._dimensions(dimensions, None), MetricTypes.COUNTER, "")

    def add_metric_to_cache(
        self,
        metric_name: str,
        unit: str,
        dimension_names: Sequence[str] = (),
        metric_type: Any = MetricTypes.COUNTER,
    ) -> CachingMetric:
        """A metric to ``add_or_update`` later; one of the same name and type is replaced."""
        metric = CachingMetric(metric_name, unit, list(dimension_names), metric_type, self._stream)
        self.cache[(metric_name, type_name(metric_type))] = metric
        return metric

    def get_metric(self, metric_name: str, metric_type: Any = MetricTypes.COUNTER) -> CachingMetric:
        try:
            return self.cache[(metric_name, type_name(metric_type))]
        except KeyError:
            message = f"Metric of type '{type_name(metric_type)}' and name '{metric_name}' doesn't exist"
            raise ts_error("MetricsCacheKeyError")(message) from None

    def initialize_cache(self) -> None:
        """Nothing to read: metrics declared in the model's YAML are known to the frontend."""

    def cache_keys(self) -> list[str]:
        return [f"{kind.lower()}:{name}" for name, kind in self.cache]

    def _record(
        self, name: str, value: float, unit: str, idx: Any, dimensions: Sequence[Any], metric_type: Any
    ) -> None:
        request_id = self._request_id_for(idx)
        dims = self._dimensions(dimensions, request_id)
        emit_line(self._stream, name, unit, value, dims, metric_type, request_id or "")

    def _dimensions(self, dimensions: Sequence[Any], request_id: str | None) -> list[str]:
        """Add TorchServe's default dimensions: ``ModelName`` and ``Level:Model`` in a batch, else ``Level:Error``."""
        dims = [dimension_text(d) for d in dimensions]
        names = {d.split(":", 1)[0] for d in dims}
        defaults = [("Level", "Error")] if request_id is None else [("ModelName", self.model_name), ("Level", "Model")]
        return dims + [f"{key}:{val}" for key, val in defaults if key not in names]

    def _request_id_for(self, idx: Any) -> str | None:
        """TorchServe tags a metric with the request at ``idx``, else with every request id of the batch."""
        ids = self.request_ids
        if ids is None:
            return None
        if idx is not None and idx in ids:
            return str(ids[idx])
        return ",".join(str(v) for v in ids.values())


class MetricsCacheYamlImpl(Metrics):
    """``ts.metrics.metric_cache_yaml_impl.MetricsCacheYamlImpl``: a :class:`Metrics` whose ``initialize_cache``
    declares the ``model_metrics`` of a TorchServe metrics YAML file (``counter: [{name, unit, dimensions}]``...)."""

    def __init__(self, config_file_path: str, model_name: str | None = None, stream: TextIO | None = None) -> None:
        super().__init__(model_name, stream)
        self.config_file_path = config_file_path
        self._parsed = self._read(config_file_path)

    @staticmethod
    def _read(path: str) -> Any:
        import yaml  # a dependency of ours; imported only by handlers that read metric YAML themselves

        if not path:
            raise ts_error("MetricsCacheTypeError")("Config file not initialized")
        try:
            with open(path, encoding="utf-8") as file:
                return yaml.safe_load(file)
        except yaml.YAMLError as exc:
            raise ts_error("MetricsCachePyYamlError")(f"Error parsing file {path}: {exc}") from exc
        except OSError as exc:
            raise ts_error("MetricsCacheIOError")(f"Error reading file {path}: {exc}") from exc

    def initialize_cache(self) -> None:
        section = self._parsed.get("model_metrics") if isinstance(self._parsed, dict) else None
        if not section:
            raise ts_error("MetricsCacheValueError")("Missing `model_metrics` specification")
        for kind, entries in section.items():
            try:
                metric_type = MetricTypes(kind)
            except ValueError as exc:
                raise ts_error("MetricsCacheKeyError")(f"Invalid metric type: {exc}") from exc
            for entry in entries or []:
                try:
                    self.add_metric_to_cache(entry["name"], entry["unit"], entry["dimensions"], metric_type)
                except (KeyError, TypeError) as exc:
                    raise ts_error("MetricsCacheKeyError")(f"Key not found in cache spec: {exc}") from exc


MetricCacheAbstract = Metrics
"""``ts.metrics.metric_cache_abstract.MetricCacheAbstract``: the API handlers program against."""
