"""MindSpore Serving's RESTful API: ``POST /model/{name}[/version/{n}]:{method}`` (/work/shared/specs §5).

The body is ``{"instances": ...}`` (one object or a list); each instance maps input names to values
(:mod:`modelserver.mindspore_codec`). The URL's method must be one the model declares (:mod:`workers.servable_methods`;
``predict`` when it declares none), and an instance must hold each declared input (extra inputs are ignored). Each
instance runs as one job (:mod:`.instance_jobs`); the answer is ``{"instances": [{output: value, ...}, ...]}`` in
order, a failed instance ``{"error_msg": ...}`` in its place. A request-level failure is ``{"error_msg": ...}`` alone.

As MindSpore answers, every reply is HTTP 200, errors included; ``mindspore_http_status=true`` gives errors real
status codes instead (400 bad URL or body, 404 unknown model or method, 405 not POST, 413 too large, and a request
whose every instance failed takes the status of the first failure). On the shared inference port the dialect owns
``/model/**``; on a listener of its own (``mindspore_address``, MindSpore's port 5500 by convention) it owns every
path, so that a URL without ``model`` gets MindSpore's message too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

from workers import json_body
from workers.servable_methods import Method, MethodDeclarationError, parse_methods
from workers.tensors import Tensor

from ..api_docs import Body, Reply
from ..config import Address, ConfigError, parse_address
from ..errors import ModelNotFound, RequestTooLarge, ServeError
from ..http_messages import Request, Response
from ..mindspore_codec import MindSporeError, Target, decode_instances, decode_value, encode_tensor, parse_url
from ..model_version import ModelVersion
from ..registry import ModelRegistry, version_key
from ..router import ANY, Route
from ..types import Job
from .instance_jobs import JSON_HEAD, Outputs, instance_job, job_outputs, run_instances

logger = logging.getLogger("modelserver.mindspore")

JSON = "application/json"
_TAGS = ("mindspore",)
_TARGET_CACHE_SIZE = 1024
_STATUS = {"url": 400, "parse": 400, "unavailable": 404, "method": 405, "size": 413}


class MindSporeRequestError(ServeError):
    """A request-level failure in MindSpore's words."""

    type_name = "MindSporeError"


