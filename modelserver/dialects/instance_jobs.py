"""Run a request's instances as one job each, and read each answer as named outputs.

MindSpore Serving and Angel Serving both take ``{"instances": [...]}`` and answer one entry per instance, an
instance's failure its own. Here each instance is one :class:`~modelserver.types.Job` through the core call (so
the batcher groups the instances of a request, and of concurrent requests, by the model's ``batchSize``), and its
answer is one :class:`Outputs`: the output tensors of a tensor runtime (``servable``), or the JSON object a
TorchServe handler returned (``{"y": [...]}``), or the message of its failure.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from workers.tensors import Tensor, TensorMap

from ..errors import NoWorker, ServeError
from ..http_messages import HeaderBlock, Request
from ..model_version import ModelVersion
from ..types import InferenceResult, Job, ResultStream
from .torchserve_http import new_request_id

SERVABLE = "servable"
"""The worker runtime of MindSpore-style servables (:mod:`workers.runtimes.servable`)."""


@dataclass(slots=True)
class Outputs:
    """One instance's answer: ``raw`` (the outputs as the API's JSON object, made by the runtime), ``tensors`` (a
    tensor runtime), ``values`` (JSON from a handler), or ``error``."""

    tensors: list[Tensor] | None = None
    values: dict[str, Any] | None = None
    error: str | None = None
    status: int = 200
    raw: bytes | None = None
    refused: bool = False
    """The core refused the job before any work: no worker, or the model's queue was full (``NoWorker``)."""


JSON_HEAD = HeaderBlock("Content-Type: application/json\r\n", True)
"""The headers of an answer made here, written out once (the HTTP layer's fast path). Shared by every answer, so
nothing may change it: only answers the dialects make themselves carry it, not their errors (the router may add an
``Allow`` header to those)."""

_ANSWERS = {style: {"answer": style} for style in ("mindspore", "angel")}
"""The jobs' ``parameters`` asking a runtime for an API's JSON object, made once: every such job shares one, so
nothing may change them (msgpack packs it as it is; an in-process worker gets a copy, :mod:`..local_worker`)."""


def run_instances(
    model: ModelVersion,
    request: Request,
    instances: list[list[Tensor]] | list[list[TensorMap]],
    method: str,
    explicit_version: bool = False,
    answer: str = "",
) -> Awaitable[list[Outputs]]:
    """Each instance's tensors as one job calling ``method``; the answers in instance order. ``answer`` (``mindspore``
    or ``angel``) lets a runtime that can (``servable``) answer with the API's JSON object of outputs."""
    if len(instances) == 1:
        return _listed(job_outputs(model, instance_job(model, request, instances[0], method, answer), explicit_version))
    headers, url_path = _headers_and_path(model, request, method)
    parameters = _ANSWERS.get(answer)
    request_id = _request_id(request)
    loop = model.loop
    jobs = [
        Job(
            f"{request_id}-{index}",
            headers,
            [],
            method,
            url_path=url_path,
            tensors=tensors,
            parameters=parameters,
            loop=loop,
        )
        for index, tensors in enumerate(instances)
    ]
    return _gathered(model, jobs, explicit_version)


def instance_job(
    model: ModelVersion, request: Request, tensors: list[Tensor] | list[TensorMap], method: str, answer: str = ""
) -> Job:
    """The job of a request's only instance, for a dialect that awaits the core call itself (one coroutine per
    request) and reads the outcome with :func:`read_outputs`, :func:`failed` and :func:`streamed`."""
    headers, url_path = _headers_and_path(model, request, method)
    return Job(
        _request_id(request),
        headers,
        [],
        method,
        url_path=url_path,
        tensors=tensors,
        parameters=_ANSWERS.get(answer),
        loop=model.loop,
    )


def _headers_and_path(model: ModelVersion, request: Request, method: str) -> tuple[dict[str, str], str]:
    """A job's ``headers`` and ``url_path``: a handler sees the request's headers, and the method as its url_path;
    the servable runtime reads the method and the tensors only, so the headers stay here."""
    if model.spec.runtime == SERVABLE:
        return {}, ""
    return request.header_dict(), method


def _request_id(request: Request) -> str:
    """The client's ``x-request-id``, else a new one; read from the raw headers when the request offers that (the
    case-insensitive header map costs more to build than the rest of the job)."""
    header = getattr(request, "header", None)
    if header is None:
        sent = request.headers.get("x-request-id")
    else:
        raw = header(b"x-request-id")
        sent = raw.decode("utf-8", "surrogateescape") if raw is not None else None
    return sent or new_request_id()


async def _listed(outputs: Awaitable[Outputs]) -> list[Outputs]:
    return [await outputs]


async def _gathered(model: ModelVersion, jobs: list[Job], explicit_version: bool) -> list[Outputs]:
    return await asyncio.gather(*(job_outputs(model, job, explicit_version) for job in jobs))


async def job_outputs(model: ModelVersion, job: Job, explicit_version: bool) -> Outputs:
    """One job's answer, through the core call."""
    try:
        outcome = await model.infer(job, explicit_version)
    except ServeError as err:
        return failed(err)
    if type(outcome) is ResultStream:
        return await streamed(outcome)
    return read_outputs(outcome, job.parameters)


def failed(error: ServeError) -> Outputs:
    """A job the core call failed: ``refused`` when it refused it before any work (no worker, or a full queue)."""
    return Outputs(error=error.message, status=error.status, refused=isinstance(error, NoWorker))


async def streamed(stream: ResultStream) -> Outputs:
    """A job whose model streamed its answer: closed, and failed (these APIs take one answer per instance)."""
    await stream.aclose()
    return Outputs(error="The model streamed its answer; this API takes one answer per instance", status=500)


def read_outputs(result: InferenceResult, asked: Any = None) -> Outputs:
    """The runtime's JSON answer as it is (when it made the one asked for); output tensors as they are; else the
    body as a JSON object of outputs (what a TorchServe handler returns)."""
    if result.status >= 400:
        return Outputs(error=bytes(result.body).decode("utf-8", "replace"), status=result.status)
    if asked and result.parameters and result.parameters.get("answer") == asked.get("answer"):
        return Outputs(raw=bytes(result.body))
    if result.tensors is not None:
        return Outputs(tensors=result.tensors)
    try:
        values = json.loads(bytes(result.body))
    except ValueError:
        return Outputs(error="The model's answer is not JSON: a handler answers a JSON object of outputs", status=500)
    if not isinstance(values, dict):
        return Outputs(error="The model's answer is not a JSON object of named outputs", status=500)
    return Outputs(values=values)
