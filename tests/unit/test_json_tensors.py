"""The JSON text of answers made in the worker: ``compact_json`` is ``json.dumps(value, separators=(",", ":"))``, and
Angel's text of a value is the same whichever way it is reached."""

from __future__ import annotations

import enum
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.json_tensors import angel_text, compact_json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(blacklist_categories=())),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=4) | st.integers() | st.floats() | st.booleans() | st.none(), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@given(JSON_VALUES)
def test_compact_json_is_json_dumps_with_separators(value: Any) -> None:
    assert compact_json(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("value", [{"a": object()}, [1, {2, 3}], {(1, 2): 3}])
def test_compact_json_fails_as_json_dumps_does(value: Any) -> None:
    with pytest.raises(TypeError) as ours:
        compact_json(value)
    with pytest.raises(TypeError) as theirs:
        json.dumps(value, separators=(",", ":"))
    assert str(ours.value) == str(theirs.value)


class Level(enum.IntEnum):
    HIGH = 2


class Text(str):
    pass


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (-3, "-3"),
        ("a", "a"),
        (True, "true"),
        (False, "false"),
        (Level.HIGH, repr(Level.HIGH)),
        (Text("t"), "t"),
        ([1.5, "x"], '[1.5,"x"]'),
        (None, "null"),
    ],
)
def test_angel_text(value: Any, text: str) -> None:
    assert angel_text(value) == text
