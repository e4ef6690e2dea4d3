"""``kserve.errors``: KServe's exceptions."""

from workers.kserve_api.errors import (
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

__all__ = [
    "HTTPStatusError",
    "InferenceError",
    "InvalidInput",
    "ModelMissingError",
    "ModelNotFound",
    "ModelNotReady",
    "NoModelReady",
    "ServerNotLive",
    "ServerNotReady",
    "UnsupportedProtocol",
    "WorkersShouldBeLessThanMaxWorkersError",
    "status_of",
]
