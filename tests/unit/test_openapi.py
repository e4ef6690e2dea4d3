"""Tests for modelserver.openapi: the document is built from the route table alone and is valid OpenAPI 3.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from modelserver.openapi import ERROR_SCHEMA_REF, build_openapi
from modelserver.router import ANY, Route, Router

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
INFERENCE_ERRORS = {200: "OK", 404: "Model not found", 500: "Worker died", 503: "Prediction failed"}


async def handler() -> None:
    """A stand-in handler; the document never calls it."""


def torchserve_routes() -> list[Route]:
    """The inference and management routes of a TorchServe-compatible server, with their metadata."""
    return [
        Route(ANY, "/ping", handler, summary="Health check", operation_id="ping", tags=("health",),
              responses={200: "Healthy", 500: "Unhealthy"}),
        Route({"OPTIONS"}, "/", handler, summary="API description", operation_id="apiDescription", tags=("meta",)),
        Route({"GET"}, "/api-description", handler, summary="API description", operation_id="apiDescription",
              tags=("meta",)),
        Route(ANY, "/predictions/{model_name}", handler, summary="Predict", operation_id="predictions",
              tags=("inference",), request_body="*/*", responses=INFERENCE_ERRORS, auth="inference"),
        Route(ANY, "/predictions/{model_name}/{model_version}", handler, summary="Predict with a version",
              operation_id="versionPredictions", tags=("inference",), request_body="*/*", responses=INFERENCE_ERRORS),
        Route(ANY, "/predictions/{model_name}/{model_version}/{url_path:path}", handler, tags=("inference",),
              request_body="*/*", responses=INFERENCE_ERRORS),
        Route(ANY, "/explanations/{model_name}", handler, operation_id="explanations", request_body="*/*",
              responses=INFERENCE_ERRORS),
        Route(ANY, "/explanations/{model_name}/{model_version}", handler, request_body="*/*"),
        Route({"POST"}, "/v1/models/{model_name}:predict", handler, summary="KServe V1 predict",
              operation_id="v1Predict", tags=("kserve",), request_body="application/json",
              responses={200: "Predictions", 400: "Bad input", 404: "Model not found"}),
        Route({"POST"}, "/v1/models/{model_name}:explain", handler, operation_id="v1Explain", tags=("kserve",),
              request_body="application/json"),
        Route({"POST"}, "/v2/models/{model_name}/infer", handler, operation_id="v2Infer", tags=("kserve",),
              request_body="application/json", responses={200: "", 400: "", 404: ""}),
        Route({"GET"}, "/v2/health/live", handler, operation_id="v2Live", tags=("kserve", "health")),
        Route({"POST"}, "/model/{name}/version/{version}:{method}", handler, operation_id="mindsporePredict",
              tags=("mindspore",), request_body="application/json"),
        Route({"POST"}, "/model/{name}:{method}", handler, operation_id="mindsporePredict", tags=("mindspore",),
              request_body="application/json"),
        Route({"GET", "POST"}, "/models", handler, summary="List or register models", tags=("management",),
              responses={200: "OK", 400: "Bad request", 409: "Conflict"}, auth="management"),
        Route({"GET", "PUT", "DELETE", "OPTIONS"}, "/models/{model_name}", handler, operation_id="model",
              tags=("management",), responses={200: "OK", 202: "Accepted", 404: "Model not found"}),
        Route({"PUT"}, "/models/{model_name}/{model_version}/set-default", handler, operation_id="setDefault",
              tags=("management",), responses={200: "OK", 404: "Model version not found"}),
        Route({"DELETE"}, "/models/{model_name}/{model_version}", handler, operation_id="unregisterVersion",
              tags=("management",), responses={200: "OK", 204: "", 403: "Cannot remove the default version"}),
        Route({"GET"}, "/models/{model_name}/{model_version}", handler, operation_id="describeVersion",
              tags=("management",)),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi(torchserve_routes(), title="TorchServe APIs", version="0.12.0", description="Inference")


def operations(document: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_document_is_valid_openapi_3_0_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.0.1"
    assert list(document["info"].items()) == [  # TorchServe's order
        ("title", "TorchServe APIs"),
        ("description", "Inference"),
        ("version", "0.12.0"),
    ]
    assert json.loads(json.dumps(document)) == document


def test_paths_are_rendered_from_patterns(document: dict[str, Any]) -> None:
    assert list(document["paths"]) == [
        "/ping",
        "/",
        "/api-description",
        "/predictions/{model_name}",
        "/predictions/{model_name}/{model_version}",
        "/predictions/{model_name}/{model_version}/{url_path}",
        "/explanations/{model_name}",
        "/explanations/{model_name}/{model_version}",
        "/v1/models/{model_name}:predict",
        "/v1/models/{model_name}:explain",
        "/v2/models/{model_name}/infer",
        "/v2/health/live",
        "/model/{name}/version/{version}:{method}",
        "/model/{name}:{method}",
        "/models",
        "/models/{model_name}",
        "/models/{model_name}/{model_version}/set-default",
        "/models/{model_name}/{model_version}",
    ]


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        names = re.findall(r"\{([^{}]+)\}", path)
        declared = item.get("parameters", [])
        assert [parameter["name"] for parameter in declared] == names, path
        for parameter in declared:
            assert parameter["in"] == "path" and parameter["required"] is True
            assert parameter["schema"] == {"type": "string"}
    tail = document["paths"]["/predictions/{model_name}/{model_version}/{url_path}"]["parameters"][2]
    assert "/" in tail["description"]


def test_operations_per_method(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert [m for m in METHODS if m in paths["/ping"]] == ["get", "put", "post", "delete"]
    assert [m for m in METHODS if m in paths["/"]] == ["options"]
    assert [m for m in METHODS if m in paths["/models/{model_name}"]] == ["get", "put", "delete", "options"]
    # Two routes on one path share the path item.
    assert [m for m in METHODS if m in paths["/models/{model_name}/{model_version}"]] == ["get", "delete"]


def test_operation_ids_are_unique_and_derived_from_the_route(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    paths = document["paths"]
    assert paths["/v1/models/{model_name}:predict"]["post"]["operationId"] == "v1Predict"
    assert paths["/ping"]["get"]["operationId"] == "ping_get"
    assert paths["/"]["options"]["operationId"] == "apiDescription"
    assert paths["/api-description"]["get"]["operationId"] == "apiDescription_get"  # the id was taken
    assert paths["/model/{name}:{method}"]["post"]["operationId"] == "mindsporePredict_post"
    assert paths["/models"]["post"]["operationId"] == "models_post"  # no operation_id: derived from the path
    tail = paths["/predictions/{model_name}/{model_version}/{url_path}"]["put"]["operationId"]
    assert tail == "predictions_model_name_model_version_url_path_put"


def test_summary_tags_and_top_level_tags(document: dict[str, Any]) -> None:
    ping = document["paths"]["/ping"]["get"]
    assert ping["summary"] == "Health check" and ping["tags"] == ["health"]
    assert "summary" not in document["paths"]["/v1/models/{model_name}:explain"]["post"]
    assert "tags" not in document["paths"]["/explanations/{model_name}"]["get"]
    assert [tag["name"] for tag in document["tags"]] == [
        "health", "meta", "inference", "kserve", "mindspore", "management",
    ]  # fmt: skip


def test_request_bodies(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        if method in ("get", "delete", "options", "head"):
            assert "requestBody" not in operation, (path, method)
    predict = document["paths"]["/v1/models/{model_name}:predict"]["post"]["requestBody"]
    assert predict == {"required": True, "content": {"application/json": {"schema": {}}}}
    binary = document["paths"]["/predictions/{model_name}"]["put"]["requestBody"]
    assert binary["content"] == {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    assert "requestBody" not in document["paths"]["/models"]["post"]  # the route declares no body


def test_responses(document: dict[str, Any]) -> None:
    responses = document["paths"]["/predictions/{model_name}"]["post"]["responses"]
    assert list(responses) == ["200", "404", "500", "503"]
    assert responses["200"] == {"description": "OK", "content": {"application/json": {"schema": {}}}}
    assert responses["503"] == {
        "description": "Prediction failed",
        "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}},
    }
    # An empty description falls back to the reason phrase.
    v2 = document["paths"]["/v2/models/{model_name}/infer"]["post"]["responses"]
    assert [v2[code]["description"] for code in ("200", "400", "404")] == ["OK", "Bad Request", "Not Found"]
    deleted = document["paths"]["/models/{model_name}/{model_version}"]["delete"]["responses"]
    assert deleted["204"] == {"description": "No Content"}
    for _, _, operation in operations(document):
        for code, response in operation["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            assert (schema == {"$ref": ERROR_SCHEMA_REF}) == (int(code) >= 400)
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "type", "message"]
    assert {name: spec["type"] for name, spec in error["properties"].items()} == {
        "code": "integer",
        "type": "string",
        "message": "string",
    }


def test_built_from_a_router_and_deterministic() -> None:
    router = Router(torchserve_routes())
    first = build_openapi(router.routes, "TorchServe APIs", "0.12.0")
    assert first == build_openapi(torchserve_routes(), "TorchServe APIs", "0.12.0")
    assert first["info"] == {"title": "TorchServe APIs", "version": "0.12.0"}  # none: left out, as Gson omits null
    validate(first)


def test_methods_openapi_cannot_describe_are_left_out() -> None:
    routes = [Route({"PROPFIND"}, "/dav", handler), Route({"PROPFIND", "GET"}, "/both", handler)]
    document = build_openapi(routes, "t", "1")
    assert list(document["paths"]) == ["/both"]
    assert list(document["paths"]["/both"]) == ["get"]
    validate(document)


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ([Route({"GET"}, "/models/{a}", handler), Route({"DELETE"}, "/models/{b}", handler)], "parameter names"),
        ([Route({"GET"}, "/a/{x}", handler), Route({"GET"}, "/a/{x:path}", handler)], "two routes document GET"),
    ],
)
def test_routes_openapi_cannot_tell_apart_are_rejected(routes: list[Route], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_openapi(routes, "t", "1")


def test_empty_table() -> None:
    document = build_openapi([], "t", "1")
    assert document["paths"] == {} and "tags" not in document
    validate(document)


# --------------------------------------------------------------------------------------------------------------
# Any table the router accepts gives a valid document

NAMES = st.sampled_from(["model_name", "model_version", "name", "method", "x"])
LITERALS = st.sampled_from(["models", "predictions", "v1", "v2", "set-default", "api-description", "ready"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.one_of(LITERALS, NAMES.map(lambda name: f"{{{name}}}")), max_size=4))
    last = draw(st.sampled_from(["", "verb_literal", "verb_param", "tail"]))
    if last == "tail":
        segments.append(f"{{{draw(NAMES)}_rest:path}}")
    elif last and segments:
        segments[-1] += ":predict" if last == "verb_literal" else f":{{{draw(NAMES)}_verb}}"
    return "/" + "/".join(segments)


ROUTE_SPECS = st.tuples(
    st.one_of(st.just(ANY), st.frozensets(st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS"]), min_size=1)),
    patterns(),
    st.sampled_from(["", "predict", "describe"]),
    st.sampled_from([None, "application/json", "*/*"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(ROUTE_SPECS, max_size=8))
def test_any_route_table_gives_a_valid_document(specs: list[tuple[frozenset[str], str, str, str | None]]) -> None:
    routes: list[Route] = []
    for methods, pattern, operation_id, body in specs:
        try:
            route = Route(
                methods,
                pattern,
                handler,
                operation_id=operation_id,
                request_body=body,
                responses={200: "OK", 404: "Not found"},
            )
            Router([*routes, route])
        except ValueError:  # a repeated parameter name or a route the router refuses
            continue
        routes.append(route)
    try:
        document = build_openapi(routes, "generated", "1")
    except ValueError:  # two routes OpenAPI cannot tell apart
        reject()
    validate(document)
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
