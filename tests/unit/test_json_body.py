"""The request-body JSON reader gives json.loads' value or exception for every kind of body."""

from __future__ import annotations

import json

import pytest

from modelserver.json_body import loads

BODIES = [
    b'{"instances":[{"data":"hello"}]}',
    b"{}",
    b'{"a":1} ',
    b' {"a":1}',
    b'{"a":1}{"b":2}',
    b'{"a":1}}',
    b'{"a":',
    b"{",
    b"}",
    b'{"a":1,}',
    b'{"a":"\xff"}',
    b'{"a":"\\ud800"}',
    b'{"a":"\xed\xa0\x80"}',
    b"{\x00}",
    b'\xef\xbb\xbf{"a":1}',
    b'{\x00"\x00}\x00',
    b"[1]",
    b'{"a":NaN}',
    b'{"x":1,"x":2}',
    b"",
]


def _outcome(body: bytes, read: object) -> tuple[str, str]:
    try:
        return "value", repr(read(body))  # type: ignore[operator]
    except ValueError as err:
        return type(err).__name__, str(err)


@pytest.mark.parametrize("body", BODIES)
def test_same_as_json_loads(body: bytes) -> None:
    assert _outcome(body, loads) == _outcome(body, json.loads)


def test_fast_path_value() -> None:
    assert loads(b'{"instances":[{"x":[1,2.5,true,null]}]}') == {"instances": [{"x": [1, 2.5, True, None]}]}
