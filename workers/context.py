"""A TorchServe-compatible ``Context`` for handlers, plus the per-batch hooks our runner needs.

Handlers written for TorchServe read and write the context directly (``context.request_ids``,
``context.system_properties["model_dir"]``, ``context.set_response_header(...)``), so the public
surface mirrors ``ts/context.py``. Everything prefixed with ``_`` is ours: the runner binds a batch
(job ids, the cancel check, the intermediate-response sender) so that streaming and cancellation
work without the handler knowing about our socket protocol.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

TS_COMPAT_VERSION = "0.12.0"
"""The TorchServe release whose handler API we follow; reported as ``server_version``."""

IntermediateSender = Callable[[Sequence[Any], Mapping[int, Any], str, int], None]
"""``(ret_list, request_id_map, message, code)``: sends one streamed piece per listed request."""


class RequestProcessor:
    """Per-request request headers and response status/headers, as TorchServe's RequestProcessor."""

    def __init__(self, request_header: dict[str, Any]) -> None:
        self._status_code: int | None = 200
        self._reason_phrase: str | None = None
        self._response_header: dict[str, Any] = {}
        self._request_header = request_header

    def get_request_property(self, key: str) -> Any:
        return self._request_header.get(key)

    def get_request_properties(self) -> dict[str, Any]:
        return self._request_header

    # Friendlier aliases some handlers use.
    get_request_header = get_request_property
    get_request_headers = get_request_properties

    def report_status(self, code: int | None, reason_phrase: str | None = None) -> None:
        self._status_code = code
        self._reason_phrase = reason_phrase

    def get_response_status_code(self) -> int | None:
        return self._status_code

    def get_response_status_phrase(self) -> str | None:
        return self._reason_phrase

    def add_response_property(self, key: str, value: Any) -> None:
        self._response_header[key] = value

    def get_response_headers(self) -> dict[str, Any]:
        return self._response_header

    def get_response_header(self, key: str) -> Any:
        return self._response_header.get(key)


class _EmittedMetric:
    """A named metric with fixed unit, type and dimension names, as returned by ``add_metric_to_cache``."""

    def __init__(self, sink: Metrics, name: str, unit: str, dimension_names: list[str], metric_type: Any) -> None:
        self.metric_name = name
        self.unit = unit
        self.dimension_names = list(dimension_names)
        self.metric_type = metric_type
        self._sink = sink

    def add_or_update(self, value: float, dimension_values: Sequence[Any] = (), request_id: str = "") -> None:
        if len(dimension_values) != len(self.dimension_names):
            print(
                f"[METRICS]Failed to update metric with name:{self.metric_name}: dimension values "
                f"{list(dimension_values)} do not match names {self.dimension_names}",
                file=sys.stderr,
            )
            return
        dims = [f"{n}:{v}" for n, v in zip(self.dimension_names, dimension_values, strict=True)]
        self._sink.emit(self.metric_name, self.unit, value, dims, self.metric_type, request_id)

    def update(self, value: float, request_id: str = "", dimensions: Sequence[Any] = ()) -> None:
        self.dimension_names = [d.name for d in dimensions]
        self.add_or_update(value, [d.value for d in dimensions], request_id)


