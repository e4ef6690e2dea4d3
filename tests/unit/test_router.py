"""Tests for modelserver.router: patterns, TorchServe path rules, specificity, 404 vs 405."""

from __future__ import annotations

import doctest
from collections.abc import Iterable
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelserver import route_patterns as route_patterns_module
from modelserver import router as router_module
from modelserver.router import ANY, Match, MatchKind, Route, Router, compile_pattern, split_path


async def handler() -> None:
    """A stand-in handler; the router never calls it."""


def make_router(specs: Iterable[tuple[Iterable[str] | str, str]]) -> Router:
    return Router(
        Route(frozenset({methods}) if isinstance(methods, str) else methods, pattern, handler)
        for methods, pattern in specs
    )


# Every dialect's routes on one table (about 40), as the combined server could register them.
ALL_ROUTES: list[tuple[Iterable[str], str]] = [
    (ANY, "/ping"),
    ({"OPTIONS"}, "/"),
    ({"GET"}, "/api-description"),
    (ANY, "/predictions/{model_name}"),
    (ANY, "/predictions/{model_name}/{model_version}"),
    (ANY, "/predictions/{model_name}/{model_version}/{url_path:path}"),
    (ANY, "/explanations/{model_name}"),
    (ANY, "/explanations/{model_name}/{model_version}"),
    ({"POST"}, "/v1/models/{model_name}:predict"),
    ({"POST"}, "/v1/models/{model_name}:explain"),
    ({"POST"}, "/v1/models/{model_name}:{method}"),
    ({"GET"}, "/v1/models"),
    ({"GET"}, "/v1/models/{model_name}"),
    ({"GET"}, "/v1/models/{model_name}/versions/{model_version}"),
    ({"POST"}, "/v1/models/{model_name}/versions/{model_version}:{method}"),
    ({"GET"}, "/v2"),
    ({"GET"}, "/v2/health/live"),
    ({"GET"}, "/v2/health/ready"),
    ({"GET"}, "/v2/models"),
    ({"GET"}, "/v2/models/{model_name}"),
    ({"GET"}, "/v2/models/{model_name}/ready"),
    ({"POST"}, "/v2/models/{model_name}/infer"),
    ({"POST"}, "/v2/models/{model_name}/explain"),
    ({"GET"}, "/v2/models/{model_name}/versions/{model_version}"),
    ({"GET"}, "/v2/models/{model_name}/versions/{model_version}/ready"),
    ({"POST"}, "/v2/models/{model_name}/versions/{model_version}/infer"),
    ({"POST"}, "/v2/repository/models/{model_name}/load"),
    ({"POST"}, "/v2/repository/models/{model_name}/unload"),
    (ANY, "/invocations"),
    (ANY, "/models/{model_name}/invoke"),
    (ANY, "/{model_name}/predict"),
    (ANY, "/{model_name}/{model_version}/predict"),
    ({"GET", "POST"}, "/models"),
    ({"GET", "PUT", "DELETE", "OPTIONS"}, "/models/{model_name}"),
    ({"GET", "PUT", "DELETE"}, "/models/{model_name}/{model_version}"),
    ({"PUT"}, "/models/{model_name}/{model_version}/set-default"),
    (ANY, "/metrics"),
    ({"POST"}, "/model/{name}:{method}"),
    ({"POST"}, "/model/{name}/version/{version}:{method}"),
    ({"GET"}, "/monitoring/prometheus/metrics"),
]


TABLE = make_router(ALL_ROUTES)


@pytest.fixture
def table() -> Router:
    return TABLE


def matched(router: Router, method: str, path: str) -> tuple[str, dict[str, str]]:
    result = router.match(method, path)
    assert result.kind is MatchKind.FULL, (method, path, result)
    assert result.route is not None
    return result.route.pattern, result.params


# --------------------------------------------------------------------------------------------------------------
# The realistic table


