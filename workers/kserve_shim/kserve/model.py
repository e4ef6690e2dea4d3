"""``kserve.model``: the model classes."""

from workers.kserve_api.model import _FORWARDABLE_HEADERS as _FORWARDABLE_HEADERS  # KServe's tests import it
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
