"""The OpenAPI documents of the server's real listeners, and what the new SageMaker and legacy routes match.

Built from :class:`~modelserver.app.ModelServer`'s own listeners (no model, no worker, no socket): every port's
document is valid OpenAPI 3.0, has unique operation ids, describes each body with a component schema and each
parameter, and never claims a JSON-only answer for a route whose body is the handler's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from modelserver.api_docs import Body, Param, Reply
from modelserver.app import ModelServer
from modelserver.config import Address, ServerConfig
from modelserver.listener import Listener
from modelserver.openapi import build_openapi
from modelserver.router import ANY, MatchKind, Route

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


async def handler(request: Any, params: dict[str, str]) -> Any:
    raise AssertionError("never called")


def listeners(**config: Any) -> dict[str, tuple[ModelServer, Listener]]:
    server = ModelServer(ServerConfig(disable_token_authorization=True, **config))
    return {listener.name: (server, listener) for _, listener in server.listeners()}


def document(server: ModelServer, listener: Listener) -> dict[str, Any]:
    return server._describe(listener)


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


SHARED_PORT = Address("http", "127.0.0.1", 8080)
CONFIGS = {
    "separate ports": {},
    "one port": {"inference_address": SHARED_PORT, "management_address": SHARED_PORT},
    "kserve default": {"default_protocol": "kserve"},
    "torchserve only": {"inference_protocols": ("torchserve",)},
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_every_port_document_is_valid_with_unique_ids_and_described_bodies(config: dict[str, Any]) -> None:
    for server, listener in listeners(**config).values():
        doc = document(server, listener)
        validate(doc)
        ids = [operation["operationId"] for _, _, operation in operations(doc)]
        assert len(ids) == len(set(ids)), listener.name
        assert doc["components"]["schemas"], listener.name
        for path, method, operation in operations(doc):
            for parameter in operation.get("parameters", []):
                assert parameter.get("description"), (path, method, parameter["name"])
            for parameter in doc["paths"][path].get("parameters", []):
                assert parameter.get("description"), (path, parameter["name"])
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    if int(status) >= 400:
                        assert "$ref" in content["schema"], (path, method, status, media)


def test_inference_document_matches_torchserve_paths_and_operation_ids() -> None:
    server, listener = listeners()["inference"]
    paths = document(server, listener)["paths"]
    expected = {
        ("/", "options"): "apiDescription",
        ("/ping", "get"): "ping",
        ("/predictions/{model_name}", "post"): "predictions",
        ("/predictions/{model_name}/{model_version}", "post"): "version_predictions",
        ("/api-description", "get"): "api-description",
        ("/invocations", "post"): "invocations",
        ("/models/{model_name}/invoke", "post"): "invoke",
        ("/{model_name}/predict", "get"): "legacy_predict_get",
        ("/v1/models/{model_name}:predict", "post"): "predictions_v1",
        ("/v2/models/{model_name}/infer", "post"): "predictions_v2",
        ("/v2/health/live", "get"): "oipLive",
        ("/metrics", "get"): "metrics",
    }
    for (path, method), operation_id in expected.items():
        assert paths[path][method]["operationId"] == operation_id, (path, method)
    assert paths["/api-description"]["get"]["deprecated"] is True
    assert list(paths["/ping"]) == ["get"]  # an any-method route, documented as TorchServe does
    ping = paths["/ping"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ping == {"$ref": "#/components/schemas/Status"}
    [model_name] = paths["/invocations"]["post"]["parameters"]
    assert (model_name["name"], model_name["in"], model_name["required"]) == ("model_name", "query", False)
    assert [p["name"] for p in paths["/{model_name}/predict"]["get"]["parameters"]] == ["data"]


def test_handler_answers_are_any_media_type_and_errors_follow_the_protocol() -> None:
    server, listener = listeners()["inference"]
    paths = document(server, listener)["paths"]
    for path in ("/predictions/{model_name}", "/invocations", "/v1/models/{model_name}:predict"):
        operation = paths[path]["post"]
        assert list(operation["responses"]["200"]["content"]) == ["*/*"]
        assert "type" not in operation["responses"]["200"]["content"]["*/*"]["schema"]  # bytes, text or JSON
        assert list(operation["requestBody"]["content"]) == ["*/*"]
    assert "content" not in paths["/predictions/{model_name}"]["post"]["responses"]["413"]  # an empty body
    shared = paths["/v2/models/{model_name}/infer"]["post"]["responses"]["404"]["content"]["application/json"]
    assert shared["schema"] == {"$ref": "#/components/schemas/AnyError"}
    kserve = paths["/v2/models/{model_name}/ready"]["get"]["responses"]["404"]["content"]["application/json"]
    assert kserve["schema"] == {"$ref": "#/components/schemas/KServeError"}
    infer = paths["/v2/models/{model_name}/versions/{model_version}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceRequest"
    }


def test_management_and_metrics_documents() -> None:
    ports = listeners()
    management = document(*ports["management"])
    paths = management["paths"]
    assert paths["/models"]["get"]["operationId"] == "listModels"
    assert paths["/models/{model_name}"]["put"]["operationId"] == "setAutoScale"
    assert paths["/models/{model_name}/{model_version}"]["delete"]["operationId"] == "version_unregisterModel"
    register = paths["/models"]["post"]
    assert [p["name"] for p in register["parameters"]][:3] == ["url", "model_name", "handler"]
    assert register["parameters"][0]["required"] is True
    assert register["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Status"
    }
    schemas = management["components"]["schemas"]
    assert {"Error", "Status", "ModelList", "ModelDescriptions", "ModelDescription"} <= set(schemas)
    metrics = document(*ports["metrics"])
    [name] = metrics["paths"]["/metrics"]["get"]["parameters"]
    assert name["name"] == "name[]" and name["schema"]["type"] == "array"
    assert list(metrics["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == [
        "text/plain; version=0.0.4; charset=utf-8"
    ]


@pytest.mark.parametrize(
    ("method", "path", "operation_id"),
    [
        ("POST", "/invocations", "invocations"),
        ("GET", "/invocations", "invocations"),
        ("POST", "/models/m/invoke", "invoke"),
        ("GET", "/m/predict", "legacy_predict"),
        ("PUT", "/m/1.0/predict", "version_legacy_predict"),
        ("POST", "/predictions/predict", "predictions"),  # a model named "predict"
        ("POST", "/predictions/m/predict", "version_predictions"),  # version "predict"
        ("GET", "/v2/models/m", "oipModelMetadata"),
        ("GET", "/v2/models/stats", "tritonAllStats"),
        ("GET", "/models/m", "describeModel"),  # one port for both APIs: management keeps its routes
        ("PUT", "/models/m/1.0", "version_setAutoScale"),
    ],
)
def test_new_routes_take_only_their_own_paths(method: str, path: str, operation_id: str) -> None:
    server, listener = listeners(**CONFIGS["one port"])["inference"]
    match = listener.router.match(method, path)
    assert match.kind is MatchKind.FULL
    assert match.route is not None and match.route.operation_id == operation_id


def test_route_docs_render_parameters_bodies_and_replies() -> None:
    routes = [
        Route(
            ANY,
            "/things/{thing}",
            handler,
            operation_id="things",
            doc_methods=("GET", "POST"),
            parameters=(
                Param("tag", "Tags to keep", type="array"),
                Param("mode", "How", enum=("a", "b"), default="a"),
                Param("X-Trace", "A header", location="header", required=True),
            ),
            param_docs={"thing": "The thing."},
            request_body=Body("Status", ("application/json", "application/x-thing")),
            responses={
                200: Reply("Listed", "ModelDescriptions"),
                204: "",
                404: "Gone",
                413: Reply("Big", media_types=()),
            },
            error_schema="KServeError",
            deprecated=True,
        )
    ]
    doc = build_openapi(routes, "t", "1")
    validate(doc)
    item = doc["paths"]["/things/{thing}"]
    assert list(item) == ["parameters", "get", "post"]
    assert item["parameters"][0]["description"] == "The thing."
    post = item["post"]
    assert post["operationId"] == "things_post" and post["deprecated"] is True
    tag, mode, trace = post["parameters"]
    assert tag["schema"] == {"type": "array", "items": {"type": "string"}}
    assert mode["schema"] == {"type": "string", "enum": ["a", "b"], "default": "a"}
    assert (trace["in"], trace["required"]) == ("header", True)
    assert post["requestBody"]["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/Status"}},
        "application/x-thing": {"schema": {"$ref": "#/components/schemas/Status"}},
    }
    assert "requestBody" not in item["get"]
    responses = post["responses"]
    assert responses["204"] == {"description": "No Content"}
    assert responses["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/KServeError"}
    assert responses["413"] == {"description": "Big"}
    # only the schemas used, with the ones they refer to
    assert set(doc["components"]["schemas"]) == {"Status", "ModelDescriptions", "ModelDescription", "KServeError"}


def test_an_unknown_component_schema_is_refused() -> None:
    route = Route({"GET"}, "/x", handler, responses={200: Reply("x", "NoSuchSchema")})
    with pytest.raises(ValueError, match="NoSuchSchema"):
        build_openapi([route], "t", "1")
