"""KServe's exceptions (``kserve.errors`` in KServe 0.21), with the messages KServe formats, and their HTTP status.

Each class has a class attribute ``status``: the HTTP status KServe's model server answers when a handler raises
it (our addition; KServe keeps that table in its FastAPI exception handlers). :func:`status_of` is that table for
any exception, including the built-in ``NotImplementedError`` (501) and everything else (500); use it rather than
``exc.status``, because an :class:`InferenceError` built with KServe's own ``status`` argument (a string shown in its
message as ``"[status] reason"``) keeps that value on the instance.

Unlike KServe's classes, ours pass their constructor arguments on to ``Exception.__init__``, so ``exc.args`` holds
them and the exceptions survive ``pickle``; the ``str()`` of each is KServe's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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


class ModelMissingError(Exception):
    """No model file at ``path``; its ``str()`` is the path."""

    status = 500

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:
        return str(self.path)


class InferenceError(RuntimeError):
    """The model failed to run the request: HTTP 500, whatever ``status`` says.

    ``str()`` is ``reason``, prefixed with ``"[status] "`` when KServe's optional ``status`` was given (on the
    instance, ``status`` is then that value; otherwise it reads the class attribute, 500)."""

    status: Any = 500

    def __init__(self, reason: Any, status: Any = None, debug_details: Any = None) -> None:
        super().__init__(reason, status, debug_details)
        self.reason = reason
        if status is not None:
            self.status = status
        self.debug_details = debug_details

    def __str__(self) -> str:
        message = "" if self.reason is None else str(self.reason)
        given = self.__dict__.get("status")
        if given is not None:
            message = f"[{given}] {message}"
        return message


class InvalidInput(ValueError):
    """The request is malformed: HTTP 400. ``str()`` is ``reason``."""

    status = 400

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.reason)


class ModelNotFound(Exception):
    """``"Model with name {model_name} does not exist."``: HTTP 404."""

    status = 404

    def __init__(self, model_name: Any = None) -> None:
        super().__init__(model_name)
        self.reason = f"Model with name {model_name} does not exist."

    def __str__(self) -> str:
        return self.reason


class WorkersShouldBeLessThanMaxWorkersError(Exception):
    """``"Workers cannot be greater than {max_workers}"`` (a start-up error)."""

    status = 500

    def __init__(self, max_workers: Any = None) -> None:
        super().__init__(max_workers)
        self.reason = f"Workers cannot be greater than {max_workers}"

    def __str__(self) -> str:
        return self.reason


class ModelNotReady(RuntimeError):
    """``"Model with name {model_name} is not ready."``, then ``" " + detail`` if given: HTTP 503."""

    status = 503

    def __init__(self, model_name: Any, detail: str | None = None) -> None:
        super().__init__(model_name, detail)
        self.model_name = model_name
        self.error_msg = f"Model with name {model_name} is not ready."
        if detail:
            self.error_msg = f"{self.error_msg} {detail}"

    def __str__(self) -> str:
        return self.error_msg


class UnsupportedProtocol(Exception):
    """``"Unsupported protocol {protocol_version}."``: HTTP 501, as KServe's handler table answers it."""

    status = 501

    def __init__(self, protocol_version: Any = None) -> None:
        super().__init__(protocol_version)
        self.reason = f"Unsupported protocol {protocol_version}."

    def __str__(self) -> str:
        return self.reason


class ServerNotReady(RuntimeError):
    """``"Server is not ready."``, then ``" " + detail`` if given: HTTP 503."""

    status = 503

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.error_msg = "Server is not ready." + (f" {detail}" if detail else "")

    def __str__(self) -> str:
        return self.error_msg


class ServerNotLive(RuntimeError):
    """``"Server is not live."``, then ``" " + detail`` if given: HTTP 503."""

    status = 503

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.error_msg = "Server is not live." + (f" {detail}" if detail else "")

    def __str__(self) -> str:
        return self.error_msg


class NoModelReady(RuntimeError):
    """``ModelServer.start`` got models and none was ready: ``"Model with name a is not ready."`` for one model,
    ``"Models with names a,b are not ready."`` for several, then ``" " + detail`` if given."""

    status = 500

    def __init__(self, models: Iterable[Any], detail: str | None = None) -> None:
        super().__init__(models, detail)
        self.models = models
        self.detail = detail

    def __str__(self) -> str:
        names = [str(model.name) for model in self.models]
        if len(names) == 1:
            message = f"Model with name {names[0]} is not ready."
        else:
            message = f"Models with names {','.join(names)} are not ready."
        if self.detail:
            message = f"{message} {self.detail}"
        self.error_msg = message
        return message


class HTTPStatusError(Exception):
    """The predictor or explainer answered a status other than 2xx (ours; KServe raises httpx's class of the same
    name, and its server answers 500 with ``"HTTPStatusError : <message>"``).

    The message is KServe's: ``"{error}, '{status_code} {reason}' for url '{url}'"``, where ``error`` is the
    ``"error"`` member of a JSON error body (``content-type: application/json``), else the JSON body, else empty."""

    status = 500

    def __init__(self, message: str, status_code: int, reason: str, url: str, body: bytes = b"") -> None:
        super().__init__(message, status_code, reason, url, body)
        self.message = message
        self.status_code = status_code
        self.reason = reason
        self.url = url
        self.body = body

    def __str__(self) -> str:
        return self.message


# KServe 0.21's exception handlers (kserve/protocol/rest/server.py), most specific class first in an MRO walk.
_HANDLER_STATUS: dict[type, int] = {
    InvalidInput: 400,
    InferenceError: 500,
    ModelNotFound: 404,
    ModelNotReady: 503,
    NotImplementedError: 501,
    UnsupportedProtocol: 501,
    ServerNotLive: 503,
    ServerNotReady: 503,
}


def status_of(exc: BaseException) -> int:
    """The HTTP status KServe answers for ``exc``: the nearest class in its MRO that KServe has a handler for
    (``InvalidInput`` 400, ``ModelNotFound`` 404, ``NotImplementedError`` and ``UnsupportedProtocol`` 501,
    ``ModelNotReady``, ``ServerNotReady`` and ``ServerNotLive`` 503, ``InferenceError`` 500), else 500."""
    for cls in type(exc).__mro__:
        status = _HANDLER_STATUS.get(cls)
        if status is not None:
            return status
    return 500