@pytest.mark.parametrize(
    ("method", "path", "pattern", "params"),
    [
        ("GET", "/ping", "/ping", {}),
        ("BREW", "/ping", "/ping", {}),
        ("OPTIONS", "/", "/", {}),
        ("POST", "/predictions/resnet", "/predictions/{model_name}", {"model_name": "resnet"}),
        (
            "PUT",
            "/predictions/resnet/2.0",
            "/predictions/{model_name}/{model_version}",
            {"model_name": "resnet", "model_version": "2.0"},
        ),
        (
            "POST",
            "/predictions/m/1/a/b/c",
            "/predictions/{model_name}/{model_version}/{url_path:path}",
            {"model_name": "m", "model_version": "1", "url_path": "a/b/c"},
        ),
        ("POST", "/v1/models/m:predict", "/v1/models/{model_name}:predict", {"model_name": "m"}),
        ("POST", "/v1/models/m:explain", "/v1/models/{model_name}:explain", {"model_name": "m"}),
        (
            "POST",
            "/v1/models/m:classify",
            "/v1/models/{model_name}:{method}",
            {"model_name": "m", "method": "classify"},
        ),
        ("GET", "/v1/models/m", "/v1/models/{model_name}", {"model_name": "m"}),
        (
            "POST",
            "/v1/models/m/versions/3:regress",
            "/v1/models/{model_name}/versions/{model_version}:{method}",
            {"model_name": "m", "model_version": "3", "method": "regress"},
        ),
        ("GET", "/v2/health/live", "/v2/health/live", {}),
        ("GET", "/v2/models/health", "/v2/models/{model_name}", {"model_name": "health"}),
        ("GET", "/v2/models/m/ready", "/v2/models/{model_name}/ready", {"model_name": "m"}),
        (
            "POST",
            "/v2/models/m/versions/1/infer",
            "/v2/models/{model_name}/versions/{model_version}/infer",
            {"model_name": "m", "model_version": "1"},
        ),
        ("POST", "/model/lenet:predict", "/model/{name}:{method}", {"name": "lenet", "method": "predict"}),
        (
            "POST",
            "/model/lenet/version/1:add_common",
            "/model/{name}/version/{version}:{method}",
            {"name": "lenet", "version": "1", "method": "add_common"},
        ),
        ("POST", "/mnist/predict", "/{model_name}/predict", {"model_name": "mnist"}),
        (
            "POST",
            "/mnist/1.0/predict",
            "/{model_name}/{model_version}/predict",
            {"model_name": "mnist", "model_version": "1.0"},
        ),
        # The first literal segment wins over the legacy /{m}/... routes, as in TorchServe's dispatch.
        ("POST", "/predictions/predict", "/predictions/{model_name}", {"model_name": "predict"}),
        (
            "POST",
            "/predictions/x/predict",
            "/predictions/{model_name}/{model_version}",
            {"model_name": "x", "model_version": "predict"},
        ),
        (
            "PUT",
            "/models/m/2/set-default",
            "/models/{model_name}/{model_version}/set-default",
            {"model_name": "m", "model_version": "2"},
        ),
        ("DELETE", "/models/m/2", "/models/{model_name}/{model_version}", {"model_name": "m", "model_version": "2"}),
        ("GET", "/monitoring/prometheus/metrics", "/monitoring/prometheus/metrics", {}),
    ],
)
def test_realistic_table(table: Router, method: str, path: str, pattern: str, params: dict[str, str]) -> None:
    assert matched(table, method, path) == (pattern, params)


def test_table_has_forty_routes_in_registration_order(table: Router) -> None:
    assert [route.pattern for route in table.routes] == [pattern for _, pattern in ALL_ROUTES]
    assert len(table.routes) == 40


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/", {"OPTIONS"}),
        ("DELETE", "/api-description", {"GET"}),
        ("POST", "/models/m/2/set-default", {"PUT"}),
        ("POST", "/models/m", {"GET", "PUT", "DELETE", "OPTIONS"}),
        ("PATCH", "/models", {"GET", "POST"}),
        ("PUT", "/v2/models/m/ready", {"GET"}),
        # ":predict" is POST-only but "/v1/models/{model_name}" (GET) also fits the path: the union is allowed.
        ("PUT", "/v1/models/m:predict", {"GET", "POST"}),
    ],
)
def test_method_not_allowed_lists_the_union(table: Router, method: str, path: str, allowed: set[str]) -> None:
    result = table.match(method, path)
    assert result.kind is MatchKind.METHOD_NOT_ALLOWED
    assert result.route is None and result.params == {}
    assert result.allowed == allowed
    assert result.allow_header() == ", ".join(sorted(allowed))


