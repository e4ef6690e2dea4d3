"""The request-body JSON reader gives json.loads' value or exception for every kind of body."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.json_body import loads

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
    b'{"a":9223372036854775807,"b":-9223372036854775808,"c":18446744073709551615}',
    b'{"a":9223372036854775808}',
    b'{"a":-9223372036854775809}',
    b'{"a":18446744073709551616}',
    b'{"a":[1e400,-1e400,1.7976931348623159e308,Infinity,-Infinity]}',
    b'{"a":0.1234567890123456789012}',
    b'{"a":"12345678901234567890"}',
    b"[" * 600 + b"]" * 600,
    b"[" * 2000 + b"]" * 2000,
    b"\xff\xfe{\x00}\x00",
    b'{"a":-0,"b":-0.0,"c":1E+2,"d":5e-324}',
]


def _outcome(body: bytes, read: object) -> tuple[str, str]:
    try:
        return "value", repr(read(body))  # type: ignore[operator]
    except (ValueError, RecursionError) as err:
        return type(err).__name__, str(err)


@pytest.mark.parametrize("body", BODIES)
def test_same_as_json_loads(body: bytes) -> None:
    assert _outcome(body, loads) == _outcome(body, json.loads)


def test_fast_path_value() -> None:
    assert loads(b'{"instances":[{"x":[1,2.5,true,null]}]}') == {"instances": [{"x": [1, 2.5, True, None]}]}


def _outcomes_agree(body: bytes) -> None:
    assert _outcome(body, loads) == _outcome(body, json.loads)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@given(JSON_VALUES)
def test_any_document_reads_as_json_loads_reads_it(value: object) -> None:
    """Integers beyond 64 bits (which orjson would read as floats), every float, surrogates and all."""
    _outcomes_agree(json.dumps(value).encode("utf-8"))
    _outcomes_agree(json.dumps({"instances": [value]}, ensure_ascii=False).encode("utf-8", "surrogatepass"))


@given(st.text(alphabet='0123456789-+.eE:,[]{} "atrufnlsNIy', max_size=40))
def test_number_soup_reads_as_json_loads_reads_it(text: str) -> None:
    """Bodies that are mostly numbers and JSON's punctuation, valid or not: the same value or the same error."""
    _outcomes_agree(text.encode("ascii"))


def _torchserve_worker_value(body: bytes) -> str:
    """What TorchServe's worker gives a handler for a JSON body: ``json.loads(body.decode("utf-8"))``, or the body
    as a bytearray when that fails."""
    try:
        return repr(json.loads(body.decode("utf-8")))
    except (ValueError, RecursionError):
        return repr(bytearray(body))


@pytest.mark.parametrize("body", BODIES)
def test_the_workers_json_input_is_torchserves(body: bytes) -> None:
    from workers.handler_runner import decode_value

    for sent in (body, bytearray(body), memoryview(body)):
        assert repr(decode_value("application/json", sent, True)) == _torchserve_worker_value(body)


@given(JSON_VALUES)
def test_the_workers_json_input_is_torchserves_for_any_document(value: object) -> None:
    from workers.handler_runner import decode_value

    for body in (
        json.dumps(value).encode("utf-8"),
        json.dumps({"data": [value]}, ensure_ascii=False).encode("utf-8", "surrogatepass"),
    ):
        assert repr(decode_value("application/json; charset=utf-8", body, True)) == _torchserve_worker_value(body)


@given(st.text(alphabet='0123456789-+.eE:,[]{} "atrufnlsNIy', max_size=40))
def test_the_workers_json_input_is_torchserves_for_number_soup(text: str) -> None:
    from workers.handler_runner import decode_value

    body = text.encode("ascii")
    assert repr(decode_value("application/json", body, True)) == _torchserve_worker_value(body)
