"""The ``kserve`` runtime: a KServe ``Model`` subclass, served as KServe's model server serves it.

Loading imports the model's module (the manifest's ``handler``: ``file.py``, ``file.py:ClassName`` or a module
name, the model directory first on ``sys.path``), picks its ``Model`` subclass (the one named, or the only one
the module defines), builds it with the model's name (or the arguments a :class:`~modelserver.kserve.ModelServer`
recorded), and calls ``load()`` unless it is ready already, then ``start()`` as KServe's server does. ``kserve``
is the real package when it is installed, else our shim (:mod:`workers.kserve_compat`).

A batch runs its jobs concurrently on the runtime's own event loop, each through ``model(body, headers, verb)``
(KServe's ``preprocess -> predict|explain -> postprocess``, each sync or async). An ``AsyncIterator`` answer is
streamed, one chunk per item, until it ends or the client goes away. A failure answers its job alone with KServe's
status and message (``InvalidInput`` 400, ``NotImplementedError`` and ``UnsupportedProtocol`` 501,
``ModelNotReady`` 503, other errors 500 ``"<Type> : <message>"``). Extra methods: ``metadata`` (the model's input
and output types, for V2 metadata) and ``ready`` (its ``healthy()``).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import sys
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Executor
from typing import Any

from ..kserve_compat import install_kserve_shim
from ..oip_grpc import plain_parameters
from ..protocol import header_items
from . import EmitChunk, IsCancelled, LoadError
from .eager import gather_eagerly, run_all
from .kserve_codec import KServeTypes, chunk_bytes, infer_request, output_tensors, v1_body, v1_response_body
from .kserve_pipeline import Call, kserve_steps, own_call

logger = logging.getLogger(__name__)

ERROR_STATUS = {
    "InvalidInput": 400,
    "UnsupportedProtocol": 501,
    "ModelNotFound": 404,
    "NotImplementedError": 501,
    "ModelNotReady": 503,
    "ServerNotReady": 503,
    "ServerNotLive": 503,
    "InferenceError": 500,
}
"""KServe's exception handlers, by class name (ours and the real package's classes alike)."""


def error_status(exc: BaseException) -> tuple[int, str]:
    """KServe's answer to an exception: its status and the ``error`` message."""
    for cls in type(exc).__mro__:
        status = ERROR_STATUS.get(cls.__name__)
        if status is not None:
            return status, str(exc)
    return 500, f"{type(exc).__name__} : {exc}"


def load(message: Mapping[str, Any]) -> KServeRuntime:
    """A loaded KServe model; :class:`~workers.runtimes.LoadError` when it cannot be served."""
    name = str(message["model_name"])
    handler = str(message.get("handler") or "")
    if not handler:
        raise LoadError(f"No handler specified for model {name!r}")
    install_kserve_shim()
    from ..handler_loader import prepend_paths, split_handler

    prepend_paths(str(message["model_dir"]), handler)
    module_name, class_name = split_handler(handler)
    module = importlib.import_module(module_name)
    cls = model_class(module, class_name, handler)
    args = list(message.get("model_args") or [name])
    kwargs = dict(message.get("model_kwargs") or {})
    # KServe's server always sets a predictor config (from its flags when none is given): models read it
    _set_predictor_config(cls, message.get("predictor_config") or {"predictor_host": None})
    model = cls(*args, **kwargs)
    if message.get("latency_logging"):
        model.enable_latency_logging = True
    if not getattr(model, "ready", False):
        model.load()
    if not getattr(model, "ready", False):
        raise LoadError(f"Model with name {model.name} is not ready.", 503)
    model.start()
    return KServeRuntime(model, str(message.get("model_version") or ""))


def _set_predictor_config(cls: type, fields: Mapping[str, Any]) -> None:
    """The ``PredictorConfig`` a ModelServer was given (else KServe's defaults: no predictor, protocol v1), set where
    the model's package reads it."""
    root = next((base.__module__.split(".")[0] for base in cls.__mro__[1:] if base.__module__ != "builtins"), "")
    package = "kserve" if root == "kserve" else "workers.kserve_api"
    model_module = importlib.import_module(f"{package}.model")
    context = importlib.import_module(f"{package}.context")
    context.set_predictor_config(model_module.PredictorConfig(**fields))


def model_class(module: Any, class_name: str | None, handler: str) -> type:
    """The ``Model`` subclass to serve: the one named, else the only one ``module`` defines."""
    if class_name:
        found = getattr(module, class_name, None)
        if not isinstance(found, type) or not _is_kserve_model(found):
            raise LoadError(f"{handler!r}: {class_name!r} is not a KServe Model subclass")
        return found
    candidates = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == module.__name__ and _is_kserve_model(value)
    ]
    if len(candidates) != 1:
        names = [cls.__name__ for cls in candidates]
        raise LoadError(
            f"{handler!r} must define exactly one KServe Model subclass (or name it: file.py:Class); found {names}"
        )
    return candidates[0]


def _is_kserve_model(cls: type) -> bool:
    """A subclass of KServe's ``BaseKServeModel`` (the real package's or ours), by its bases' names and modules."""
    return any(
        base.__name__ in ("Model", "BaseKServeModel", "InferenceModel")
        and base.__module__.split(".")[0] in ("kserve", "workers")
        for base in cls.__mro__[1:]
    )


def kserve_types(model: Any) -> KServeTypes:
    """The types of the package ``model`` subclasses: the real ``kserve``, or ours (``workers.kserve_api``)."""
    roots = {base.__module__.split(".")[0] for base in type(model).__mro__}
    package = "kserve" if "kserve" in roots and "workers" not in roots else "workers.kserve_api"
    infer_type = importlib.import_module(
        f"{package}.protocol.infer_type" if package == "kserve" else f"{package}.infer_type"
    )
    model_module = importlib.import_module(f"{package}.model")
    errors = importlib.import_module(f"{package}.errors")
    return KServeTypes(infer_type, model_module.InferenceVerb, errors.InvalidInput)