@pytest.mark.parametrize(
    "path",
    [
        "/predictions",
        "/nothing",
        "/v2/models/m/bogus",
        "/model/lenet",
        "/model/lenet/version/1",
        "/metrics/x",
        "/v1",
        "/v1/models/m/versions",
        "",
        "*",
        "ping",
        "http://host/ping",
        "/model/lenet:",
    ],
)
def test_not_found(table: Router, path: str) -> None:
    result = table.match("GET", path)
    assert result == Match(MatchKind.NOT_FOUND)
    assert result.allowed == frozenset() and result.allow_header() == ""


def test_any_method_and_full_match_carry_no_allowed(table: Router) -> None:
    for method in ("GET", "POST", "DELETE", "HEAD", "M-SEARCH", "get"):
        result = table.match(method, "/ping")
        assert result.kind is MatchKind.FULL and result.allowed == frozenset()


def test_a_path_naming_a_literal_verb_route_gets_its_405_not_a_fallback(table: Router) -> None:
    # GET on a ":predict" path: the verb route is POST-only; the plain parameter route would take GET, but model
    # names hold no ':', so the path names the verb route (TorchServe answers 405 there).
    match = table.match("GET", "/v1/models/m:predict")
    assert match.kind is MatchKind.METHOD_NOT_ALLOWED and "POST" in match.allowed
    assert matched(table, "GET", "/v1/models/m") == ("/v1/models/{model_name}", {"model_name": "m"})


def test_fallback_to_catch_all_that_accepts_the_method() -> None:
    router = make_router([({"GET"}, "/v2/models/{m}/ready"), (ANY, "/v2/models/{m}/{rest:path}")])
    assert matched(router, "GET", "/v2/models/a/ready") == ("/v2/models/{m}/ready", {"m": "a"})
    assert matched(router, "POST", "/v2/models/a/ready") == ("/v2/models/{m}/{rest:path}", {"m": "a", "rest": "ready"})


# --------------------------------------------------------------------------------------------------------------
# Path rules


@pytest.mark.parametrize("path", ["/models/x", "/models/x/", "/models/x//", "/models/x?y=1", "/models/x/?a=/b/c"])
def test_trailing_slashes_and_query_are_ignored(path: str) -> None:
    router = make_router([({"GET"}, "/models/{m}")])
    assert matched(router, "GET", path) == ("/models/{m}", {"m": "x"})


@pytest.mark.parametrize("path", ["/", "//", "/?x=1", "///?a"])
def test_root_has_zero_segments(path: str) -> None:
    router = make_router([({"GET"}, "/"), ({"GET"}, "/{anything:path}")])
    assert matched(router, "GET", path) == ("/", {})


def test_double_slash_keeps_an_empty_segment_that_no_parameter_matches() -> None:
    router = make_router([({"GET"}, "/a/{x}/{y}"), ({"GET"}, "/a/{x}"), (ANY, "/p/{m}/{v}/{rest:path}")])
    assert router.match("GET", "/a//y").kind is MatchKind.NOT_FOUND
    assert router.match("GET", "//a/x").kind is MatchKind.NOT_FOUND
    assert matched(router, "GET", "/a/x") == ("/a/{x}", {"x": "x"})
    # Inside a catch-all tail, empty segments are data.
    assert matched(router, "GET", "/p/m/1/a//b") == ("/p/{m}/{v}/{rest:path}", {"m": "m", "v": "1", "rest": "a//b"})
    assert matched(router, "GET", "/p/m/1//b") == ("/p/{m}/{v}/{rest:path}", {"m": "m", "v": "1", "rest": "/b"})


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/predictions/my%20model", {"model_name": "my model"}),
        ("/predictions/a%2Fb", {"model_name": "a/b"}),  # %2F does not split the segment
        ("/predictions/a%2fb%2F", {"model_name": "a/b/"}),
        ("/pred%69ctions/x", {"model_name": "x"}),  # literals compare with the decoded segment
        ("/predictions/%E2%82%AC", {"model_name": "\u20ac"}),
        ("/predictions/100%25", {"model_name": "100%"}),
        ("/predictions/a%zz", {"model_name": "a%zz"}),  # not an escape: kept as is
        ("/predictions/a+b", {"model_name": "a+b"}),  # '+' is not a space in a path
        ("/predictions/%3A", {"model_name": ":"}),
        ("/predictions/\u20ac%41", {"model_name": "\u20acA"}),  # raw non-ASCII text is kept
        ("/predictions/\u20ac", {"model_name": "\u20ac"}),
    ],
)
def test_percent_decoding_per_segment(path: str, params: dict[str, str]) -> None:
    router = make_router([(ANY, "/predictions/{model_name}"), (ANY, "/predictions/{model_name}/{model_version}")])
    assert matched(router, "POST", path) == ("/predictions/{model_name}", params)


