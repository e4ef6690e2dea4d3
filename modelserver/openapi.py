"""An OpenAPI 3.0.1 document generated from a route table, never maintained by hand.

Each :class:`~modelserver.router.Route` gives one path item (routes whose patterns render to the same OpenAPI path
share it) and one operation per method; an any-method route is documented as GET, POST, PUT and DELETE. Pattern
syntax maps as follows: ``{url_path:path}`` becomes ``{url_path}``, and ``:verb`` suffixes stay in the path as
written (``/v1/models/{model_name}:predict``, ``/model/{name}:{method}``). 4xx and 5xx responses refer to the shared
``Error`` schema, the ``{"code", "type", "message"}`` body every dialect's errors can be described by.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from modelserver.router import Route

__all__ = ["ERROR_SCHEMA_REF", "OPENAPI_VERSION", "build_openapi"]

OPENAPI_VERSION = "3.0.1"
ERROR_SCHEMA_REF = "#/components/schemas/Error"

_ANY_OPERATIONS = ("get", "post", "put", "delete")
_OPERATION_ORDER = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_BODY_OPERATIONS = frozenset({"post", "put", "patch"})
_NO_CONTENT_STATUSES = frozenset({204, 304})
_PARAMETER_RE = re.compile(r"\{[^{}]*\}")
_NON_WORD_RE = re.compile(r"[^A-Za-z0-9]+")


def build_openapi(routes: Iterable[Route], title: str, version: str, description: str = "") -> dict[str, Any]:
    """The OpenAPI document of ``routes``, in registration order; a plain JSON-serialisable dict.

    Raises ValueError when two routes cannot be told apart in OpenAPI: the same method on one rendered path, or
    two paths that differ only in parameter names (OpenAPI treats those as one path).
    """
    paths: dict[str, dict[str, Any]] = {}
    templates: dict[str, str] = {}
    operation_ids = _OperationIds()
    tags: dict[str, None] = {}
    for route in routes:
        methods = _operation_methods(route)
        if not methods:
            continue
        item = _path_item(paths, templates, route)
        for method in methods:
            if method in item:
                raise ValueError(f"two routes document {method.upper()} {route.compiled.template}")
            item[method] = _operation(route, method, operation_ids.claim(route, method, several=len(methods) > 1))
        tags.update(dict.fromkeys(route.tags))
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
    }
    if tags:
        document["tags"] = [{"name": tag} for tag in tags]
    document["paths"] = paths
    document["components"] = {"schemas": {"Error": _error_schema()}}
    return document


def _operation_methods(route: Route) -> tuple[str, ...]:
    """The OpenAPI operations of a route, in document order; methods OpenAPI cannot describe are left out."""
    if route.accepts_any:
        return _ANY_OPERATIONS
    methods = {method.lower() for method in route.methods}
    return tuple(method for method in _OPERATION_ORDER if method in methods)


def _path_item(paths: dict[str, dict[str, Any]], templates: dict[str, str], route: Route) -> dict[str, Any]:
    """The path item for ``route``'s template, created with its path parameters on first use."""
    template = route.compiled.template
    known = templates.setdefault(_PARAMETER_RE.sub("{}", template), template)
    if known != template:
        raise ValueError(f"paths {known!r} and {template!r} differ only in parameter names")
    item = paths.get(template)
    if item is None:
        item = paths[template] = {}
        if route.compiled.param_names:
            item["parameters"] = [
                _path_parameter(name, name == route.compiled.tail) for name in route.compiled.param_names
            ]
    return item


def _path_parameter(name: str, tail: bool) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    if tail:
        parameter["description"] = "The rest of the path; it may contain '/'."
    return parameter


def _operation(route: Route, method: str, operation_id: str) -> dict[str, Any]:
    operation: dict[str, Any] = {}
    if route.tags:
        operation["tags"] = list(route.tags)
    if route.summary:
        operation["summary"] = route.summary
    operation["operationId"] = operation_id
    if route.request_body is not None and method in _BODY_OPERATIONS:
        operation["requestBody"] = _request_body(route.request_body)
    operation["responses"] = {str(status): _response(status, text) for status, text in sorted(route.responses.items())}
    return operation


def _request_body(media_type: str) -> dict[str, Any]:
    json_like = media_type == "application/json" or media_type.endswith("+json")
    schema: dict[str, Any] = {} if json_like else {"type": "string", "format": "binary"}
    return {"required": True, "content": {media_type: {"schema": schema}}}


def _response(status: int, description: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description or _reason(status)}
    if status not in _NO_CONTENT_STATUSES:
        schema: dict[str, Any] = {"$ref": ERROR_SCHEMA_REF} if status >= 400 else {}
        response["content"] = {"application/json": {"schema": schema}}
    return response


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Status {status}"


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["code", "type", "message"],
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "The HTTP status code."},
            "type": {"type": "string", "description": "The error class, e.g. ModelNotFoundException."},
            "message": {"type": "string"},
        },
    }


class _OperationIds:
    """Hands out operation ids, unique across one document.

    A route's id is its ``operation_id`` (or one derived from its path); ``_<method>`` is appended when the route
    has several operations or the id is taken, and then ``_2``, ``_3``... while it still is.
    """

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, route: Route, method: str, several: bool) -> str:
        base = route.operation_id or _derived_id(route.compiled.template)
        candidate = f"{base}_{method}" if several or base in self._taken else base
        unique, counter = candidate, 2
        while unique in self._taken:
            unique, counter = f"{candidate}_{counter}", counter + 1
        self._taken.add(unique)
        return unique


def _derived_id(template: str) -> str:
    """``/v1/models/{model_name}:predict`` -> ``v1_models_model_name_predict``; ``/`` -> ``root``."""
    return _NON_WORD_RE.sub("_", template).strip("_") or "root"
