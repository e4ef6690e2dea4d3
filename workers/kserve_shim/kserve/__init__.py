"""A stand-in for KServe's ``kserve`` package (KServe 0.21's runtime API), so KServe model scripts import without
KServe installed; the names are ``workers.kserve_api``'s.

It is only put on ``sys.path`` (by ``workers.kserve_compat.install_kserve_shim``) when no real ``kserve`` exists.
``ModelServer`` and ``model_server`` are resolved on first use (see ``kserve.model_server``).
"""

from __future__ import annotations

import importlib
from typing import Any

from workers.kserve_api import (
    InferenceVerb,
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    Model,
    ModelRepository,
    PredictorConfig,
    RequestedOutput,
)
from workers.kserve_api.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    NoModelReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)

from .constants import constants
from .utils import utils

__version__ = "0.21.0"

__all__ = [
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "InferenceError",
    "InferenceVerb",
    "InvalidInput",
    "Model",
    "ModelNotFound",
    "ModelNotReady",
    "ModelRepository",
    "NoModelReady",
    "PredictorConfig",
    "RequestedOutput",
    "ServerNotLive",
    "ServerNotReady",
    "UnsupportedProtocol",
    "constants",
    "utils",
]


def __getattr__(name: str) -> Any:
    if name == "model_server":
        return importlib.import_module(".model_server", __name__)
    if name == "ModelServer":
        return importlib.import_module(".model_server", __name__).ModelServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
