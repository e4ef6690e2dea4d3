"""Routes several protocols share: the router keeps them as variants, the listener picks by the model's protocol."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

import pytest

from modelserver.errors import ModelNotFound, ServeError
from modelserver.http_messages import Request, Response
from modelserver.listener import Listener
from modelserver.router import MatchKind, Route, Router

from .memory_request import MemoryRequest

PREDICT = "/v1/models/{model_name}:predict"
STATUS = "/v1/models/{model_name}"
POST = frozenset({"POST"})
GET = frozenset({"GET"})


class ProtocolDialect:
    """A dialect of one protocol: it owns the shared paths, answers with its name, and shows errors its own way."""

    def __init__(self, protocol: str, known: set[str], extra: Iterable[Route] = ()) -> None:
        self.protocol = protocol
        self.known = known
        self.extra = list(extra)

    def routes(self) -> Iterable[Route]:
        yield Route(POST, PREDICT, self.predict, protocol=self.protocol, model_param="model_name")
        yield from self.extra

    async def predict(self, request: Request, params: dict[str, str]) -> Response:
        name = params["model_name"]
        if name not in self.known:
            raise ModelNotFound(name)
        body = json.dumps({"served_by": self.protocol, "model": name}).encode()
        return Response(200, {"Content-Type": "application/json"}, body)

    def error_response(self, error: ServeError, request: Request) -> Response:
        shapes = {
            "torchserve": {"code": error.status, "type": error.type_name, "message": error.message},
            "kserve": {"error": error.message},
            "angel": {"error": error.message},
        }
        status = 200 if self.protocol == "angel" else error.status  # Angel answers its errors with 200
        return Response(status, {"Content-Type": "application/json"}, json.dumps(shapes[self.protocol]).encode())


MODELS = {"ts_model": "torchserve", "ks_model": "kserve", "angel_model": "angel", "odd_model": "mindspore"}


def listener(default_protocol: str = "torchserve", protocol_of: bool = True) -> Listener:
    known = set(MODELS)
    dialects = [ProtocolDialect(p, known) for p in ("torchserve", "kserve", "angel")]
    return Listener(
        "inference",
        dialects,
        1000,
        protocol_of=MODELS.get if protocol_of else None,
        default_protocol=default_protocol,
    )


def call(server: Listener, path: str, method: str = "POST") -> tuple[int, dict]:
    response = asyncio.run(server.dispatch(MemoryRequest(method, path)))
    assert isinstance(response, Response)
    return response.status, json.loads(bytes(response.body)) if response.body else {}


@pytest.mark.parametrize(
    ("model", "protocol"), [("ts_model", "torchserve"), ("ks_model", "kserve"), ("angel_model", "angel")]
)
def test_each_model_is_served_by_its_own_protocol(model: str, protocol: str) -> None:
    assert call(listener(), f"/v1/models/{model}:predict") == (200, {"served_by": protocol, "model": model})


def test_the_choice_follows_the_model_not_the_first_dialect_mounted() -> None:
    server = listener(default_protocol="angel")
    assert call(server, "/v1/models/ks_model:predict")[1]["served_by"] == "kserve"
    assert call(server, "/v1/models/ts_model:predict")[1]["served_by"] == "torchserve"


@pytest.mark.parametrize(
    ("default", "expected"),
    [
        ("torchserve", (404, {"code": 404, "type": "ModelNotFoundException", "message": "Model not found: nope"})),
        ("kserve", (404, {"error": "Model not found: nope"})),
        ("angel", (200, {"error": "Model not found: nope"})),
    ],
)
def test_an_unknown_model_gets_the_default_protocols_route_and_error_shape(default: str, expected: tuple) -> None:
    assert call(listener(default_protocol=default), "/v1/models/nope:predict") == expected


def test_a_protocol_without_a_variant_falls_back_to_the_default() -> None:
    assert call(listener(default_protocol="kserve"), "/v1/models/odd_model:predict")[1]["served_by"] == "kserve"


def test_without_a_protocol_lookup_the_default_serves() -> None:
    assert call(listener(default_protocol="angel", protocol_of=False), "/v1/models/ks_model:predict")[1] == {
        "served_by": "angel",
        "model": "ks_model",
    }


def test_model_names_with_colons_resolve_by_the_part_before_the_verb() -> None:
    models = {"a:b": "kserve"}
    server = Listener(
        "inference", [ProtocolDialect(p, {"a:b"}) for p in ("torchserve", "kserve")], 1000, protocol_of=models.get
    )
    assert call(server, "/v1/models/a:b:predict") == (200, {"served_by": "kserve", "model": "a:b"})


def test_a_wrong_method_on_a_shared_path_is_405_with_allow() -> None:
    server = listener()
    response = asyncio.run(server.dispatch(MemoryRequest("GET", "/v1/models/ts_model:predict")))
    assert response.status == 405
    assert response.headers is not None and response.headers["Allow"] == "POST"


def test_routes_of_every_variant_are_listed_with_their_owner() -> None:
    server = listener()
    owners = {(route.pattern, route.protocol): dialect.protocol for route, dialect in server.owners()}  # type: ignore[attr-defined]
    assert owners == {(PREDICT, p): p for p in ("torchserve", "kserve", "angel")}
    assert [route.pattern for route in server.router.routes] == [PREDICT]  # one path in the API description


# -- the router's rules ------------------------------------------------------------------------------------------


async def handler(request: Request, params: dict[str, str]) -> Response:
    return Response()


def test_router_keeps_variants_by_protocol() -> None:
    router = Router()
    for protocol in ("torchserve", "kserve", "angel"):
        router.add(Route(POST, PREDICT, handler, protocol=protocol, model_param="model_name"))
    match = router.match("POST", "/v1/models/m:predict")
    assert match.kind is MatchKind.FULL and match.params == {"model_name": "m"}
    assert match.variants is not None and sorted(match.variants) == ["angel", "kserve", "torchserve"]
    assert match.route is match.variants["torchserve"]  # the first one added is the primary


@pytest.mark.parametrize(
    "second",
    [
        Route(POST, PREDICT, handler, protocol="torchserve", model_param="model_name"),  # the same protocol twice
        Route(POST, PREDICT, handler),  # no protocol
        Route(POST, PREDICT, handler, protocol="kserve", model_param="other"),  # another model parameter
        Route(frozenset({"POST", "PUT"}), PREDICT, handler, protocol="kserve", model_param="model_name"),  # methods
    ],
)
def test_router_refuses_routes_that_cannot_share(second: Route) -> None:
    router = Router([Route(POST, PREDICT, handler, protocol="torchserve", model_param="model_name")])
    with pytest.raises(ValueError, match="conflicts"):
        router.add(second)


def test_plain_routes_have_no_variants() -> None:
    router = Router(
        [Route(GET, STATUS, handler), Route(POST, PREDICT, handler, protocol="kserve", model_param="model_name")]
    )
    assert router.match("GET", "/v1/models/m").variants is None
    assert router.match("POST", "/v1/models/m:predict").variants is None  # one protocol only: nothing to choose