class MindSpore:
    """The MindSpore Serving routes over the model registry."""

    def __init__(self, registry: ModelRegistry, real_status: bool = False, own_listener: bool = False) -> None:
        self.registry = registry
        self.real_status = real_status
        self.own_listener = own_listener
        self._targets: dict[str, Target] = {}

    def routes(self) -> Iterable[Route]:
        replies: dict[int, Any] = {200: Reply("Outputs per instance, or MindSpore's error", "MindSporeReply")}
        if self.real_status:
            replies.update({400: "Bad URL or body", 404: "Unknown model, version or method", 405: "Not POST"})
            replies.update({413: "Body too large", 500: "Every instance failed", 503: "No worker"})
        meta: dict[str, Any] = {
            "tags": _TAGS,
            "request_body": Body("MindSporeRequest"),
            "responses": replies,
            "error_schema": "MindSporeError",
            "doc_methods": ("POST",),
            "param_docs": {
                "target": "{name}[/version/{n}]:{method}: the model, its version (0: the highest), the method."
            },
        }
        yield Route(
            ANY,
            "/model/{target:path}",
            self.handle,
            summary="MindSpore Serving: call a method of a model, /model/{name}[/version/{n}]:{method}.",
            operation_id="mindsporePredict",
            **meta,
        )
        if self.own_listener:
            yield Route(ANY, "/", self.handle, summary="MindSpore Serving (no model in the URL).", **meta)
            yield Route(ANY, "/{target:path}", self.handle, summary="MindSpore Serving, any URL.", **meta)

    # -- errors ----------------------------------------------------------------------------------------

    def error_response(self, error: ServeError, request: Request) -> Response:
        status = error.status if self.real_status else 200
        return _json({"error_msg": error.message}, status)

    def _fail(self, error: MindSporeError) -> MindSporeRequestError:
        return MindSporeRequestError(error.message, _STATUS.get(error.kind, 400))

    # -- the call ------------------------------------------------------------------------------------

    def handle(self, request: Request, params: dict[str, str]) -> Awaitable[Response]:
        """A plain function handing back the coroutine that waits: the usual request of one instance then costs one
        coroutine, awaiting the core call itself, as TorchServe's inference path does."""
        if request.method != "POST":
            raise MindSporeRequestError("http message only support POST right now", 405)
        target = self._targets.get(request.raw_path)
        if target is None:
            target = self._target(request)
        body = request.body_ready()  # the usual small body is here already: no coroutine to wait for it
        if body is None:
            return self._handle_when_read(request, params)
        if not body:
            raise MindSporeRequestError("http message invalid", 400)
        try:
            document = json_body.loads(body)
        except ValueError:
            raise MindSporeRequestError("Illegal JSON format", 400) from None
        model = self._find(target.model, target.version, target.method)
        method = self._method(model, target.method, target.version)
        try:
            instances = [self._inputs(model, method, instance) for instance in decode_instances(document)]
        except MindSporeError as err:
            raise self._fail(err) from None
        if len(instances) == 1:  # the usual request
            job = instance_job(model, request, instances[0], method.name, "mindspore")
            return self._single(model, job, bool(target.version))
        return self._several(model, request, instances, method.name, bool(target.version))

    async def _handle_when_read(self, request: Request, params: dict[str, str]) -> Response:
        """:meth:`handle` once the whole body is here (then ``body_ready`` has it)."""
        try:
            await request.read_body()
        except RequestTooLarge:
            raise MindSporeRequestError(f"http message is bigger than {request.max_body_size}", 413) from None
        return await self.handle(request, params)

    async def _single(self, model: ModelVersion, job: Job, explicit_version: bool) -> Response:
        answer = await job_outputs(model, job, explicit_version)
        return self._reply(_queue_full([answer], model))

    async def _several(
        self, model: ModelVersion, request: Request, instances: list[list[Tensor]], method: str, explicit: bool
    ) -> Response:
        answers = await run_instances(model, request, instances, method, explicit, "mindspore")
        return self._reply(_queue_full(answers, model))

    def _target(self, request: Request) -> Target:
        """The URL's target, remembered by the raw request target (query included) for the last
        :data:`_TARGET_CACHE_SIZE` good ones: clients repeat theirs, and decoding the path costs a URL object."""
        try:
            target = parse_url(request.path)
        except MindSporeError as err:
            raise self._fail(err) from None
        if len(self._targets) >= _TARGET_CACHE_SIZE:
            self._targets.clear()
        self._targets[request.raw_path] = target
        return target

    def _find(self, name: str, version: int, method: str) -> ModelVersion:
        """Version 0 is the highest; another number matches a version of the same numeric value (``1`` is
        ``1.0``)."""
        try:
            if not version:
                return self.registry.latest(name)
            for candidate in self.registry.versions(name):
                if _numeric(candidate.spec.version) == (version,):
                    return candidate
        except ModelNotFound:
            pass
        shown = f"version({version}) " if version else ""
        message = f"Request servable({name}) method({method}) {shown}, servable is not available"
        raise MindSporeRequestError(message, 404)

    def _method(self, model: ModelVersion, name: str, version: int) -> Method:
        methods = model.derived.get("mindspore")
        if methods is None:
            try:
                methods = parse_methods(model.spec.yaml_config)
            except MethodDeclarationError as err:
                raise MindSporeRequestError(f"Model {model.spec.name}: {err}", 500) from None
            model.derived["mindspore"] = methods
        found = methods.get(name)
        if found is None:
            shown = f"version({version}) " if version else ""
            message = f"Request servable({model.spec.name}) method({name}) {shown}, method is not available"
            raise MindSporeRequestError(message, 404)
        return found

    def _inputs(self, model: ModelVersion, method: Method, instance: Mapping[str, Any]) -> list[Tensor]:
        if method.inputs is None:
            return [decode_value(key, value) for key, value in instance.items()]
        tensors = []
        for key in method.inputs:
            if key not in instance:
                raise MindSporeError(
                    f"Cannot find input {key} in instance input , servable {model.spec.name}, method {method.name}"
                )
            tensors.append(decode_value(key, instance[key]))
        return tensors

    def _reply(self, answers: list[Outputs]) -> Response:
        status = 200
        if self.real_status and all(answer.error is not None for answer in answers):
            status = answers[0].status
        if len(answers) == 1 and answers[0].raw is not None:  # the usual answer: the runtime's JSON as it is
            body = b'{"instances":[%b]}' % answers[0].raw
        else:
            parts = [answer.raw if answer.raw is not None else _dumps(_instance(answer)) for answer in answers]
            body = b'{"instances":[' + b",".join(parts) + b"]}"
        return Response(status, JSON_HEAD, body)


def _queue_full(answers: list[Outputs], model: ModelVersion) -> list[Outputs]:
    """Jobs the core refused while the model has workers: its queue was full; said as MindSpore says it."""
    for answer in answers:
        if answer.refused and model.workers:
            answer.error = f"Serving Error: enqueued requests count exceeds the limit {model.spec.job_queue_size}"
    return answers


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _instance(answer: Outputs) -> dict[str, Any]:
    if answer.error is not None:
        return {"error_msg": answer.error}
    if answer.tensors is not None:
        return {tensor.name: encode_tensor(tensor) for tensor in answer.tensors}
    return answer.values or {}


def _numeric(version: str) -> tuple[Any, ...]:
    """A version's numeric parts without trailing zeros: ``1.0`` and ``1`` are both ``(1,)``."""
    parts = [value for _, value in version_key(version)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _json(value: Any, status: int = 200) -> Response:
    return Response(status, {"Content-Type": JSON}, json.dumps(value, separators=(",", ":")).encode("utf-8"))


def settings(properties: Mapping[str, str]) -> tuple[bool, Address | None]:
    """``mindspore_http_status`` (real status codes for errors, default false) and ``mindspore_address`` (a listener
    of MindSpore's own, e.g. ``http://0.0.0.0:5500``; default none)."""
    word = (properties.get("mindspore_http_status") or "false").strip().lower()
    if word not in ("true", "false"):
        raise ConfigError(f"mindspore_http_status: expected true or false, got {word!r}")
    address = properties.get("mindspore_address")
    parsed = parse_address("mindspore_address", address, 5500, 5500) if address and address.strip() else None
    return word == "true", parsed