@pytest.mark.parametrize(
    "path",
    [
        "/predictions/%ff",
        "/predictions/%C3",
        "/%80/x",
        "/predictions/a/%ED%A0%80",
        "/predictions/\udcff",
        "/predictions/m/1/x\udcff%41",
    ],
)
def test_invalid_utf8_is_not_found(path: str) -> None:
    router = make_router([(ANY, "/predictions/{model_name}"), (ANY, "/{a}/{b}"), (ANY, "/{rest:path}")])
    assert router.match("POST", path).kind is MatchKind.NOT_FOUND


def test_split_path() -> None:
    assert split_path("/a/b%2Fc/?q") == ["a", "b/c"]
    assert split_path("/") == []
    assert split_path("/a//b//") == ["a", "", "b"]
    assert split_path("a/b") is None
    assert split_path("/%ff") is None


# --------------------------------------------------------------------------------------------------------------
# Verbs and catch-alls


def test_literal_verb() -> None:
    router = make_router([({"POST"}, "/v1/models/{m}:predict"), ({"POST"}, "/v1/models/{m}:explain")])
    assert matched(router, "POST", "/v1/models/a:b:predict") == ("/v1/models/{m}:predict", {"m": "a:b"})
    assert matched(router, "POST", "/v1/models/a%3Ab:explain") == ("/v1/models/{m}:explain", {"m": "a:b"})
    for path in ("/v1/models/a", "/v1/models/a:", "/v1/models/:predict", "/v1/models/a:predictx", "/v1/models/a:x"):
        assert router.match("POST", path).kind is MatchKind.NOT_FOUND, path


def test_parameter_verb() -> None:
    router = make_router([({"POST"}, "/model/{name}:{method}"), ({"POST"}, "/model/{name}/version/{v}:{method}")])
    assert matched(router, "POST", "/model/a:b:c") == ("/model/{name}:{method}", {"name": "a:b", "method": "c"})
    assert matched(router, "POST", "/model/m/version/0:predict") == (
        "/model/{name}/version/{v}:{method}",
        {"name": "m", "v": "0", "method": "predict"},
    )
    for path in ("/model/m", "/model/m:", "/model/:predict", "/model/m/version/1", "/model/m/version/:x"):
        assert router.match("POST", path).kind is MatchKind.NOT_FOUND, path


def test_literal_base_with_verbs() -> None:
    router = make_router([({"GET"}, "/v2/models:list"), ({"GET"}, "/v2/models:{op}"), ({"GET"}, "/v2/models")])
    assert matched(router, "GET", "/v2/models:list") == ("/v2/models:list", {})
    assert matched(router, "GET", "/v2/models:count") == ("/v2/models:{op}", {"op": "count"})
    assert matched(router, "GET", "/v2/models") == ("/v2/models", {})
    assert router.match("GET", "/v2/other:list").kind is MatchKind.NOT_FOUND


def test_catch_all_needs_at_least_one_segment() -> None:
    router = make_router([(ANY, "/p/{m}/{v}/{url_path:path}")])
    assert router.match("GET", "/p/m/1").kind is MatchKind.NOT_FOUND
    assert router.match("GET", "/p/m/1/").kind is MatchKind.NOT_FOUND
    assert matched(router, "GET", "/p/m/1/x") == ("/p/{m}/{v}/{url_path:path}", {"m": "m", "v": "1", "url_path": "x"})
    assert matched(router, "GET", "/p/m/1/x%2Fy/z/")[1]["url_path"] == "x/y/z"


def test_root_catch_all_takes_every_unmatched_path() -> None:
    router = make_router([({"GET"}, "/ping"), (ANY, "/{rest:path}")])
    assert matched(router, "GET", "/ping") == ("/ping", {})
    assert matched(router, "POST", "/ping") == ("/{rest:path}", {"rest": "ping"})
    assert matched(router, "GET", "/a/b/c/d/e/f/g/h") == ("/{rest:path}", {"rest": "a/b/c/d/e/f/g/h"})
    assert router.match("GET", "/").kind is MatchKind.NOT_FOUND


# --------------------------------------------------------------------------------------------------------------
# Specificity (independent of registration order)

