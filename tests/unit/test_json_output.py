"""The fast indented JSON writer gives exactly json.dumps(value, indent=2), errors included."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from collections import OrderedDict
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.json_output import dumps_indent2, dumps_indent2_bytes

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
keys = st.text() | st.integers() | st.floats() | st.booleans() | st.none()
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.tuples(children, children) | st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=500)
@given(values)
def test_same_text_as_json_dumps(value) -> None:
    assert dumps_indent2(value) == json.dumps(value, indent=2)


class Number(int):
    def __repr__(self) -> str:
        return "custom"


class Text(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        [math.nan, math.inf, -math.inf, 1e16, 1.5e-7, -0.0],
        {"é": "ünïcode ✓", "emoji": "🙂", "ctl": '\x00\n\t"'},
        OrderedDict(b=1, a=2),
        [True, 1, 1.0, False, 0],
        [[], {}, [[]], {"a": {}}],
        # flat dicts (the C encoder's path) at several depths, with every scalar kind and the special floats
        {"text": "hello", "n": 42, "f": 1.5, "t": True, "none": None, "nan": math.nan, "inf": -math.inf},
        [{"a": 1}, [{"b": "é\u2028"}, [{"c": 1e16, "d": -0.0}]]],
        {"outer": {"flat": 1, "also": "x"}, "list": [{"k": False}]},
        {"a": Text("a str subclass"), "b": 1},
        {"a": Number(3)},
    ],
)
def test_edge_cases(value) -> None:
    assert dumps_indent2(value) == json.dumps(value, indent=2)


def test_subclasses_and_unknown_types_fall_back_to_json_dumps() -> None:
    assert dumps_indent2([Number(3)]) == json.dumps([Number(3)], indent=2)
    with pytest.raises(TypeError):
        dumps_indent2({"x": object()})
    with pytest.raises(TypeError):
        dumps_indent2({(1, 2): "tuple key"})


@pytest.mark.parametrize("depth", [63, 64, 65, 66, 500])
def test_deep_nesting_is_written_as_json_dumps_writes_it(depth: int) -> None:
    value: Any = {"leaf": [1.5, "x", None]}
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    assert dumps_indent2(value) == json.dumps(value, indent=2)


def test_circular_reference_raises_like_json_dumps() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps_indent2(loop)


# --- the orjson path: bytes, the same text ------------------------------------------------------------------


@settings(max_examples=1000)
@given(values)
def test_bytes_are_json_dumps_text(value) -> None:
    assert dumps_indent2_bytes(value) == json.dumps(value, indent=2).encode()


@pytest.mark.parametrize(
    "value",
    [
        [1e-05, 2.5e-07, 0.0001, 1e16, 1.5e300, -0.0, 5e-324, 0.30000000000000004],
        [math.nan, math.inf, None],
        {"ctl": "".join(map(chr, range(0x80))), "é": "\u2028🙂"},
        {1: "int key", "s": "str key"},
        [2**64 - 1, 2**64, -(2**63), -(2**63) - 1],
        {"a": Text("a str subclass"), "b": Number(3)},
        {"text": "re-run the null 0.00001 e-mail"},
    ],
)
def test_bytes_edge_cases(value) -> None:
    assert dumps_indent2_bytes(value) == json.dumps(value, indent=2).encode()


def test_a_usual_prediction_is_orjsons_text_and_json_dumps_text() -> None:
    value = {"id": 42, "name": "benchmark", "tags": ["echo", "json"], "values": [1, 2.5, 3], "ok": True}
    assert dumps_indent2_bytes(value) == orjson.dumps(value, option=orjson.OPT_INDENT_2)
    assert dumps_indent2_bytes(value) == json.dumps(value, indent=2).encode()


def test_what_only_json_dumps_knows_still_raises_as_it_does() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    for value in ({"x": object()}, [Point(1)], [datetime.date(2026, 1, 1)], {(1, 2): "tuple key"}):
        with pytest.raises(TypeError):
            dumps_indent2_bytes(value)
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps_indent2_bytes(loop)


def test_a_uuid_and_a_plain_enum_are_written_as_their_values() -> None:
    """The known difference (docs/compatibility.md): json.dumps refuses both."""

    class Colour(enum.Enum):
        RED = "red"

    token = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert dumps_indent2_bytes({"id": token, "colour": Colour.RED}) == (
        b'{\n  "id": "12345678-1234-5678-1234-567812345678",\n  "colour": "red"\n}'
    )


def test_an_enum_member_is_written_as_its_value() -> None:
    """The other half of the known difference: json.dumps writes a str enum's member as its str content, orjson as
    its ``.value``; they differ only when ``__new__`` gives the member another value (docs/compatibility.md)."""

    class Label(str, enum.Enum):  # noqa: UP042 - a str mixin enum with its own value, as handlers write them
        def __new__(cls, text: str, value: str) -> Label:
            member = str.__new__(cls, text)
            member._value_ = value
            return member

        CAT = ("cat", "Felis catus")

    assert json.dumps([Label.CAT], indent=2) == '[\n  "cat"\n]'
    assert dumps_indent2_bytes([Label.CAT]) == b'[\n  "Felis catus"\n]'
