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
    type_name = "ModelVersionNotFoundException"

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


# -- management API ------------------------------------------------------------------------------


class Conflict(ServeError):
    status = 409
    type_name = "ConflictStatusException"


class VersionAlreadyRegistered(Conflict):
    def __init__(self, model_name: str, version: str) -> None:
        super().__init__(f"Model version {version} is already registered for model {model_name}")


class UrlRequired(BadRequest):
    def __init__(self) -> None:
        super().__init__("Parameter url is required.")


class InvalidRuntime(BadRequest):
    def __init__(self, runtime: str) -> None:
        super().__init__(f"Invalid RuntimeType value: {runtime}")


class ArchiveNotFound(ServeError):
    """The ``url`` of a registration names nothing we may load (TorchServe's ModelNotFoundException, 404)."""

    status = 404
    type_name = "ModelNotFoundException"


class EmptyUrl(ArchiveNotFound):
    def __init__(self) -> None:
        super().__init__("empty url")


class RelativeUrl(ArchiveNotFound):
    def __init__(self, url: str) -> None:
        super().__init__(f"Relative path is not allowed in url: {url}")


class ModelFileNotFound(ArchiveNotFound):
    def __init__(self, url: str) -> None:
        super().__init__(f"Model not found at: {url}")


class UrlNotAllowed(ArchiveNotFound):
    def __init__(self, url: str) -> None:
        super().__init__(f"Given URL {url} does not match any allowed URL(s)")


class DownloadFailed(BadRequest):
    type_name = "DownloadArchiveException"

    def __init__(self, url: str, reason: str = "") -> None:
        super().__init__(f"Failed to download archive from: {url}")  # TorchServe's exact text
        self.reason = reason
        """Why, for the server log only."""


class AddressRefused(BadRequest):
    """The download host is, or resolves to, a link-local, metadata, multicast or unspecified address."""

    type_name = "DownloadArchiveException"

    def __init__(self, url: str) -> None:
        super().__init__(
            f"Refusing to download from {url}: its host is a link-local, metadata, multicast or unspecified address"
        )


class ModelFileExists(ServeError):
    def __init__(self, file_name: str) -> None:
        super().__init__(f"Model file already exists {file_name}")


class WorkersFailed(ServeError):
    """Synchronous registration or scaling: a worker failed to load; the status is the worker's (500, 507)."""

    def __init__(self, model_name: str, version: str | None, status: int) -> None:
        shown = "null" if version is None else version  # TorchServe prints a Java null
        super().__init__(f"Failed to start workers for model {model_name} version: {shown}", status)


class MaxWorkersBelowMin(BadRequest):
    def __init__(self) -> None:
        super().__init__("max_worker cannot be less than min_worker.")


class NegativeWorkers(ServeError):
    """TorchServe answers ``min_worker < 0`` with a 500 (an IndexOutOfBounds inside it); we keep the status."""

    def __init__(self, count: int) -> None:
        super().__init__(f"min_worker cannot be negative: {count}")


class CannotRemoveDefault(ServeError):
    status = 403
    type_name = "InvalidModelVersionException"

    def __init__(self, model_name: str) -> None:
        super().__init__(f"Cannot remove default version for model {model_name}")


class DefaultVersionNotFound(ServeError):
    status = 404
    type_name = "ModelVersionNotFoundException"

    def __init__(self, model_name: str, version: str) -> None:
        super().__init__(f"Model version {version} does not exist for model {model_name}")


class NoDescribeWorker(ServiceUnavailable):
    def __init__(self, model_name: str) -> None:
        super().__init__(
            f'Model "{model_name}" has no worker to serve describe request. '
            "Please use scale workers API to add workers."
        )


class ModelUnregistered(ServiceUnavailable):
    """A request still queued when its model version was unregistered."""

    def __init__(self, model_name: str) -> None:
        super().__init__(f'Model "{model_name}" was unregistered before a worker took the request.')


class InvalidSnapshot(ServeError):
    """The ``model_snapshot`` a restart restores from cannot be restored (TorchServe's InvalidSnapshotException)."""

    type_name = "InvalidSnapshotException"


class CleanupTimedOut(ServeError):
    """Unregister: the model is gone from the registry, but its workers did not stop within
    ``unregister_model_timeout`` (they are still stopped, in the background)."""

    status = 408
    type_name = "RequestTimeoutException"

    def __init__(self, model_name: str) -> None:
        super().__init__(f"Timed out while cleaning resources: {model_name}")


# -- workflows -----------------------------------------------------------------------------------


class WorkflowNotFound(ServeError):
    """An unknown workflow, or a ``.war`` that is not in the workflow store (TorchServe's WorkflowNotFoundException)."""

    status = 404
    type_name = "WorkflowNotFoundException"


class InvalidWorkflow(ServeError):
    """A ``.war`` whose manifest or specification cannot be served; TorchServe lets its InvalidWorkflowException
    through to the generic handler, so it is a 500."""

    type_name = "InvalidWorkflowException"


class InvalidDag(BadRequest):
    """The specification's ``dag`` is not one start node and no cycle (TorchServe's InvalidDAGException, 400)."""

    type_name = "InvalidDAGException"


class WorkflowConflict(Conflict):
    def __init__(self, workflow_name: str) -> None:
        super().__init__(f"Workflow {workflow_name} is already registered.")


class WorkflowFailed(ServeError):
    """A workflow whose models did not all register: the registered ones are removed again (500)."""

    type_name = "WorkflowException"


class BodyTimeout(ServeError):
    """The client stopped sending the body (``body_read_timeout``): 408, in the protocol's own error shape."""

    status = 408
    type_name = "RequestTimeoutException"

    def __init__(self) -> None:
        super().__init__("The client stopped sending the request body.")


class ClientGone(ConnectionError):
    """The client closed the connection, or the server cut it (a write timeout)."""
