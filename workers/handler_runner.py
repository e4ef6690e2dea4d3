"""Run one batch of jobs through a loaded handler and answer each job with an item map (docs/protocol.md).

This is TorchServe's ``Service.predict`` plus ``create_predict_response``: the same handler input
(``data`` = one dict per request), the same error statuses and messages, the same encoding of the
returned elements. Failures answer every job of the batch and never take the worker down.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Final

from .context import Context, RequestProcessor
from .json_body import NOT_FAST, fast_loads
from .output_encoding import BatchError, encode_output
from .protocol import header_items
from .runtimes import EmitChunk, IsCancelled
from .streaming import RequestCancelled
from .tensors import Tensor, TensorError
from .ts_wire import WireResponse

logger = logging.getLogger(__name__)


# -- request side ---------------------------------------------------------------------------------

_decode_json = json.JSONDecoder().decode
"""``json.loads`` of a str, without its wrapper's checks (a BOM is refused by the decoder just the same)."""


_BINARY_INPUTS: Final = (bytes, bytearray, memoryview)
_MIME_TYPES: Final[dict[str | None, str]] = {}
"""A request's content type -> its lower-case media type, for the few content types clients send."""
_KEPT_MIME_TYPES: Final = 256


def decode_value(content_type: str | None, value: Any, decode: bool) -> Any:
    """Decode one input as TorchServe's worker does; a value that is not bytes-like passes through. What is not
    decoded reaches the handler as a bytearray, as in TorchServe."""
    if not isinstance(value, _BINARY_INPUTS):
        return value
    if not decode:
        return value if type(value) is bytearray else bytearray(value)  # an attachment is a bytearray of its own
    mime = _MIME_TYPES.get(content_type)
    if mime is None:
        mime = (content_type or "").split(";", 1)[0].strip().lower()
        if len(_MIME_TYPES) < _KEPT_MIME_TYPES:
            _MIME_TYPES[content_type] = mime
    if mime == "application/json":
        if type(value) is not memoryview:
            decoded = fast_loads(value)
            if decoded is not NOT_FAST:
                return decoded
        try:  # as TorchServe's worker does: UTF-8 text, then JSON (a UTF-16 body or a BOM is not JSON to it)
            return _decode_json(str(value, "utf-8"))
        except (ValueError, RecursionError):
            logger.warning("Failed json decoding of input data. Forwarding encoded payload", exc_info=True)
    elif mime.startswith("text"):
        try:
            return str(value, "utf-8")
        except UnicodeDecodeError:
            logger.warning("Failed utf-8 decoding of input data. Forwarding encoded payload", exc_info=True)
    return value if type(value) is bytearray else bytearray(value)


def build_data(job: Mapping[str, Any], decode: bool) -> dict[str, Any]:
    """The handler's view of one request: ``{input name: value}`` (a repeated name: the last one wins), then
    ``{tensor name: numpy array}`` for each tensor of the job (numpy is imported only for a job with tensors)."""
    data = {}
    for name, content_type, value in job.get("inputs") or ():  # a loop: a comprehension is a function made per call
        data[name] = decode_value(content_type, value, decode)
    for wire in job.get("tensors") or ():
        tensor = Tensor.from_wire(wire)
        if type(tensor.data) is bytes:  # small data came inside the frame: give the handler a writable array too
            tensor.data = bytearray(tensor.data)
        data[tensor.name] = tensor.as_numpy()
    return data


def request_headers(job: Mapping[str, Any]) -> dict[str, Any]:
    """Request headers as TorchServe shows them: ``{input name: {"content-type": ct}}`` overlaid by the client's
    headers, then the headers TorchServe's frontend adds for the job's ``method``.

    A client header that merely repeats an input's content type as a plain string keeps TorchServe's nested shape,
    so ``get_request_header(idx, "body")`` returns ``{"content-type": ...}`` either way. ``describe`` gets
    ``describe: "True"``; any other method gets ``url_path`` (the job's, ``""`` when absent) and ``explain``
    (``"True"`` for ``explain``, else ``"False"``), overriding client headers of those names.
    """
    headers: dict[str, Any] = {name: {"content-type": ct} for name, ct, _ in job.get("inputs") or []}
    for key, value in header_items(job.get("headers")):
        current = headers.get(key)
        if not (isinstance(current, dict) and current.get("content-type") == value):
            headers[key] = value
    method = job.get("method") or "predict"
    if method == "describe":
        headers["describe"] = "True"
    else:
        headers["url_path"] = str(job.get("url_path") or "")
        headers["explain"] = "True" if method == "explain" else "False"
    return headers


# -- response side --------------------------------------------------------------------------------


def response_fields(context: Context, idx: int) -> dict[str, Any]:
    """Status, reason, headers and content type the handler set for request ``idx`` (default 200, none)."""
    return _fields(context._processor(idx))


