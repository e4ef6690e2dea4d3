"""Angel Serving's RESTful API (/work/shared/specs §6): model status, ``:predict`` (and ``:classify``/``:regress``),
and the JSON metrics summary at ``/monitoring/prometheus/metrics``.

``GET /v1/models/{m}`` and ``POST /v1/models/{m}:predict`` are shared with KServe and TorchServe: a model of
protocol ``angel`` is served here (:mod:`modelserver.listener`); the versioned routes, ``:classify``, ``:regress``
and the metrics summary belong to Angel alone and answer for any model. Instances are decoded by
:mod:`modelserver.angel_codec` into the model's feature vector (``indices`` and ``values`` tensors) and run as one
job each (:mod:`.instance_jobs`), calling the model's ``predict``; each answer becomes Angel's string-valued map.

Errors are ``{"error": ...}`` as valid, escaped JSON. As Angel does, a request it cannot predict still answers 200
(``{"error": ...}``), and so does one whose every instance failed; an unknown model or version is 404, where Angel
answers ``{}`` or a stack trace. An instance that failed beside others that succeeded keeps its place as
``{"error": ...}``, where Angel drops it silently.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from json.encoder import encode_basestring_ascii
from typing import Any

from ..angel_codec import (
    AngelError,
    InputInfo,
    Instance,
    decode_instances,
    input_info,
    prediction_map,
    read_body,
    sid_of,
)
from ..api_docs import Body, Reply
from ..errors import ModelNotFound, ModelVersionNotFound, ServeError
from ..http_messages import Request, Response, ready
from ..metrics import ServerMetrics, Summary
from ..mindspore_codec import encode_tensor
from ..model_version import ModelVersion
from ..registry import ModelRegistry
from ..router import Route
from ..types import PREDICT, Job, ResultStream
from .instance_jobs import JSON_HEAD, Outputs, failed, instance_job, read_outputs, run_instances, streamed

JSON = "application/json"
GET = frozenset({"GET"})
POST = frozenset({"POST"})
_TAGS = ("angel",)


class AngelRequestError(ServeError):
    """A failure in Angel's shape, ``{"error": ...}``."""

    type_name = "AngelError"


