"""KServe's model classes (``kserve.model`` in KServe 0.21): ``BaseKServeModel``, ``InferenceModel`` and ``Model``,
the class users subclass, with its ``preprocess -> validate -> predict | explain -> postprocess`` pipeline.

Each hook may be sync or async (``inspect.iscoroutinefunction`` decides, as in KServe); sync hooks run on the event
loop's thread, not in an executor. ``Model.__call__`` returns ``(response, response_headers)``; a ``predict`` that
returns an async iterator has it passed on (through ``postprocess``, identity by default) for the server to stream.

The default ``predict`` forwards to ``predictor_config.predictor_host`` (a transformer in front of its predictor)
and the default ``explain`` to ``explainer_host``, with aiohttp's client (:mod:`.rest_client`), forwarding only the
``x-request-id``, ``x-b3-traceid`` and ``authorization`` headers.
"""

from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from enum import Enum
from typing import Any, Union

from . import context as kserve_context
from . import rest_client
from .constants import PredictorProtocol
from .errors import InvalidInput, UnsupportedProtocol
from .infer_type import InferRequest, InferResponse
from .log import trace_logger
from .predictor_config import PredictorConfig

__all__ = [
    "BaseKServeModel",
    "InferReturnType",
    "InferReturnValueTypes",
    "InferenceModel",
    "InferenceVerb",
    "Model",
    "PredictorConfig",
    "PredictorProtocol",
    "append_forwardable_headers",
    "get_latency_ms",
    "is_v2",
]

_FORWARDABLE_HEADERS = frozenset({"x-request-id", "x-b3-traceid", "authorization"})