def _fields(processor: Any) -> dict[str, Any]:
    """:func:`response_fields` of one request's processor, read once (its public methods only: a handler may have
    put processors of the real ``ts`` package in the context).

    ``processor`` is typed ``Any`` so that what its methods return is taken as it is: compiled (mypyc), a value
    declared ``int | None`` is checked, and a handler's ``set_response_status(numpy.int64(201))`` failed the batch
    (TorchServe, and ``int(code)`` here, take any integer)."""
    code = processor.get_response_status_code()
    phrase = processor.get_response_status_phrase()
    given = processor.get_response_headers()
    content_type = given.get("content-type")
    return {
        "status": int(code) if code is not None else 200,
        "reason": str(phrase) if phrase else "",  # the frontend's result takes a str (a handler's may be another)
        "headers": {str(k): str(v) for k, v in given.items()} if given else {},
        "content_type": str(content_type) if content_type else "",
    }


def error_item(job_id: int, status: int, message: str) -> dict[str, Any]:
    return {"id": job_id, "status": status, "reason": "", "headers": {}, "content_type": "", "error": message}


def check_outputs(ret: Any, expected: int, model_name: str) -> list[Any]:
    """The handler must return a list with one element per request."""
    if not isinstance(ret, list):
        logger.warning("model: %s, Invalid return type: %s.", model_name, type(ret))
        raise BatchError(503, "Invalid model predict output")
    if len(ret) != expected:
        logger.warning(
            "model: %s, number of batch response mismatched, expect: %d, got: %d.", model_name, expected, len(ret)
        )
        raise BatchError(503, "number of batch response mismatched")
    return ret


def classify_exception(exc: BaseException) -> tuple[int, str]:
    """Map a handler failure to TorchServe's status and message, logging the traceback as it does."""
    if isinstance(exc, BatchError | RequestCancelled):
        return exc.status, exc.message
    if isinstance(exc, MemoryError):
        logger.error("System out of memory", exc_info=exc)
        return 507, "Out of resources"
    fields = prediction_exception_fields(exc)
    if fields is not None:
        logger.error("Prediction error", exc_info=exc)
        return fields
    if "CUDA" in str(exc):
        logger.error("CUDA out of memory", exc_info=exc)
        return 507, "Out of resources"
    logger.warning("Invoking custom service failed.", exc_info=exc)
    return 503, "Prediction failed"


def prediction_exception_fields(exc: BaseException) -> tuple[int, str] | None:
    """``(error_code, message)`` of any ``PredictionException`` (our shim's or the real ``ts`` package's)."""
    if not any(cls.__name__ == "PredictionException" for cls in type(exc).__mro__):
        return None
    try:
        status = int(exc.error_code)  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return None
    message = getattr(exc, "message", None)
    return status, str(message) if message is not None else str(exc)


def _never_cancelled(_job_id: int) -> bool:
    return False


# -- one batch ------------------------------------------------------------------------------------