class Angel:
    """Angel Serving's routes over the model registry and the server's request statistics."""

    def __init__(self, registry: ModelRegistry, metrics: ServerMetrics) -> None:
        self.registry = registry
        self.metrics = metrics

    def routes(self) -> Iterable[Route]:
        status = {200: Reply("The status of the model's versions", "AngelStatus"), 404: "Unknown model or version"}
        yield Route(
            GET,
            "/v1/models/{model_name}",
            self.status,
            summary="Angel: the status of every version.",
            operation_id="angelModelStatus",
            tags=_TAGS,
            responses=status,
            error_schema="KServeError",
            protocol="angel",
            model_param="model_name",
        )
        yield Route(
            GET,
            "/v1/models/{model_name}/versions/{model_version}",
            self.status,
            summary="Angel: the status of one version.",
            operation_id="angelModelVersionStatus",
            tags=_TAGS,
            responses=status,
            error_schema="KServeError",
        )
        answers = {200: '{"predictions": [...]} or {"error": ...}', 404: "Unknown model or version"}
        for verb in ("predict", "classify", "regress"):
            handler = self._predict if verb == "predict" else self._not_served(verb)
            shared = {"protocol": "angel", "model_param": "model_name"} if verb == "predict" else {}
            yield Route(
                POST,
                f"/v1/models/{{model_name}}:{verb}",
                handler,
                summary=f"Angel {verb}.",
                operation_id=f"angel{verb.title()}",
                tags=_TAGS,
                request_body=Body("AngelRequest"),
                responses=answers,
                error_schema="KServeError",
                **shared,
            )
            yield Route(
                POST,
                f"/v1/models/{{model_name}}/versions/{{model_version}}:{verb}",
                handler,
                summary=f"Angel {verb} with one version.",
                operation_id=f"angelVersion{verb.title()}",
                tags=_TAGS,
                request_body=Body("AngelRequest"),
                responses=answers,
                error_schema="KServeError",
            )
        yield Route(
            GET,
            "/monitoring/prometheus/metrics",
            self.summary,
            summary="Angel's metrics summary (JSON, despite the path), current as of the request.",
            operation_id="angelMetrics",
            tags=_TAGS,
            responses={200: Reply("Angel's metrics summary", "AngelMetrics")},
            error_schema="KServeError",
        )

    # -- errors ----------------------------------------------------------------------------------------

    def error_response(self, error: ServeError, request: Request) -> Response:
        return _json({"error": error.message}, error.status)

    def _find(self, name: str, version: str | None) -> ModelVersion:
        try:
            return self.registry.latest(name, version)
        except (ModelNotFound, ModelVersionNotFound) as err:
            raise _not_found(err, name, version) from None

    @staticmethod
    def _input_info(model: ModelVersion) -> InputInfo:
        info = model.derived.get("angel")
        if info is None:
            try:
                info = input_info(model.spec.yaml_config)
            except AngelError as err:
                raise AngelRequestError(f"Model {model.spec.name}: {err}", 500) from None
            model.derived["angel"] = info
        return info

    # -- status ---------------------------------------------------------------------------------------

    async def status(self, request: Request, params: dict[str, str]) -> Response:
        """KServe's ``name`` and ``ready`` beside Angel's ``model_version_status`` (and ``typeMap`` and ``dim`` when a
        listed version is available and the model declares its input): one body both kinds of client read."""
        name = params["model_name"]
        version = params.get("model_version")
        found = self._find(name, version)
        listed = [found] if version else self.registry.versions(name)
        states = [{"version": each.spec.version, "state": "AVAILABLE" if each.ready else "LOADING"} for each in listed]
        body: dict[str, Any] = {"name": name, "ready": found.ready, "model_version_status": states}
        if any(each.ready for each in listed) and "angel" in (found.spec.yaml_config or {}):
            info = self._input_info(found)
            body["typeMap"] = info.type_map()
            if info.dim >= 0:
                body["dim"] = str(info.dim)
        return _json(body)

    # -- predict --------------------------------------------------------------------------------------

    def _predict(self, request: Request, params: dict[str, str]) -> Awaitable[Response]:
        """A plain function handing back the coroutine that waits: the usual request of one instance then costs one
        coroutine, awaiting the core call itself, as TorchServe's inference path does."""
        version = params.get("model_version")
        model = self._find(params["model_name"], version)
        info = model.derived.get("angel") or self._input_info(model)
        body = request.body_ready()  # the usual small body is here already: no coroutine to wait for it
        if body is None:
            return self._predict_when_read(request, params)
        try:
            instances = decode_instances(read_body(body), info)
        except ValueError as err:  # AngelError, or JSON that does not parse
            message = str(err) if isinstance(err, AngelError) else f"Request data format error: {err}"
            return ready(_json({"error": message}))
        if len(instances) == 1:  # the usual request, without the general case's lists
            instance = instances[0]
            job = instance_job(model, request, instance.tensors, PREDICT, "angel")
            return _single(model, job, instance, bool(version))
        return _several(model, request, instances, bool(version))

    async def _predict_when_read(self, request: Request, params: dict[str, str]) -> Response:
        """:meth:`_predict` once the whole body is here (then ``body_ready`` has it)."""
        await request.read_body()
        return await self._predict(request, params)

    def _not_served(self, verb: str) -> Callable[[Request, dict[str, str]], Any]:
        async def handler(request: Request, params: dict[str, str]) -> Response:
            self._find(params["model_name"], params.get("model_version"))
            return _json(
                {"error": f"Angel Serving does not implement :{verb} (it answers an empty body); use :predict"}
            )

        return handler

    # -- metrics --------------------------------------------------------------------------------------

    async def summary(self, request: Request, params: dict[str, str]) -> Response:
        return _json(metrics_summary(await self.metrics.all_summaries()))


def _not_found(error: ServeError, name: str, version: str | None) -> AngelRequestError:
    if isinstance(error, ModelVersionNotFound):
        return AngelRequestError(f"Model {name} has no version {version}.", 404)
    return AngelRequestError(f"Model with name {name} does not exist.", 404)


