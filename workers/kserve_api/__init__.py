"""Our implementation of KServe's Python runtime API (KServe 0.21): the classes model code subclasses and the
types it reads and writes, importable without KServe and imported only by model code, never by the frontend.

Worker processes also see these names under KServe's own import paths (``import kserve``,
``kserve.protocol.infer_type``...) through the shim of :mod:`workers.kserve_compat` when the real ``kserve`` package
is not installed. ``ModelServer`` is not here: it is the server, in ``modelserver/kserve/``. docs/kserve_api.md
lists what is here and where it differs from KServe.
"""

from __future__ import annotations

from . import constants, utils
from .context import get_predictor_config, set_predictor_config
from .errors import (
    HTTPStatusError,
    InferenceError,
    InvalidInput,
    ModelMissingError,
    ModelNotFound,
    ModelNotReady,
    NoModelReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
    WorkersShouldBeLessThanMaxWorkersError,
    status_of,
)
from .infer_type import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput
from .model import BaseKServeModel, InferenceModel, InferenceVerb, Model, PredictorProtocol
from .model_repository import ModelRepository
from .predictor_config import PredictorConfig

__all__ = [
    "BaseKServeModel",
    "HTTPStatusError",
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "InferenceError",
    "InferenceModel",
    "InferenceVerb",
    "InvalidInput",
    "Model",
    "ModelMissingError",
    "ModelNotFound",
    "ModelNotReady",
    "ModelRepository",
    "NoModelReady",
    "PredictorConfig",
    "PredictorProtocol",
    "RequestedOutput",
    "ServerNotLive",
    "ServerNotReady",
    "UnsupportedProtocol",
    "WorkersShouldBeLessThanMaxWorkersError",
    "constants",
    "get_predictor_config",
    "set_predictor_config",
    "status_of",
    "utils",
]