def pipeline(model: Any, types: KServeTypes, executor: Executor | None = None) -> Call:
    """How to call the model: ``call(body, headers, explain)``: KServe's steps (:mod:`.kserve_pipeline`) for a model
    that keeps KServe's ``Model.__call__`` (the real package's or ours), else its own ``__call__``. ``executor``: run
    synchronous hooks on it (a model in the server's process)."""
    from ..kserve_api.model import Model as OurModel

    call = type(model).__call__
    real_model = getattr(sys.modules.get("kserve.model"), "Model", None)
    if call is OurModel.__call__ or (real_model is not None and call is real_model.__call__):
        return kserve_steps(model, executor)
    return own_call(model, types.InferenceVerb, executor)


class KServeRuntime:
    """A loaded KServe model; ``run_batch`` is the :class:`~workers.runtimes.Runtime` call."""

    def __init__(
        self,
        model: Any,
        model_version: str = "",
        max_asyncio_workers: int | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.model = model
        self.model_version = model_version
        self.types = kserve_types(model)
        self._call = pipeline(model, self.types, executor)
        self.max_asyncio_workers = max_asyncio_workers
        self._loop: asyncio.AbstractEventLoop | None = None

    def new_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the model's async hooks run on, its default executor sized by ``max_asyncio_workers``
        (KServe's meaning: the loop's default executor)."""
        loop = asyncio.new_event_loop()
        if self.max_asyncio_workers:
            from concurrent.futures import ThreadPoolExecutor

            loop.set_default_executor(ThreadPoolExecutor(self.max_asyncio_workers))
        return loop

    def run_batch(self, jobs: list[dict[str, Any]], emit_chunk: EmitChunk, is_cancelled: IsCancelled) -> list[dict]:
        """A worker process's call: the batch's jobs together; those that wait for something, on the runtime's loop
        (:mod:`.eager`)."""
        if self._loop is None:
            self._loop = self.new_loop()
        return run_all(self._loop, [self.answer(job, emit_chunk, is_cancelled) for job in jobs])

    async def answer_all(self, jobs: list[dict[str, Any]], emit_chunk: EmitChunk, cancelled: IsCancelled) -> list[dict]:
        """The batch's jobs together, from inside a running loop (an in-process runtime's)."""
        return await gather_eagerly([self.answer(job, emit_chunk, cancelled) for job in jobs])

    async def answer(self, job: dict[str, Any], emit_chunk: EmitChunk, cancelled: IsCancelled) -> dict[str, Any]:
        job_id = int(job["id"])
        try:
            method = job.get("method") or "predict"
            if method == "metadata":
                return _item(job_id, await self._metadata(), "application/json")
            if method == "ready":
                return _item(
                    job_id, json.dumps({"ready": bool(await self.model.healthy())}).encode(), "application/json"
                )
            return await self._infer(job, method, emit_chunk, cancelled)
        except Exception as exc:  # the model's failure answers this job alone
            status, message = error_status(exc)
            if status >= 500:
                logger.error("Model %s failed", self.model.name, exc_info=exc)
            return {"id": job_id, "status": status, "reason": "", "headers": {}, "content_type": "", "error": message}

    async def _infer(self, job: dict[str, Any], method: str, emit_chunk: EmitChunk, cancelled: IsCancelled) -> dict:
        job_id = int(job["id"])
        types = self.types
        headers = {k.lower(): v for k, v in header_items(job.get("headers"))}
        if job.get("tensors"):
            body: Any = infer_request(job, self.model.name, self.model_version, types)
        else:
            body = v1_body(job, types.InvalidInput)
        outcome = await self._call(body, headers, method == "explain")
        response, response_headers = outcome if _is_pair(outcome) else (outcome, {})
        extra = {str(k): str(v) for k, v in (response_headers or {}).items()}
        if isinstance(response, AsyncIterator):
            return await self._stream(job_id, response, extra, emit_chunk, cancelled)
        if isinstance(response, types.InferResponse):
            item = _item(job_id, b"", "", extra)
            item["tensors"] = output_tensors(response)
            if response.parameters:
                item["parameters"] = plain_parameters(response.parameters)
            return item
        body_bytes, content_type = v1_response_body(response)
        return _item(job_id, body_bytes, content_type, extra)

    async def _stream(
        self, job_id: int, chunks: AsyncIterator[Any], headers: dict[str, str], emit: EmitChunk, cancelled: IsCancelled
    ) -> dict[str, Any]:
        """One chunk frame per piece; the final item is empty. Stops early when the client went away."""
        try:
            async for chunk in chunks:
                if cancelled(job_id):
                    break
                emit(_item(job_id, chunk_bytes(chunk), "", headers))
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        return _item(job_id, b"", "", headers)

    async def _metadata(self) -> bytes:
        model = self.model
        described = {}
        for key, method in (("inputs", "get_input_types"), ("outputs", "get_output_types")):
            found = getattr(model, method, None)
            value = found() if callable(found) else []
            if inspect.isawaitable(value):
                value = await value
            described[key] = list(value or [])
        return json.dumps(described).encode("utf-8")


def _is_pair(outcome: Any) -> bool:
    """KServe's ``Model.__call__`` answers ``(response, response_headers)``; a plain ``InferenceModel`` may answer the
    response alone."""
    return isinstance(outcome, tuple) and len(outcome) == 2 and isinstance(outcome[1], Mapping | type(None))


def _item(job_id: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": job_id,
        "status": 200,
        "reason": "",
        "headers": headers or {},
        "content_type": content_type,
        "body": body,
    }
