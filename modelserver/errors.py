"""Every failure a client can see, one class each, with its HTTP status as a class attribute.

Dialects render these in their own shape (TorchServe: ``{"code", "type", "message"}``); the core
only raises them. ``type_name`` is the Java exception name TorchServe reports for the same case.
"""

from __future__ import annotations


class ServeError(Exception):
    """Base class: ``status`` and ``type_name`` travel with the error."""

    status = 500
    type_name = "InternalServerException"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class ResourceNotFound(ServeError):
    status = 404
    type_name = "ResourceNotFoundException"

    def __init__(self, message: str = "Requested resource is not found, please refer to API document.") -> None:
        super().__init__(message)


class MethodNotAllowed(ServeError):
    status = 405
    type_name = "MethodNotAllowedException"

    def __init__(
        self,
        allowed: frozenset[str] = frozenset(),
        message: str = "Requested method is not allowed, please refer to API document.",
    ) -> None:
        super().__init__(message)
        self.allowed = allowed


class ModelNotFound(ServeError):
    status = 404
    type_name = "ModelNotFoundException"

    def __init__(self, model_name: str) -> None:
        super().__init__(f"Model not found: {model_name}")


class ModelVersionNotFound(ServeError):
    status = 404
    type_name = "ModelNotFoundException"

    def __init__(self, model_name: str, version: str) -> None:
        super().__init__(f"Model version: {version} does not exist for model: {model_name}")


class BadRequest(ServeError):
    status = 400
    type_name = "BadRequestException"


class RequestTooLarge(ServeError):
    """TorchServe answers an oversized body with a bare 413 and no body."""

    status = 413
    type_name = "TooLongFrameException"

    def __init__(self, message: str = "Request entity too large") -> None:
        super().__init__(message)


class ServiceUnavailable(ServeError):
    status = 503
    type_name = "ServiceUnavailableException"


class NoWorker(ServiceUnavailable):
    """The model has no worker, or its queue is full (TorchServe's wording for both)."""

    def __init__(self, model_name: str, version: str | None = None) -> None:
        who = f'Model "{model_name}"' if version is None else f'Model "{model_name}" Version {version}"'
        super().__init__(
            f"{who} has no worker to serve inference request. Please use scale workers API to add workers. "
            "If this is a sequence inference, please check if it is closed, or expired; "
            "or exceeds maxSequenceJobQueueSize"
        )


class RequestExpired(ServiceUnavailable):
    """The request waited longer than the model's ``clientTimeoutInMills``."""

    def __init__(self) -> None:
        super().__init__("Request timed out in the queue before a worker took it (clientTimeoutInMills).")


class BackendError(ServeError):
    """A failure reported by the worker for one request (handler error, bad output, OOM)."""

    type_name = "InternalServerException"


class WorkerDied(ServeError):
    status = 500
    type_name = "InternalServerException"

    def __init__(self, status: int = 500) -> None:
        super().__init__("Worker died.", status)


class ServerShuttingDown(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("Server is shutting down.")