class Metrics:
    """TorchServe's backend metrics API, printing ``[METRICS]...`` lines to stdout for the frontend to pick up.

    Line format: ``[METRICS]Name.Unit:value|#Dim:val,...|#type:GAUGE|#hostname:h,timestamp[,request_id]``.
    """

    def __init__(self, model_name: str, stream: TextIO | None = None) -> None:
        self.model_name = model_name
        self.request_ids: Mapping[int, str] | None = None
        self._stream = stream
        self._cache: dict[tuple[str, str], _EmittedMetric] = {}

    def set_request_ids(self, request_ids: Mapping[int, str] | None) -> None:
        self.request_ids = request_ids

    def add_metric(
        self,
        name: str,
        value: float,
        unit: str,
        idx: Any = None,
        dimensions: Sequence[Any] = (),
        metric_type: Any = "COUNTER",
    ) -> None:
        self._record(name, value, unit, idx, dimensions, metric_type)

    def add_counter(self, name: str, value: float, idx: Any = None, dimensions: Sequence[Any] = ()) -> None:
        self._record(name, value, "count", idx, dimensions, "COUNTER")

    def add_time(
        self,
        name: str,
        value: float,
        idx: Any = None,
        unit: str = "ms",
        dimensions: Sequence[Any] = (),
        metric_type: Any = "GAUGE",
    ) -> None:
        if unit not in ("ms", "s"):
            raise ValueError("the unit for a timed metric should be one of ['ms', 's']")
        self._record(name, value, unit, idx, dimensions, metric_type)

    def add_size(
        self,
        name: str,
        value: float,
        idx: Any = None,
        unit: str = "MB",
        dimensions: Sequence[Any] = (),
        metric_type: Any = "GAUGE",
    ) -> None:
        if unit not in ("MB", "kB", "GB", "B"):
            raise ValueError("The unit for size based metric is one of ['MB','kB', 'GB', 'B']")
        self._record(name, value, unit, idx, dimensions, metric_type)

    def add_percent(
        self, name: str, value: float, idx: Any = None, dimensions: Sequence[Any] = (), metric_type: Any = "GAUGE"
    ) -> None:
        self._record(name, value, "percent", idx, dimensions, metric_type)

    def add_error(self, name: str, value: float, dimensions: Sequence[Any] = ()) -> None:
        self.emit(name, "", value, self._dimensions(dimensions, None), "COUNTER", "")

    def add_metric_to_cache(
        self, metric_name: str, unit: str, dimension_names: Sequence[str] = (), metric_type: Any = "COUNTER"
    ) -> _EmittedMetric:
        metric = _EmittedMetric(self, metric_name, unit, list(dimension_names), metric_type)
        self._cache[(metric_name, _type_name(metric_type))] = metric
        return metric

    def get_metric(self, metric_name: str, metric_type: Any = "COUNTER") -> _EmittedMetric:
        try:
            return self._cache[(metric_name, _type_name(metric_type))]
        except KeyError:
            raise KeyError(f"Metric {metric_name} of type {_type_name(metric_type)} does not exist.") from None

    def emit(self, name: str, unit: str, value: float, dims: Sequence[str], metric_type: Any, request_id: str) -> None:
        """Print one metric line; the request id (if any) trails the timestamp, as in TorchServe."""
        line = (
            f"[METRICS]{name}.{unit}:{value}|#{','.join(dims)}|#type:{_type_name(metric_type)}"
            f"|#hostname:{socket.gethostname()},{int(time.time())}"
        )
        if request_id:
            line = f"{line},{request_id}"
        print(line, file=self._stream or sys.stdout, flush=True)

    def _record(
        self, name: str, value: float, unit: str, idx: Any, dimensions: Sequence[Any], metric_type: Any
    ) -> None:
        request_id = self._request_id_for(idx)
        self.emit(name, unit, value, self._dimensions(dimensions, request_id), metric_type, request_id or "")

    def _dimensions(self, dimensions: Sequence[Any], request_id: str | None) -> list[str]:
        """Add TorchServe's default dimensions: ``ModelName`` and ``Level:Model`` in a batch, else ``Level:Error``."""
        dims = [_dimension_text(d) for d in dimensions]
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


def _type_name(metric_type: Any) -> str:
    return str(getattr(metric_type, "name", metric_type)).upper()


def _dimension_text(dimension: Any) -> str:
    """A ``ts.metrics.dimension.Dimension``-like object (``.name``/``.value``) or a ready ``"Name:value"`` string."""
    if hasattr(dimension, "name") and hasattr(dimension, "value"):
        return f"{dimension.name}:{dimension.value}"
    return str(dimension)


@dataclass
class BatchBinding:
    """What the runner attaches to the context for the duration of one ``handle`` call."""

    job_ids: list[int]
    cancelled: Callable[[int], bool]
    send_intermediate: IntermediateSender


