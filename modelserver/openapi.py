"""An OpenAPI 3.0.1 document generated from a route table, never maintained by hand.

Each :class:`~modelserver.router.Route` gives one path item (routes whose patterns render to the same OpenAPI path
share it) and one operation per method; an any-method route is documented as GET, POST, PUT and DELETE. Pattern
syntax maps as follows: ``{url_path:path}`` becomes ``{url_path}``, and ``:verb`` suffixes stay in the path as
written (``/v1/models/{model_name}:predict``, ``/model/{name}:{method}``); a route may narrow the methods an
any-method route is documented with (``doc_methods``, as TorchServe documents only ``GET /ping``).

A route describes its query parameters, request body and answers with :mod:`modelserver.api_docs`; a response
given only as a description is any JSON for a 2xx and the route's ``error_schema`` (TorchServe's
``{"code", "type", "message"}`` unless the dialect says otherwise) for a 4xx/5xx. Bodies refer to component schemas
(:mod:`modelserver.openapi_schemas`); a document carries the ones its operations use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from modelserver.api_docs import BINARY, JSON, Body, Param, Reply, Schema
from modelserver.openapi_schemas import SCHEMAS, ref, referenced
from modelserver.router import Route

__all__ = ["ERROR_SCHEMA_REF", "OPENAPI_VERSION", "build_openapi", "openapi_info"]

OPENAPI_VERSION = "3.0.1"
ERROR_SCHEMA_REF = "#/components/schemas/Error"
PATH_PARAMETERS = {
    "model_name": "Name of model.",
    "model_version": "Name of model version.",
    "url_path": "The rest of the path; it may contain '/'. The handler sees it as the request header url_path.",
}

_ANY_OPERATIONS = ("get", "post", "put", "delete")
_OPERATION_ORDER = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_BODY_OPERATIONS = frozenset({"post", "put", "patch"})
_NO_CONTENT_STATUSES = frozenset({204, 304})
_PARAMETER_RE = re.compile(r"\{[^{}]*\}")
_NON_WORD_RE = re.compile(r"[^A-Za-z0-9]+")


def build_openapi(routes: Iterable[Route], title: str, version: str, description: str = "") -> dict[str, Any]:
    """The OpenAPI document of ``routes``, in registration order; a plain JSON-serialisable dict.

    ``info`` lists title, description and version in TorchServe's order; an empty description is left out, as Gson
    leaves out TorchServe's null one.

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
    document: dict[str, Any] = {"openapi": OPENAPI_VERSION, "info": openapi_info(title, version, description)}
    if tags:
        document["tags"] = [{"name": tag} for tag in tags]
    document["paths"] = paths
    document["components"] = {"schemas": {name: SCHEMAS[name] for name in referenced(paths)}}
    return document


def openapi_info(title: str, version: str, description: str = "") -> dict[str, str]:
    """A document's ``info``: title, then the description if there is one, then version (TorchServe's order)."""
    if description:
        return {"title": title, "description": description, "version": version}
    return {"title": title, "version": version}


def _operation_methods(route: Route) -> tuple[str, ...]:
    """The OpenAPI operations of a route, in document order; methods OpenAPI cannot describe are left out."""
    if route.accepts_any:
        return tuple(method.lower() for method in route.doc_methods) or _ANY_OPERATIONS
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
            item["parameters"] = [_path_parameter(route, name) for name in route.compiled.param_names]
    return item


def _path_parameter(route: Route, name: str) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    description = route.param_docs.get(name) or PATH_PARAMETERS.get(name)
    if name == route.compiled.tail and description is None:
        description = "The rest of the path; it may contain '/'."
    if description:
        parameter["description"] = description
    return parameter


def _parameter(param: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": param.type}
    if param.type == "array":
        schema["items"] = {"type": "string"}
    if param.enum:
        schema["enum"] = list(param.enum)
    if param.default is not None:
        schema["default"] = param.default
    parameter: dict[str, Any] = {"name": param.name, "in": param.location, "required": param.required}
    if param.description:
        parameter["description"] = param.description
    parameter["schema"] = schema
    if param.example is not None:
        parameter["example"] = param.example
    return parameter


def _operation(route: Route, method: str, operation_id: str) -> dict[str, Any]:
    operation: dict[str, Any] = {}
    if route.tags:
        operation["tags"] = list(route.tags)
    if route.summary:
        operation["summary"] = route.summary
    if route.description:
        operation["description"] = route.description
    operation["operationId"] = operation_id
    if route.deprecated:
        operation["deprecated"] = True
    if route.parameters:
        operation["parameters"] = [_parameter(param) for param in route.parameters]
    if route.request_body is not None and method in _BODY_OPERATIONS:
        operation["requestBody"] = _request_body(route.request_body)
    operation["responses"] = {
        str(status): _response(status, answer, route.error_schema) for status, answer in sorted(route.responses.items())
    }
    return operation


def _request_body(body: str | Body) -> dict[str, Any]:
    if isinstance(body, str):
        return {"required": True, "content": {body: {"schema": _default_schema(body)}}}
    document: dict[str, Any] = {}
    if body.description:
        document["description"] = body.description
    document["required"] = body.required
    document["content"] = {media: {"schema": _schema(body.schema, media)} for media in body.media_types}
    return document


def _response(status: int, answer: str | Reply, error_schema: str) -> dict[str, Any]:
    if isinstance(answer, str):
        if status in _NO_CONTENT_STATUSES:
            return {"description": answer or _reason(status)}
        answer = Reply(answer, error_schema if status >= 400 else None)
    response: dict[str, Any] = {"description": answer.description or _reason(status)}
    if status not in _NO_CONTENT_STATUSES and answer.media_types:
        response["content"] = {media: {"schema": _schema(answer.schema, media)} for media in answer.media_types}
    return response


def _schema(schema: Schema, media_type: str) -> dict[str, Any]:
    if schema is None:
        return _default_schema(media_type)
    if isinstance(schema, str):
        if schema not in SCHEMAS:
            raise ValueError(f"unknown component schema {schema!r}")
        return ref(schema)
    return dict(schema)


def _default_schema(media_type: str) -> dict[str, Any]:
    """Any JSON value for a JSON media type, any bytes for another."""
    return {} if media_type == JSON or media_type.endswith("+json") else dict(BINARY)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Status {status}"


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