class _Batch:
    """The jobs of one ``infer`` frame and the callbacks that reach the frontend while the handler runs."""

    def __init__(
        self, context: Context, jobs: Sequence[Mapping[str, Any]], emit_chunk: EmitChunk, cancelled: IsCancelled
    ) -> None:
        self.context = context
        self.job_ids: list[int] = []
        self.request_ids: dict[int, str] = {}
        for idx, job in enumerate(jobs):  # a loop: two comprehensions cost two more frames for the usual one job
            self.job_ids.append(int(job["id"]))
            self.request_ids[idx] = str(job.get("request_id", ""))
        self._emit_chunk = emit_chunk
        self.cancelled = cancelled
        """Whether a job's client went away, by job id: with the batch's ids and senders, what the context is bound
        to while ``handle`` runs (:class:`~workers.context.BatchBinding`)."""

    def send_intermediate(self, ret: Sequence[Any], req_id_map: Mapping[int, Any], message: str, code: int) -> None:
        """Emit one chunk per listed, still-connected request; all of them gone raises :class:`RequestCancelled`."""
        targets = self._connected(req_id_map)
        if code != 200:
            self._fail(targets, code, message)
            return
        bodies = {idx: encode_output(ret[idx]) for idx in targets}
        for idx in targets:
            self.context.set_response_header(idx, "ts_stream_next", "true")
            self._emit_chunk(self.item(idx, bodies[idx]))

    def send_wire(self, response: WireResponse) -> None:
        """What the real ``torchserve`` package's ``send_intermediate_predict_response`` wrote to ``cl_socket``:
        the same pieces, already encoded with their status and headers, for requests named by request id."""
        slots: dict[str, list[int]] = {}  # a request id given twice (a client's x-request-id) names requests in order
        for idx, request_id in self.request_ids.items():
            slots.setdefault(request_id, []).append(idx)
        pieces = {}
        for piece in response.pieces:
            candidates = slots.get(piece.request_id)
            if not candidates:
                raise ValueError(f"streamed piece for request {piece.request_id!r}, which is not in this batch")
            pieces[candidates.pop(0)] = piece
        targets = self._connected(pieces)
        if response.code != 200:
            self._fail(targets, response.code, response.message)
            return
        for idx in targets:
            piece = pieces[idx]
            self._emit_chunk(
                {
                    "id": self.job_ids[idx],
                    "status": piece.status,
                    "reason": piece.phrase,
                    "headers": piece.headers,
                    "content_type": piece.content_type,
                    "body": piece.body,
                }
            )

    def _connected(self, indices: Iterable[int]) -> list[int]:
        """The listed requests whose clients are still there; :class:`RequestCancelled` if all of them left."""
        listed = list(indices)
        targets = [idx for idx in listed if not self.context.is_cancelled(idx)]
        if listed and not targets:
            raise RequestCancelled()
        return targets

    def _fail(self, targets: list[int], code: int, message: str) -> None:
        """A non-200 intermediate response ends those requests with ``code`` and ``message``, as in TorchServe."""
        for idx in targets:
            self._emit_chunk(error_item(self.job_ids[idx], code, message))

    def final_item(self, idx: int, output: Any) -> dict[str, Any]:
        """The last response of a request; after streamed pieces TorchServe flips ``ts_stream_next`` to false."""
        processor = self.context._processor(idx)
        if processor.get_response_headers().get("ts_stream_next") == "true":
            processor.add_response_property("ts_stream_next", "false")
        body = encode_output(output)  # first: encoding may run the handler's code (a subclass's methods)
        item = _fields(processor)
        item["id"] = self.job_ids[idx]
        item["body"] = body
        return item

    def item(self, idx: int, body: bytes | bytearray) -> dict[str, Any]:
        return {"id": self.job_ids[idx], **response_fields(self.context, idx), "body": body}

    def failed(self, status: int, message: str) -> list[dict[str, Any]]:
        return [error_item(job_id, status, message) for job_id in self.job_ids]


class Service:
    """A loaded handler: its context, its entry point ``handle(data, context)`` and the input decoding policy."""

    def __init__(self, context: Context, entry_point: Callable[[Any, Any], Any], decode_input_request: bool = True):
        self._context = context
        self._entry_point = entry_point
        self._decode = decode_input_request

    @property
    def context(self) -> Context:
        return self._context

    @property
    def entry_point(self) -> Callable[[Any, Any], Any]:
        return self._entry_point

    def run_batch(
        self, jobs: list[dict[str, Any]], emit_chunk: EmitChunk, is_cancelled: IsCancelled | None = None
    ) -> list[dict[str, Any]]:
        """Run ``handle`` once for ``jobs`` and return one item map per job, in job order (the TorchServe
        runtime's :meth:`~workers.runtimes.Runtime.run_batch`).

        ``emit_chunk`` receives streamed pieces (``send_intermediate_predict_response`` or a
        generator handler); ``is_cancelled(job_id)`` tells whether a job's client went away.
        """
        if not jobs:
            return []
        batch = _Batch(self._context, jobs, emit_chunk, is_cancelled or _never_cancelled)
        data = []
        processors = []
        decode = self._decode
        try:  # one loop, not two comprehensions: on Python 3.11 each is a function made and called per batch
            for job in jobs:
                data.append(build_data(job, decode))
                processors.append(RequestProcessor(make=partial(request_headers, job)))
        except (TensorError, ImportError) as exc:  # the frontend validates tensors; numpy is a dependency
            logger.error("Cannot give the handler its tensors: %s", exc)
            return batch.failed(500, f"Cannot give the handler its tensors: {exc}")
        self._context._bind_batch(batch.request_ids, processors, batch)
        try:
            return self._predict(data, batch)
        except Exception as exc:
            return batch.failed(*classify_exception(exc))
        finally:
            self._context._unbind_batch()

    def _predict(self, data: list[dict[str, Any]], batch: _Batch) -> list[dict[str, Any]]:
        # TorchServe prints a PredictionTime metric line per batch; printing on the hot path costs more than a
        # small handler does, so backend timings will travel in result frames with the metrics API instead.
        ret: Any = self._entry_point(data, self._context)
        if type(ret) is not list and inspect.isgenerator(ret):
            ret = self._drain(ret, batch, len(data))
        outputs = check_outputs(ret, len(data), self._context.model_name)
        return list(map(batch.final_item, range(len(outputs)), outputs))

    def _drain(self, gen: Generator[Any, Any, Any], batch: _Batch, size: int) -> list[bytes]:
        """A generator handler yields one list per step (an element per request); each step is streamed."""
        with contextlib.closing(gen):
            for piece in gen:
                check_outputs(piece, size, self._context.model_name)
                batch.send_intermediate(piece, batch.request_ids, "Intermediate Prediction success", 200)
        return [b""] * size
