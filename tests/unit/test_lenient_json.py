"""The lenient JSON reader: strict JSON reads as json.loads reads it; Gson's lenient forms read as Gson reads them."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelserver.lenient_json import MAX_DEPTH, LenientJsonError, loads

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20
)


@given(documents, st.booleans())
def test_strict_json_reads_as_json_loads_reads_it(value, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{'url': 'a.mar', 'initial_workers': 1}", {"url": "a.mar", "initial_workers": 1}),
        (
            "{url: a.mar, initial_workers: 1, synchronous: TRUE}",
            {"url": "a.mar", "initial_workers": 1, "synchronous": True},
        ),
        ("{url = 'a.mar'; model_name => x,}", {"url": "a.mar", "model_name": "x"}),
        ("{// a comment\n url: 'a.mar' /* another */ # and one more\n}", {"url": "a.mar"}),
        ("[1;2,,3,]", [1, 2, None, 3]),
        (')]}\'\n{"a": null}', {"a": None}),
        ("{'it''s': 'x'}", None),
        ("{'q': 'it\\'s'}", {"q": "it's"}),
        ("{a: -1.5e2, b: 007x}", {"a": -150.0, "b": "007x"}),
    ],
)
def test_gsons_lenient_forms(text: str, expected: object) -> None:
    if expected is None:
        with pytest.raises(LenientJsonError):
            loads(text)
    else:
        assert loads(text) == expected


def test_special_floats() -> None:
    value = loads("[NaN, Infinity, -Infinity]")
    assert math.isnan(value[0]) and value[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize(
    "text", ["", "{", "{a}", "{a: 1", "[1 2]", "{'a: 1}", "{a: 1} x", "/* open", '"\\q"', '"\\u12"']
)
def test_broken_text_is_an_error_naming_where(text: str) -> None:
    with pytest.raises(LenientJsonError, match="at character"):
        loads(text)


def test_depth_is_bounded() -> None:
    with pytest.raises(LenientJsonError, match="nesting"):
        loads("[" * (MAX_DEPTH + 5))