class Context:
    """The object handed to ``initialize(context)`` and ``handle(data, context)``."""

    def __init__(
        self,
        model_name: str,
        model_dir: str,
        manifest: dict[str, Any] | None,
        batch_size: int,
        gpu: int | None,
        mms_version: str = TS_COMPAT_VERSION,
        limit_max_image_pixels: bool = True,
        metrics: Any = None,
        model_yaml_config: dict[str, Any] | None = None,
    ) -> None:
        self.model_name = model_name
        self.manifest = manifest
        self._system_properties = {
            "model_dir": model_dir,
            "gpu_id": gpu,
            "batch_size": batch_size,
            "server_name": "MMS",
            "server_version": mms_version,
            "limit_max_image_pixels": limit_max_image_pixels,
        }
        self._request_ids: dict[int, str] | None = None
        self._request_processor: list[RequestProcessor] | None = None
        self._limit_max_image_pixels = True
        self.metrics = metrics if metrics is not None else Metrics(model_name)
        self.model_yaml_config = model_yaml_config if model_yaml_config is not None else {}
        self.cl_socket = None
        self.stopping_criteria = None
        self._batch: BatchBinding | None = None

    @property
    def system_properties(self) -> dict[str, Any]:
        return self._system_properties

    @property
    def request_ids(self) -> dict[int, str] | None:
        """``{idx: request_id}`` for the batch being handled (None at load time)."""
        return self._request_ids

    @request_ids.setter
    def request_ids(self, request_ids: dict[int, str] | None) -> None:
        self._request_ids = request_ids

    @property
    def request_processor(self) -> list[RequestProcessor] | None:
        return self._request_processor

    @request_processor.setter
    def request_processor(self, request_processor: list[RequestProcessor] | None) -> None:
        self._request_processor = request_processor

    def get_request_id(self, idx: int = 0) -> str | None:
        if self._request_ids is None:
            return None
        return self._request_ids.get(idx)

    def get_request_header(self, idx: int, key: str) -> Any:
        return self._processor(idx).get_request_property(key)

    def get_all_request_header(self, idx: int) -> dict[str, Any]:
        return self._processor(idx).get_request_properties()

    def get_sequence_id(self, idx: int) -> str | None:
        """Stateful (sequence) inference id; TorchServe carries it as request header ``ts_request_sequence_id``."""
        return self._processor(idx).get_request_property("ts_request_sequence_id")

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.set_response_header(idx, "content-type", value)

    def get_response_content_type(self, idx: int) -> str | None:
        return self.get_response_headers(idx).get("content-type")

    def get_response_status(self, idx: int) -> tuple[int | None, str | None]:
        processor = self._processor(idx)
        return processor.get_response_status_code(), processor.get_response_status_phrase()

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        if self._request_processor is not None and self._request_processor[idx] is not None:
            self._request_processor[idx].report_status(code, reason_phrase=phrase)

    def set_all_response_status(self, code: int = 200, phrase: str = "") -> None:
        for processor in self._request_processor or []:
            processor.report_status(code, reason_phrase=phrase)

    def get_response_headers(self, idx: int) -> dict[str, Any]:
        return self._processor(idx).get_response_headers()

    def set_response_header(self, idx: int, key: str, value: Any) -> None:
        self._processor(idx).add_response_property(key, value)

    def is_cancelled(self, idx: int = 0) -> bool:
        """True once the client of request ``idx`` in the current batch has gone away (our addition)."""
        batch = self._batch
        if batch is None or not 0 <= idx < len(batch.job_ids):
            return False
        return bool(batch.cancelled(batch.job_ids[idx]))

    def _processor(self, idx: int) -> RequestProcessor:
        if self._request_processor is None:
            raise RuntimeError("No request is being handled: request headers are only available inside handle()")
        return self._request_processor[idx]

    # -- runner hooks (not part of TorchServe's API) ------------------------------------------------

    def _bind_batch(
        self, request_ids: dict[int, str], processors: list[RequestProcessor], binding: BatchBinding
    ) -> None:
        """Start a batch: fresh request ids, request headers and response state, plus our hooks."""
        self._request_ids = request_ids
        self._request_processor = processors
        self._batch = binding
        if hasattr(self.metrics, "request_ids"):
            self.metrics.request_ids = request_ids

    def _unbind_batch(self) -> None:
        """End a batch; response state stays readable (as in TorchServe) but streaming no longer works."""
        self._batch = None

    def _send_intermediate(
        self, ret: Sequence[Any], request_id_map: Mapping[int, Any], message: str, code: int
    ) -> None:
        if self._batch is None:
            raise RuntimeError("send_intermediate_predict_response() can only be called while handle() runs")
        self._batch.send_intermediate(ret, request_id_map, message, code)