def append_forwardable_headers(
    headers: Mapping[str, str] | None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``base`` plus the request headers a transformer forwards: ``x-request-id``, ``x-b3-traceid`` and
    ``authorization`` (``headers`` has lower-cased names, as the server passes them)."""
    result = dict(base) if base else {}
    if headers is not None:
        for name in _FORWARDABLE_HEADERS:
            if name in headers:
                result[name] = headers[name]
    return result


class BaseKServeModel(ABC):
    """What the model repository and the server need of a model: ``name``, ``ready`` (False until loaded or
    started), ``engine`` (True when ``start_engine``/``stop_engine`` must run), and the lifecycle hooks."""

    def __new__(cls, *args: Any, **kwargs: Any) -> BaseKServeModel:
        """Remember the arguments the model was built with: a server with several worker processes builds the model
        again in each of them (:mod:`modelserver.kserve.model_server`)."""
        model = super().__new__(cls)
        model._init_args = (args, kwargs)
        return model

    @abstractmethod
    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = False
        self.engine = False

    async def healthy(self) -> bool:
        """Whether the model can serve; ``self.ready`` by default."""
        return self.ready

    def load(self) -> bool:
        """Load the model (override it); sets and returns ``self.ready``. The server does not call it: the model's
        script does, before ``ModelServer.start``."""
        self.ready = True
        return self.ready

    def start(self) -> None:
        """Called by ``ModelServer.start`` for every model; sets ``ready``."""
        self.ready = True

    async def start_engine(self) -> None:
        """Start an engine the model needs (only when ``engine`` is set)."""
        self.ready = True

    def stop(self) -> None:
        """Called when the model is unloaded or the server stops; clears ``ready``."""
        self.ready = False

    def stop_engine(self) -> None:
        """Stop the engine (only when ``engine`` is set)."""
        self.ready = False


class InferenceVerb(Enum):
    EXPLAIN = 1
    PREDICT = 2


InferReturnValueTypes = Union[dict, InferResponse, list[str]]  # noqa: UP007  (KServe's public alias)
InferReturnType = Union[InferReturnValueTypes, Awaitable[InferReturnValueTypes]]  # noqa: UP007


class InferenceModel(BaseKServeModel):
    """A model that serves inference requests: ``__call__(body, headers=None, verb=InferenceVerb.PREDICT)``."""

    @abstractmethod
    def __call__(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> Any:
        pass

    def get_input_types(self) -> list[dict[str, Any]]:
        """The V2 metadata of the inputs: ``[{"name": ..., "datatype": ..., "shape": [...]}]`` (empty by default);
        may be sync or async."""
        return []

    def get_output_types(self) -> list[dict[str, Any]]:
        """The V2 metadata of the outputs, as :meth:`get_input_types`."""
        return []


def is_v2(protocol: Any) -> bool:
    return protocol != PredictorProtocol.REST_V1


def get_latency_ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 9)


async def _run(method: Any, *args: Any) -> Any:
    if inspect.iscoroutinefunction(method):
        return await method(*args)
    return method(*args)


class Model(InferenceModel):
    """The class a KServe model subclasses: ``Model(name, return_response_headers=False, predictor_config=None)``.

    With ``return_response_headers`` (kept as ``required_response_headers``), ``predict`` and ``postprocess`` get a
    third argument, a dict of headers to add to the HTTP response. ``predictor_config`` (ours; KServe 0.14 to 0.16
    took it as the second argument, which is also accepted) overrides the process-wide one for this model."""

    def __init__(
        self,
        name: str,
        return_response_headers: bool = False,
        predictor_config: PredictorConfig | None = None,
    ) -> None:
        super().__init__(name)
        if isinstance(return_response_headers, PredictorConfig):  # Model(name, predictor_config[, flag])
            given = predictor_config
            predictor_config, return_response_headers = return_response_headers, bool(given)
        self.explainer_host: str | None = None
        self.enable_latency_logging = False
        self.required_response_headers = return_response_headers
        self._predictor_config = predictor_config

    @property
    def predictor_config(self) -> PredictorConfig | None:
        """This model's configuration if it was given one, else the process-wide one
        (:func:`~workers.kserve_api.context.get_predictor_config`), else None."""
        if self._predictor_config is not None:
            return self._predictor_config
        return kserve_context.get_predictor_config()

    @predictor_config.setter
    def predictor_config(self, config: PredictorConfig | None) -> None:
        self._predictor_config = config

    async def __call__(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> tuple[Any, dict[str, str]]:
        """``preprocess -> validate -> predict | explain -> postprocess``; returns ``(response, response_headers)``.

        With ``enable_latency_logging`` (the server sets it from ``--enable_latency_logging``), logs
        ``requestId: <x-request-id or N.A.>, preprocess_ms: ..., explain_ms: ..., predict_ms: ...,
        postprocess_ms: ...`` on the ``kserve.trace`` logger."""
        request_id = headers.get("x-request-id", "N.A.") if headers else "N.A."
        preprocess_ms: float = 0
        explain_ms: float = 0
        predict_ms: float = 0
        response_headers: dict[str, str] = {}

        start = time.time()
        payload = await _run(self.preprocess, body, headers)
        preprocess_ms = get_latency_ms(start, time.time())
        payload = self.validate(payload)
        if verb == InferenceVerb.EXPLAIN:
            start = time.time()
            response = await _run(self.explain, payload, headers)
            explain_ms = get_latency_ms(start, time.time())
        elif verb == InferenceVerb.PREDICT:
            start = time.time()
            if self.required_response_headers:
                response = await _run(self.predict, payload, headers, response_headers)
            else:
                response = await _run(self.predict, payload, headers)
            predict_ms = get_latency_ms(start, time.time())
        else:
            raise NotImplementedError

        start = time.time()
        if self.required_response_headers:
            response = await _run(self.postprocess, response, headers, response_headers)
        else:
            response = await _run(self.postprocess, response, headers)
        postprocess_ms = get_latency_ms(start, time.time())

        if self.enable_latency_logging is True:
            trace_logger.info(
                f"requestId: {request_id}, preprocess_ms: {preprocess_ms}, "
                f"explain_ms: {explain_ms}, predict_ms: {predict_ms}, "
                f"postprocess_ms: {postprocess_ms}"
            )
        return response, response_headers

    def validate(self, payload: Any) -> Any:
        """Reject a V1 body whose ``"instances"`` is not a list (``Expected "instances" to be a list``), or under the
        v2 predictor protocol a body whose ``"inputs"`` is not a list; an :class:`InferRequest` passes as it is. Without
        a predictor configuration the v1 rule applies (KServe's server always has one, v1 by default)."""
        if isinstance(payload, InferRequest) or not isinstance(payload, Mapping):
            return payload
        config = self.predictor_config
        protocol = config.protocol if config is not None else PredictorProtocol.REST_V1.value
        key = {PredictorProtocol.REST_V1.value: "instances", PredictorProtocol.REST_V2.value: "inputs"}.get(protocol)
        if key is not None and key in payload and not isinstance(payload[key], list):
            raise InvalidInput(f'Expected "{key}" to be a list')
        return payload

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Transform the request (identity by default): a dict for v1 routes, an :class:`InferRequest` for v2."""
        return payload

    async def postprocess(
        self,
        result: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        """Transform the result (identity by default): a dict for v1 routes, an :class:`InferResponse` for v2."""
        return result

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        """Run the model. The default forwards ``payload`` to the predictor of :attr:`predictor_config` (v1 or v2
        REST; ``grpc-v2`` raises :class:`UnsupportedProtocol` until gRPC is supported) and returns its answer: a
        dict (v1) or an :class:`InferResponse` (v2). ``NotImplementedError`` without a configuration or host."""
        config = self.predictor_config
        if config is None:
            raise NotImplementedError("Could not find PredictorConfig.")
        if not config.predictor_host:
            raise NotImplementedError("Could not find predictor_host.")
        if config.protocol == PredictorProtocol.GRPC_V2.value:
            raise UnsupportedProtocol(config.protocol)
        return await self._http_predict(payload, headers, response_headers)

    async def _http_predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        config = self.predictor_config
        assert config is not None
        return await rest_client.infer(
            config.predictor_base_url,
            self.name,
            payload,
            config.protocol,
            append_forwardable_headers(headers, {"Content-Type": "application/json"}),
            config.timeout,
            config.retries,
            response_headers,
        )

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Explain the prediction. The default POSTs ``payload`` to ``{explainer_host}/v1/models/{name}:explain``
        (https when the predictor configuration says ``predictor_use_ssl``), or raises
        ``NotImplementedError("Could not find explainer_host.")``."""
        if self.explainer_host is None:
            raise NotImplementedError("Could not find explainer_host.")
        config = self.predictor_config
        if config is not None and config.protocol != PredictorProtocol.REST_V1.value:
            raise UnsupportedProtocol(config.protocol)
        base = {"content-type": "application/json"}
        if headers is not None and "content-type" in headers:
            base["content-type"] = headers["content-type"]
        scheme = "https" if config is not None and config.use_ssl else "http"
        return await rest_client.explain(
            f"{scheme}://{self.explainer_host}",
            self.name,
            payload,
            append_forwardable_headers(headers, base),
            config.timeout if config is not None else 600,
            config.retries if config is not None else 0,
        )