SPECIFICITY_CASES = [
    (
        [({"PUT"}, "/models/{m}/{v}/set-default"), ({"PUT"}, "/models/{m}/{v}/{op}")],
        "/models/a/1/set-default",
        "/models/{m}/{v}/set-default",
    ),
    ([({"GET"}, "/v2/health/live"), ({"GET"}, "/v2/{kind}/{name}")], "/v2/health/live", "/v2/health/live"),
    ([({"GET"}, "/v2/health/live"), ({"GET"}, "/v2/{kind}/{name}")], "/v2/health/dead", "/v2/{kind}/{name}"),
    ([({"GET"}, "/a/{x:path}"), ({"GET"}, "/a/{b}")], "/a/z", "/a/{b}"),
    ([({"GET"}, "/a/{x:path}"), ({"GET"}, "/a/{b}/{c}")], "/a/y/z", "/a/{b}/{c}"),
    ([({"GET"}, "/a/{x:path}"), ({"GET"}, "/a/{b}/{c:path}")], "/a/y/z", "/a/{b}/{c:path}"),
    ([({"GET"}, "/a/{x:path}"), ({"GET"}, "/a/{b}/{c}")], "/a/y/z/w", "/a/{x:path}"),
    (
        [({"POST"}, "/m/{n}:predict"), ({"POST"}, "/m/{n}:{verb}"), ({"POST"}, "/m/{n}")],
        "/m/x:predict",
        "/m/{n}:predict",
    ),
    ([({"POST"}, "/m/{n}:{verb}"), ({"POST"}, "/m/{n}")], "/m/x:predict", "/m/{n}:{verb}"),
    ([({"POST"}, "/m/{n}:{verb}"), ({"POST"}, "/m/{n}")], "/m/x", "/m/{n}"),
    ([({"GET"}, "/x:{verb}"), ({"GET"}, "/{n}:list")], "/x:list", "/x:{verb}"),
    ([(ANY, "/predictions/{m}"), (ANY, "/{m}/{v}")], "/predictions/x", "/predictions/{m}"),
    (
        [(ANY, "/predictions/{m}/{v}/{rest:path}"), (ANY, "/{m}/{v}/{w}/predict")],
        "/predictions/a/b/predict",
        "/predictions/{m}/{v}/{rest:path}",
    ),
]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("specs", "path", "pattern"), SPECIFICITY_CASES)
def test_specificity(specs: list[tuple[set[str], str]], path: str, pattern: str, reverse: bool) -> None:
    router = make_router(reversed(specs) if reverse else specs)
    method = next(iter(specs[0][0])) if specs[0][0] != ANY else "GET"
    assert matched(router, method, path)[0] == pattern


# --------------------------------------------------------------------------------------------------------------
# Construction and validation


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "starting with '/'"),
        ("models", "starting with '/'"),
        ("/models/", "empty segment"),
        ("/a//b", "empty segment"),
        ("/{x:path}/y", "last segment only"),
        ("/{x}:verb/y", "last segment only"),
        ("/a:{v}/b", "last segment only"),
        ("/{x:int}", "unknown converter"),
        ("/{x:}", "unknown converter"),
        ("/{x:path}:verb", "cannot carry a :verb"),
        ("/a{b}", "bad segment"),
        ("/{b}c", "bad segment"),
        ("/{1x}", "bad segment"),
        ("/{}", "bad segment"),
        ("/{x", "bad segment"),
        ("/x}", "bad segment"),
        ("/a:b:c", "bad segment"),
        ("/:verb", "bad segment"),
        ("/a:", "bad segment"),
        ("/a%20b", "bad segment"),
        ("/a b", "bad segment"),
        ("/a?b", "bad segment"),
        ("/{x}/{x}", "repeated parameter name(s) x"),
        ("/{x}:{x}", "repeated parameter name(s) x"),
    ],
)
def test_bad_patterns_are_rejected(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match="route pattern") as caught:
        compile_pattern(pattern)
    assert message in str(caught.value)
    with pytest.raises(ValueError):
        Route({"GET"}, pattern, handler)


