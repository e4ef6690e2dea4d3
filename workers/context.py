"""A TorchServe-compatible ``Context`` for handlers, plus the per-batch hooks our runner needs.

Handlers written for TorchServe read and write the context directly (``context.request_ids``,
``context.system_properties["model_dir"]``, ``context.set_response_header(...)``), so the public
surface mirrors ``ts/context.py``. Everything prefixed with ``_`` is ours: the runner binds a batch
(job ids, the cancel check, the intermediate-response senders) so that streaming and cancellation
work without the handler knowing about our socket protocol.

``cl_socket`` is TorchServe's name for the worker's socket to its frontend. The real ``torchserve``
package's ``send_intermediate_predict_response`` writes TorchServe's wire bytes to it; ours is a
:class:`StreamSocket` that decodes them (``workers.ts_wire``) and streams the pieces as our frames.
When the real package is importable the handler gets a subclass of its ``ts.context.Context``
(``workers.ts_compat.context_class``), so ``isinstance`` checks hold too.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .backend_metrics import Metrics
from .ts_wire import WireResponse, decode_predict_response

__all__ = ["BatchBinding", "Context", "Metrics", "RequestProcessor", "StreamSocket", "TS_COMPAT_VERSION"]

TS_COMPAT_VERSION = "0.12.0"
"""The TorchServe release whose handler API we follow; reported as ``server_version``."""


class RequestProcessor:
    """Per-request request headers and response status/headers, as TorchServe's RequestProcessor.

    The request headers may be given as a function that makes them: they are made when a handler first reads them,
    and a handler that never does (or reads only the first request's, as ``BaseHandler`` does) costs nothing for the
    others."""

    __slots__ = ("_made", "_make", "_reason_phrase", "_response_header", "_status_code")

    def __init__(
        self, request_header: dict[str, Any] | None = None, make: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self._status_code: int | None = 200
        self._reason_phrase: str | None = None
        self._response_header: dict[str, Any] = {}
        self._made = request_header
        self._make = make

    @property
    def _request_header(self) -> dict[str, Any]:
        made = self._made
        if made is None:
            made = self._made = self._make() if self._make is not None else {}
            self._make = None
        return made

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


class BatchBinding(Protocol):
    """What the runner attaches to the context for the duration of one ``handle`` call (the runner's batch itself)."""

    job_ids: list[int]
    cancelled: Callable[[int], bool]

    def send_intermediate(self, ret: Sequence[Any], req_id_map: Mapping[int, Any], message: str, code: int) -> None:
        """``(ret_list, request_id_map, message, code)``: sends one streamed piece per listed request."""
        ...

    def send_wire(self, response: WireResponse) -> None: ...


class StreamSocket:
    """``context.cl_socket``: takes the TorchServe predict responses the real ``send_intermediate_predict_response``
    writes (one whole response per ``sendall``) and streams their pieces through the context's current batch."""

    def __init__(self, context: Context) -> None:
        self._context = context

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        self._context._send_wire(decode_predict_response(data))

    def send(self, data: bytes | bytearray | memoryview) -> int:
        self.sendall(data)
        return len(data)


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
        self.cl_socket: Any = StreamSocket(self)
        self.stopping_criteria = None
        # TorchServe 0.12 reads the names of its sequence (stateful inference) headers from the environment.
        self.header_key_sequence_id = os.getenv("TS_REQUEST_SEQUENCE_ID", "ts_request_sequence_id")
        self.header_key_sequence_start = os.getenv("TS_REQUEST_SEQUENCE_START", "ts_request_sequence_start")
        self.header_key_sequence_end = os.getenv("TS_REQUEST_SEQUENCE_END", "ts_request_sequence_end")
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
        return self._processor(idx).get_request_property(self.header_key_sequence_id)

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
        # ``code`` as TorchServe's ``struct.pack("!i", code)`` takes it: any integer (a numpy one too) but no float or
        # str. The runner is compiled (mypyc), and an ``int`` parameter there refuses a numpy integer.
        self._batch.send_intermediate(ret, request_id_map, message, operator.index(code))

    def _send_wire(self, response: WireResponse) -> None:
        if self._batch is None:
            raise RuntimeError("context.cl_socket can only be written to while handle() runs")
        self._batch.send_wire(response)
