"""Angel Serving's codec and metrics summary: instance forms to feature vectors, prediction maps, the summary body."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from modelserver.angel_codec import (
    _SHORT,
    AngelError,
    InputInfo,
    Instance,
    _checked_keys,
    _checked_values,
    _tensors,
    decode_instances,
    input_info,
    prediction_map,
    read_body,
)
from modelserver.dialects.angel import metrics_summary
from modelserver.metrics import Summary
from workers.protocol import Attached
from workers.tensors import Tensor

INFO = InputInfo("DT_INT32", "DT_FLOAT", 10)


def vectors(body: object, info: InputInfo = INFO) -> list[tuple[str | None, list[int], list[float]]]:
    return [(each.name, *(tensor.to_list() for tensor in tensors(each))) for each in decode_instances(body, info)]


def tensors(instance: Instance) -> list[Tensor]:
    """An instance's tensor maps as the worker reads them: validated tensors (a large one's data is attached)."""
    return [Tensor.from_wire({**wire, "data": _plain(wire["data"])}) for wire in instance.tensors]


def _plain(data: object) -> object:
    return data.data if isinstance(data, Attached) else data


def test_every_instance_form_gives_the_same_feature_vector() -> None:
    forms = [
        [1.0, 0.0, 2.5],
        {"values": {"0": 1.0, "1": 0.0, "2": "2.5"}, "key": "k"},
        {"values": [1.0, 0.0, 2.5], "key": 3},
        {"0": 1.0, "1": 0.0, "2": 2.5},
        {"sparseIndices": [0, 1, 2], "sparseValues": [1.0, 0.0, 2.5]},
        "0:1 1:0 2:2.5",
    ]
    for form in forms:
        [(_, indices, values)] = vectors({"instances": [form]})
        assert (indices, values) == ([0, 1, 2], [1.0, 0.0, 2.5]), form


def test_names_come_from_the_other_field() -> None:
    assert [
        name for name, _, _ in vectors({"instances": [{"values": [1.0], "key": 3}, {"key": "a", "v": {"0": 1}}]})
    ] == [
        "3",
        "a",
    ]


def test_sparse_names_and_vectors_of_every_length() -> None:
    """The name is the first field beside the two lists, as text; vectors longer than the kept packers pack too."""
    info = InputInfo("DT_INT64", "DT_DOUBLE", -1)
    for count in (1, 5, 64, 65, 300):
        for name, expected in (("u1", "u1"), (7, "7"), (None, "None"), ([1], "[1]")):
            item = {"sparseIndices": list(range(count)), "key": name, "sparseValues": [0.5] * count, "other": "x"}
            for each in decode_instances({"instances": [item, item]}, info):
                assert each.name == expected
                indices, values = tensors(each)
                assert indices.to_list() == list(range(count)) and values.to_list() == [0.5] * count
                assert [t.shape for t in tensors(each)] == [(count,), (count,)]
    [each] = decode_instances({"instances": [{"sparseValues": [1.5], "sparseIndices": [2]}]}, INFO)
    assert each.name is None and [t.name for t in tensors(each)] == ["indices", "values"]


def test_int64_keys_and_double_values_and_string_keys() -> None:
    [each] = decode_instances({"instances": [{"values": {"5": 1}}]}, InputInfo("DT_INT64", "DT_DOUBLE", -1))
    assert [t.datatype for t in tensors(each)] == ["INT64", "FP64"]
    [each] = decode_instances({"instances": [{"x1": 6.2, "x2": 2.2, "x3": 1.1}]}, InputInfo("DT_STRING", "DT_DOUBLE"))
    assert tensors(each)[0].name == "keys" and tensors(each)[0].to_list() == [b"x1", b"x2", b"x3"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "Missing 'instances' key"),
        ({"instances": {}}, "Request data format error"),
        ({"instances": [{"values": [1]}, "0:1"]}, "Expecting object but got value at item 1 of input list."),
        ({"instances": [[1.0], [[1.0]]]}, "item 1: a dense vector holds numbers"),
        ({"instances": [{"sparseIndices": [1], "sparseValues": [1, 2]}]}, "the same length"),
        ({"instances": [{"values": {"-1": 1.0}}]}, "feature index -1 is outside the model's dimension 10"),
        ({"instances": [{"values": {"1": float("nan")}}]}, "is not a number"),
        ({"instances": [{"values": {"1": 1e39}}]}, "out of the range of DT_FLOAT"),
        ({"instances": ["1-2"]}, "'1-2' is not an index:value pair"),
        ({"instances": [{"key": 1}]}, "no feature map or vector"),
    ],
)
def test_errors_name_the_item(body: object, message: str) -> None:
    with pytest.raises(AngelError, match=None) as caught:
        decode_instances(body, INFO)
    assert message in str(caught.value)


def test_a_value_beyond_every_double_is_out_of_range_not_a_crash() -> None:
    for info, name in ((INFO, "DT_FLOAT"), (InputInfo("DT_INT64", "DT_DOUBLE", -1), "DT_DOUBLE")):
        with pytest.raises(AngelError) as caught:
            decode_instances({"instances": [{"sparseIndices": [1], "sparseValues": [10**400]}]}, info)
        assert str(caught.value) == f"item 0: the value {10**400!r} of feature 1 is out of the range of {name}"


def test_a_dimension_beyond_the_key_type_is_bounded_by_the_key_type() -> None:
    info = InputInfo("DT_INT32", "DT_FLOAT", 2**40)
    [each] = decode_instances({"instances": [{"sparseIndices": [2**31 - 1], "sparseValues": [1.0]}]}, info)
    assert tensors(each)[0].to_list() == [2**31 - 1]
    with pytest.raises(AngelError, match="feature key 2147483648 is out of the range of DT_INT32"):
        decode_instances({"instances": [{"sparseIndices": [2**31], "sparseValues": [1.0]}]}, info)


FLOAT32_MAX = 3.4028234663852886e38
KEYS = st.one_of(
    st.integers(-3, 12),
    st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, -(2**63) - 1, 10**400, True, False]),
    st.floats(-3, 12),
    st.sampled_from(["3", " 4 ", "x", "", None, [1], {"a": 1}]),
)
VALUES = st.one_of(
    st.floats(),
    st.floats(width=32),
    st.integers(-(2**70), 2**70),
    st.sampled_from([FLOAT32_MAX, -FLOAT32_MAX, 3.4028235e38, -3.4028236e38, 10**400, -(10**400), 1e308]),
    st.sampled_from([True, False, "2.5", " -1 ", "nan", "1e40", "x", None, [1.0]]),
)
INFOS = [
    INFO,
    InputInfo("DT_INT64", "DT_DOUBLE", -1),
    InputInfo("DT_INT32", "DT_FLOAT", -1),
    InputInfo("DT_INT32", "DT_DOUBLE", 2**40),
    InputInfo("DT_STRING", "DT_FLOAT", -1),
]


def _item_by_item(keys: list[object], values: list[object], info: InputInfo) -> tuple[object, ...]:
    """What the per-item path makes of a vector: both packed tensors' data, or the first error's message."""
    try:
        return (_checked_keys(keys, info, 0), _checked_values(keys, values, info.value_datatype, 0))
    except AngelError as err:
        return ("error", str(err))


def assert_fast_checks_agree(keys: list[object], values: list[object], info: InputInfo) -> None:
    """The quick checks accept and refuse as the item-by-item path does, for the first vector of a length (no kept
    structs yet) and the next: the same data, or the same message."""
    expected = _item_by_item(keys, values, info)
    for _ in range(2):
        try:
            keys_map, values_map = _tensors(keys, values, info, 0)
            got: tuple[object, ...] = (bytes(_plain(keys_map["data"])), bytes(_plain(values_map["data"])))
        except AngelError as err:
            got = ("error", str(err))
        assert got == expected


@given(st.lists(st.tuples(KEYS, VALUES), max_size=6), st.sampled_from(INFOS))
def test_the_fast_checks_agree_with_the_item_by_item_path(pairs: list[tuple[object, object]], info: InputInfo) -> None:
    assert_fast_checks_agree([key for key, _ in pairs], [value for _, value in pairs], info)


@given(st.lists(VALUES, max_size=6), st.sampled_from(INFOS))
@example([1.0, math.nan], INFO)  # a NaN that neither min() nor max() sees
@example([1.0, -math.inf, math.inf], INFOS[1])
@example([0.0, 3.4028235e38], INFO)  # rounds to float32's largest, but is beyond it
@example([1.5, 10**400, -(10**400)], INFOS[1])  # a sum that does not overflow, of integers beyond every double
def test_the_value_checks_behind_good_keys(values: list[object], info: InputInfo) -> None:
    assert_fast_checks_agree(list(range(len(values))), values, info)


@given(st.lists(KEYS, max_size=6), st.sampled_from(INFOS))
def test_the_key_checks_beside_good_values(keys: list[object], info: InputInfo) -> None:
    assert_fast_checks_agree(keys, [0.5] * len(keys), info)


@given(st.lists(VALUES, min_size=_SHORT + 1, max_size=_SHORT + 3), st.sampled_from(INFOS), st.booleans())
@example([0.5] * (_SHORT + 1), INFO, False)
@example([0.5] * _SHORT + [math.nan], INFO, False)
@example([0.5] * (_SHORT + 1), INFO, True)
def test_the_checks_of_long_vectors(values: list[object], info: InputInfo, bool_key: bool) -> None:
    """Beyond ``_SHORT`` items the checks are C-speed passes; they too agree with the item-by-item path."""
    keys: list[object] = [index % 10 for index in range(len(values))]
    if bool_key:
        keys[-1] = True
    assert_fast_checks_agree(keys, values, info)


@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=10),
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32) | st.integers(-5, 5), min_size=10, max_size=10),
)
def test_sparse_vectors_round_trip(indices: list[int], numbers: list[float]) -> None:
    numbers = numbers[: len(indices)]
    body = {"instances": [{"sparseIndices": indices, "sparseValues": numbers, "key": "k"}]}
    assert vectors(body) == [("k", indices, [float(number) for number in numbers])]


@given(st.dictionaries(st.integers(0, 9), st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1))
def test_kv_maps_keep_every_feature(features: dict[int, float]) -> None:
    body = {"instances": [{"values": {str(k): v for k, v in features.items()}}]}
    [(_, indices, values)] = vectors(body)
    assert dict(zip(indices, values, strict=True)) == features


def test_input_info_from_the_yaml() -> None:
    assert input_info({"angel": {"keyType": "dt_int64", "valueType": "DT_DOUBLE", "dim": 3}}) == InputInfo(
        "DT_INT64", "DT_DOUBLE", 3
    )
    assert input_info({}) == InputInfo()
    with pytest.raises(AngelError):
        input_info({"angel": {"keyType": "DT_BOOL"}})


def test_prediction_maps_are_string_valued() -> None:
    assert prediction_map(None, 2, {"pred": 1.5, "ok": True, "label": -1, "text": "a", "vec": [1, 2]}) == {
        "sid": "2",
        "pred": "1.5",
        "ok": "true",
        "label": "-1",
        "text": "a",
        "vec": "[1,2]",
    }


def test_metrics_summary_body() -> None:
    busy = Summary(requests=5, succeeded=4, failed=1, total_latency_ms=12.5, distribution=(3, 0, 1, 0))
    idle = Summary(requests=0, succeeded=0, failed=0, total_latency_ms=0.0, distribution=(0, 0, 0, 0))
    assert metrics_summary([("lr", "1", busy), ("other", "1.0", idle)]) == {
        "models": {
            "lr": {
                "versions": {
                    "1": {
                        "model_name": "lr",
                        "model_version": 1,
                        "prediction_count_total": "5",
                        "prediction_count_success": "4",
                        "prediction_count_failed": "1",
                        "total_predict_time_ms": 12.5,
                        "count_distribution0": "3",
                        "count_distribution2": "1",
                    }
                }
            }
        }
    }
    assert metrics_summary([("other", "1.0", idle)]) == {}


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b'{"instances": [{"x1": 6.2, "x4": 1.}]}', {"instances": [{"x1": 6.2, "x4": 1.0}]}),  # Angel's own test.sh
        (b'{"instances": [[1., 0, -2.e1, 01, 0.5E+1]]}', {"instances": [[1.0, 0, -20.0, 1, 5.0]]}),
        (b'{"instances": [{"1.": "2. 01"}]}', {"instances": [{"1.": "2. 01"}]}),  # text is left as it is
        (b'{"instances": [[1.0]]}', {"instances": [[1.0]]}),
    ],
)
def test_bodies_read_numbers_as_angel_s_json4s_parser_does(body: bytes, value: object) -> None:
    assert read_body(body) == value


@pytest.mark.parametrize("body", [b'{"instances": [1.2.3]}', b'{"instances": [1e999.]}', b'{"instances": [}'])
def test_bodies_that_are_not_json_even_so_keep_the_strict_parser_s_error(body: bytes) -> None:
    with pytest.raises(ValueError) as caught:
        read_body(body)
    assert not isinstance(caught.value, AngelError)


@pytest.mark.parametrize("piece", [b'\\"', b'x\\"'])
def test_a_body_of_unclosed_strings_is_refused_in_linear_time(piece: bytes) -> None:
    """The second, json4s-like reading runs on the frontend's loop: a body whose strings never close (every ``"``
    followed by escaped quotes to the end) must not be scanned again from each quote (64 KiB took 14 s)."""
    body = b'{"instances": ["' + piece * 40_000
    started = time.monotonic()
    with pytest.raises(ValueError) as caught:
        read_body(body)
    assert not isinstance(caught.value, AngelError)
    assert time.monotonic() - started < 1.0