async def _single(model: ModelVersion, job: Job, instance: Instance, explicit_version: bool) -> Response:
    """The answer to a request of one instance: its prediction, or its failure as the request's error."""
    try:
        outcome = await model.infer(job, explicit_version)
    except ServeError as err:
        return _json({"error": failed(err).error})
    if type(outcome) is ResultStream:
        answer = await streamed(outcome)
    else:
        body = outcome.body
        given = outcome.parameters
        if outcome.status < 400 and given and given.get("answer") == "angel" and body[:2] == b'{"':
            # the runtime's map of outputs (read_outputs' raw answer), with sid spliced in front: one copy
            sid = b'"0"' if instance.name is None else encode_basestring_ascii(instance.name).encode("ascii")
            return Response(200, JSON_HEAD, b'{"predictions":[{"sid":%b,%b]}' % (sid, body[1:]))
        answer = read_outputs(outcome, job.parameters)
    if answer.error is not None:
        return _json({"error": answer.error})
    return _predictions(_prediction(instance, 0, answer))


async def _several(
    model: ModelVersion, request: Request, instances: list[Instance], explicit_version: bool
) -> Response:
    """Every instance's prediction in order, a failed one as ``{"error": ...}`` in its place; the request's error
    when every instance failed."""
    tensors = [each.tensors for each in instances]
    answers = await run_instances(model, request, tensors, PREDICT, explicit_version, "angel")
    if all(answer.error is not None for answer in answers):
        return _json({"error": "\n".join(str(answer.error) for answer in answers)})
    parts = [
        _prediction(instance, position, answer)
        for position, (instance, answer) in enumerate(zip(instances, answers, strict=True))
    ]
    return _predictions(b",".join(parts))


def _predictions(parts: bytes) -> Response:
    return Response(200, JSON_HEAD, b'{"predictions":[' + parts + b"]}")


def _prediction(instance: Instance, position: int, answer: Outputs) -> bytes:
    """One entry of ``predictions``: the runtime's string-valued JSON with ``sid`` spliced in front, or a map made
    here from output tensors or a handler's JSON, or ``{"error": ...}`` in the failed instance's place."""
    if answer.error is not None:
        return _dumps({"error": answer.error})
    sid = encode_basestring_ascii(sid_of(instance.name, position)).encode("ascii")
    raw = answer.raw
    if raw is not None and raw.startswith(b"{"):
        return b'{"sid":' + sid + (b"}" if raw.strip() == b"{}" else b"," + raw[1:])
    if answer.tensors is not None:
        outputs = {tensor.name: encode_tensor(tensor) for tensor in answer.tensors}
    else:
        outputs = answer.values or {}
    return _dumps(prediction_map(instance.name, position, outputs))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def metrics_summary(summaries: list[tuple[str, str, Summary]]) -> dict[str, Any]:
    """Angel's ``{"models": {name: {"versions": {v: {...}}}}}`` as proto3 JSON prints it: counters as strings, zero
    fields left out, ``{}`` when no model has been asked anything. Only versions that had requests are listed."""
    models: dict[str, Any] = {}
    for name, version, summary in summaries:
        if not summary.requests:
            continue
        entry: dict[str, Any] = {"model_name": name, "model_version": _version_number(version)}
        counters = {
            "prediction_count_total": summary.succeeded + summary.failed,
            "prediction_count_success": summary.succeeded,
            "prediction_count_failed": summary.failed,
        }
        entry.update({key: str(value) for key, value in counters.items() if value})
        if summary.total_latency_ms:
            entry["total_predict_time_ms"] = summary.total_latency_ms
        for index, count in enumerate(summary.distribution):
            if count:
                entry[f"count_distribution{index}"] = str(count)
        models.setdefault(name, {"versions": {}})["versions"][version] = entry
    return {"models": models} if models else {}


def _version_number(version: str) -> int | float | str:
    """Angel's versions are numbers (``int64``); ours may be ``1.0``: a number when it reads as one."""
    for kind in (int, float):
        try:
            return kind(version)
        except ValueError:
            continue
    return version


def _json(value: Any, status: int = 200) -> Response:
    return Response(status, {"Content-Type": JSON}, json.dumps(value, separators=(",", ":")).encode("utf-8"))