def test_route_normalizes_methods_tags_and_responses() -> None:
    responses = {200: "OK", 404: "Model not found"}
    route = Route(["get", "Post"], "/x", handler, tags=["a"], responses=responses)  # type: ignore[arg-type]
    responses[500] = "later changes do not leak in"
    assert route.methods == frozenset({"GET", "POST"})
    assert route.tags == ("a",)
    assert dict(route.responses) == {200: "OK", 404: "Model not found"}
    with pytest.raises(TypeError):
        route.responses[201] = "Created"  # type: ignore[index]
    assert Route("get", "/x", handler).methods == frozenset({"GET"})  # type: ignore[arg-type]
    assert Route(ANY, "/x", handler).accepts_any and not route.accepts_any
    assert dict(Route(ANY, "/x", handler).responses) == {200: "OK"}
    same = Route({"POST", "GET"}, "/x", handler, tags=("a",), responses={404: "Model not found", 200: "OK"})
    assert route == same and hash(route) == hash(same)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"methods": frozenset()},
        {"methods": frozenset({"*", "GET"})},
        {"methods": frozenset({"GE T"})},
        {"methods": frozenset({""})},
        {"responses": {}},
        {"responses": {"200": "OK"}},
        {"responses": {700: "nope"}},
        {"responses": {True: "nope"}},
        {"responses": {200: None}},
    ],
)
def test_bad_route_metadata_is_rejected(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"methods": frozenset({"GET"}), "pattern": "/x", "handler": handler, **kwargs}
    with pytest.raises(ValueError, match="route '/x'"):
        Route(**arguments)  # type: ignore[arg-type]


def test_route_is_frozen() -> None:
    route = Route({"GET"}, "/x", handler)
    with pytest.raises(AttributeError):
        route.pattern = "/y"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (({"GET"}, "/models/{m}"), ({"GET", "PUT"}, "/models/{m}")),
        (({"GET"}, "/models/{m}"), ({"GET"}, "/models/{name}")),
        ((ANY, "/ping"), ({"GET"}, "/ping")),
        (({"POST"}, "/model/{a}:{b}"), ({"POST"}, "/model/{c}:{d}")),
        (({"GET"}, "/{p:path}"), ({"GET"}, "/{q:path}")),
    ],
)
def test_overlapping_routes_are_rejected(first: tuple[set[str], str], second: tuple[set[str], str]) -> None:
    router = make_router([first])
    with pytest.raises(ValueError, match="conflicts with"):
        router.add(Route(second[0], second[1], handler))
    assert len(router.routes) == 1


def test_same_shape_different_methods_is_fine() -> None:
    router = make_router([({"GET"}, "/models/{m}"), ({"DELETE"}, "/models/{m}"), ({"POST"}, "/models/{m}:x")])
    assert matched(router, "DELETE", "/models/a")[1] == {"m": "a"}
    result = router.match("PUT", "/models/a")
    assert result.kind is MatchKind.METHOD_NOT_ALLOWED and result.allow_header() == "DELETE, GET"


def test_compiled_pattern_metadata() -> None:
    compiled = compile_pattern("/predictions/{model_name}/{model_version}/{url_path:path}")
    assert compiled.param_names == ("model_name", "model_version", "url_path")
    assert compiled.template == "/predictions/{model_name}/{model_version}/{url_path}"
    assert compiled.shape == "/predictions/{}/{}/{*}"
    assert compiled.first_literal == "predictions" and compiled.tail == "url_path"
    assert compiled.match_segments(["predictions", "m", "1"]) is None
    assert compiled.match_segments(["other", "m", "1", "x"]) is None
    root = compile_pattern("/")
    assert (root.template, root.param_names, root.match_segments([])) == ("/", (), {})
    assert compile_pattern("/v1/models/{m}:predict").first_literal == "v1"
    assert compile_pattern("/{m}/predict").first_literal is None
    assert compile_pattern("/x:list").first_literal is None


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(route_patterns_module, raise_on_error=False)
    assert tried > 0 and failures == 0


# --------------------------------------------------------------------------------------------------------------
# Properties

PARAM_TEXT = st.text(min_size=1)
VERB_TEXT = st.text(min_size=1).filter(lambda text: ":" not in text)  # a verb ends at the last ':'
TAIL_PARTS = st.lists(st.text(), min_size=1, max_size=5).filter(lambda parts: parts[-1] != "")

ROUND_TRIP_PATTERNS = [
    "/predictions/{model_name}",
    "/predictions/{model_name}/{model_version}",
    "/predictions/{model_name}/{model_version}/{url_path:path}",
    "/{model_name}/{model_version}/predict",
    "/v1/models/{model_name}:predict",
    "/model/{name}/version/{version}:{method}",
    "/x:{verb}",
    "/{rest:path}",
]


