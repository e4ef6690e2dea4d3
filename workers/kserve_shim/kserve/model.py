"""``kserve.model``: the model classes."""

from workers.kserve_api.model import (
    BaseKServeModel,
    InferenceModel,
    InferenceVerb,
    InferReturnType,
    InferReturnValueTypes,
    Model,
    PredictorConfig,
    PredictorProtocol,
    append_forwardable_headers,
    get_latency_ms,
    is_v2,
)

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
