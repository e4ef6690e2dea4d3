"""KServe's runtime constants (``kserve.constants.constants`` in KServe 0.21) that model code reads.

The Kubernetes names of KServe's client SDK are left out: this package is the model runtime, not the SDK.
"""

from __future__ import annotations

import os
from enum import Enum

from ..oip_grpc import CONTENTS_FIELD

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_HTTPS_PORT",
    "DEFAULT_HTTP_PORT",
    "EXPLAINER_BASE_URL_FORMAT",
    "GRPC_CONTENT_DATATYPE_MAPPINGS",
    "INFERENCE_CONTENT_LENGTH_HEADER",
    "KSERVE_LOGLEVEL",
    "KSERVE_MODEL_SERVER_NAME",
    "KSERVE_TLS_CERT_FILE_ENV",
    "KSERVE_TLS_KEY_FILE_ENV",
    "LLM_STATS_KEY",
    "MAX_GRPC_MESSAGE_LENGTH",
    "ModelType",
    "PredictorProtocol",
    "V1_ROUTE_PREFIX",
    "V2_ROUTE_PREFIX",
]

KSERVE_MODEL_SERVER_NAME = "kserve"
KSERVE_LOGLEVEL = os.environ.get("KSERVE_LOGLEVEL", "INFO").upper()

DEFAULT_HTTP_PORT = 8080
DEFAULT_HTTPS_PORT = 8443
DEFAULT_GRPC_PORT = 8081
MAX_GRPC_MESSAGE_LENGTH = 8388608
"""Default gRPC max send/receive message length (8 MiB)."""

KSERVE_TLS_CERT_FILE_ENV = "KSERVE_TLS_CERT_FILE"
KSERVE_TLS_KEY_FILE_ENV = "KSERVE_TLS_KEY_FILE"

V1_ROUTE_PREFIX = "/v1"
V2_ROUTE_PREFIX = "/v2"

INFERENCE_CONTENT_LENGTH_HEADER = "inference-header-content-length"
"""The header holding the length of the JSON part of a binary (tensor data extension) body."""

EXPLAINER_BASE_URL_FORMAT = "{0}://{1}"
LLM_STATS_KEY = "llm-stats"

GRPC_CONTENT_DATATYPE_MAPPINGS = dict(CONTENTS_FIELD)
"""The contents field of each datatype in a gRPC tensor (KServe's name; a copy of ours)."""


class PredictorProtocol(Enum):
    """The protocol a transformer uses to call its predictor."""

    REST_V1 = "v1"
    REST_V2 = "v2"
    GRPC_V2 = "grpc-v2"


class ModelType(Enum):
    EXPLAINER = 1
    PREDICTOR = 2