def _encode(value: str) -> str:
    return quote(value, safe="")


@st.composite
def pattern_and_params(draw: st.DrawFn) -> tuple[str, str, dict[str, str]]:
    """A pattern, a path built from random parameter values, and the parameters the match must give back."""
    pattern = draw(st.sampled_from(ROUND_TRIP_PATTERNS))
    pieces: list[str] = []
    params: dict[str, str] = {}
    for segment in compile_pattern(pattern).segments:
        if segment.tail:
            parts = draw(TAIL_PARTS)
            params[segment.param] = "/".join(parts)  # type: ignore[index]
            pieces.append("/".join(_encode(part) for part in parts))
            continue
        base = segment.literal
        if base is None:
            params[segment.param] = value = draw(PARAM_TEXT)  # type: ignore[index]
            base = _encode(value)
        if segment.verb_param is not None:
            params[segment.verb_param] = verb = draw(VERB_TEXT)
            base = f"{base}:{_encode(verb)}"
        elif segment.verb_literal is not None:
            base = f"{base}:{segment.verb_literal}"
        pieces.append(base)
    return pattern, "/" + "/".join(pieces), params


@given(pattern_and_params(), st.sampled_from(["", "?", "?a=b/c", "/"]))
def test_round_trip(case: tuple[str, str, dict[str, str]], suffix: str) -> None:
    pattern, path, params = case
    router = make_router([(ANY, pattern)])
    assert matched(router, "POST", path + suffix) == (pattern, params)


@given(PARAM_TEXT)
def test_round_trip_in_the_full_table(name: str) -> None:
    encoded = _encode(name)
    assert matched(TABLE, "POST", f"/predictions/{encoded}") == ("/predictions/{model_name}", {"model_name": name})
    assert matched(TABLE, "POST", f"/v1/models/{encoded}:predict") == (
        "/v1/models/{model_name}:predict",
        {"model_name": name},
    )


PATH_ALPHABET = st.sampled_from(list("/%:?{}#+ abf09.") + ["%2F", "%ff", "%C3", "%E2%82%AC", "//", "\udcff", "\x00"])


@given(st.text(), st.one_of(st.text(), st.lists(PATH_ALPHABET).map("".join), st.text().map(lambda t: "/" + t)))
def test_match_never_raises(method: str, path: str) -> None:
    result = TABLE.match(method, path)
    assert isinstance(result, Match)
    if result.kind is MatchKind.FULL:
        assert result.route is not None
        assert set(result.params) == set(result.route.compiled.param_names)
        assert all(result.params.values())
    elif result.kind is MatchKind.METHOD_NOT_ALLOWED:
        assert result.allowed and method not in result.allowed


@given(
    paths=st.lists(
        st.sampled_from(["/ping", "/predictions/a", "/predictions/a/2.0", "/models/a", "/nope", "/v1/models/m:predict"])
        | st.text(alphabet="/abc%2F:.", max_size=12).map(lambda t: "/" + t),
        max_size=40,
    ),
    methods=st.lists(st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS"]), min_size=1, max_size=5),
)
def test_remembered_answers_equal_fresh_ones(paths: list[str], methods: list[str]) -> None:
    cached, fresh_router = make_router(ALL_ROUTES), make_router(ALL_ROUTES)
    for index, path in enumerate(paths * 2):  # every path twice: the second answer comes from the cache
        method = methods[index % len(methods)]
        assert cached.match(method, path) == fresh_router._match(method, path)


def test_the_match_cache_is_bounded_and_forgets_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "CACHED_MATCHES", 8)
    table = make_router(ALL_ROUTES)
    for n in range(20):
        assert table.match("POST", f"/predictions/m{n}").params == {"model_name": f"m{n}"}
        assert table._cached <= 8
    long_path = "/predictions/" + "x" * 300
    assert table.match("POST", long_path).kind is MatchKind.FULL
    assert long_path not in table._cache.get("POST", {})


def test_adding_a_route_forgets_remembered_answers() -> None:
    table = make_router([(ANY, "/ping")])
    assert table.match("GET", "/extra").kind is MatchKind.NOT_FOUND
    table.add(Route(frozenset({"GET"}), "/extra", handler))
    assert table.match("GET", "/extra").kind is MatchKind.FULL
