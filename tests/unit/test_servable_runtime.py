"""The ``servable`` worker runtime and method declarations, run on the example models in this process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from workers.json_tensors import ANSWER_STYLES, angel_text, compact_json, encode_tensor
from workers.runtimes import LoadError, load_runtime
from workers.runtimes.servable import (
    angel_body,
    angel_template,
    answer_values,
    json_value,
    named_outputs,
    to_tensor,
)
from workers.servable_methods import Method, MethodDeclarationError, parse_methods
from workers.tensors import Tensor

ROOT = Path(__file__).resolve().parents[2]
ADD = ROOT / "examples" / "model_store" / "add"


def load_message(model_dir: Path, **changes: Any) -> dict[str, Any]:
    manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())
    message = {
        "model_name": manifest["model"]["modelName"],
        "model_dir": str(model_dir),
        "handler": manifest["model"]["handler"],
        "runtime": "servable",
        "model_yaml_config": yaml.safe_load((model_dir / "model-config.yaml").read_text()),
    }
    message.update(changes)
    return message


def job(job_id: int, method: str, *tensors: Tensor) -> dict[str, Any]:
    return {"id": job_id, "method": method, "tensors": [tensor.to_wire() for tensor in tensors]}


def test_declarations() -> None:
    methods = parse_methods({"methods": {"a": {"inputs": ["x"], "outputs": "y", "function": "run"}, "b": None}})
    assert methods == {"a": Method("a", ("x",), ("y",), "run"), "b": Method("b")}
    assert parse_methods({}) == {"predict": Method("predict")}
    for bad in (
        {"methods": []},
        {"methods": {"a": {"inputs": [1]}}},
        {"methods": {"a": {"in": []}}},
        {"methods": {"a b": {}}},
        {"methods": {"a": {"inputs": ["x", "x"]}}},
    ):
        with pytest.raises(MethodDeclarationError):
            parse_methods(bad)


def test_each_job_calls_its_method_and_a_failure_answers_alone() -> None:
    runtime = load_runtime(load_message(ADD))
    x = Tensor.from_numpy("x1", np.array([1.0, 2.0], np.float32))
    items = runtime.run_batch(
        [
            job(1, "add_common", x, Tensor.from_numpy("x2", np.array([0.5, 0.5], np.float32))),
            job(2, "add_common", x),  # x2 missing
            job(
                3,
                "str_concat",
                Tensor.from_list("text1", "BYTES", (), ["a"], {"content_type": "str"}),
                Tensor.from_list("text2", "BYTES", (), [b"b"]),
            ),  # str + bytes: the method raises
            job(4, "nope"),
        ],
        lambda item: None,
        lambda job_id: False,
    )
    assert items[0]["status"] == 200 and items[0]["tensors"][0].to_list() == [1.5, 2.5]
    assert (items[1]["status"], items[1]["error"]) == (400, "Method 'add_common' needs input(s) x2")
    assert items[2]["status"] == 500 and items[2]["error"].startswith("str_concat failed: TypeError")
    assert items[3]["status"] == 404


def test_outputs_by_declared_name_and_type() -> None:
    runtime = load_runtime(load_message(ADD))
    tensors = [
        Tensor.from_numpy("float_val", np.array([1.0], np.float32)),
        Tensor.from_numpy("int_val", np.array([1], np.int32)),
        Tensor.from_numpy("bool_val", np.array([True])),
        Tensor.from_list("str_val", "BYTES", (), ["A"], {"content_type": "str"}),
        Tensor.from_list("bytes_val", "BYTES", (), [b"B"]),
    ]
    [item] = runtime.run_batch([job(1, "mix_all_type", *tensors)], lambda item: None, lambda job_id: False)
    out = {tensor.name: tensor for tensor in item["tensors"]}
    assert [out[name].datatype for name in ("float_val", "int_val", "bool_val", "str_val", "bytes_val")] == [
        "FP32",
        "INT32",
        "BOOL",
        "BYTES",
        "BYTES",
    ]
    assert out["str_val"].parameters == {"content_type": "str"} and out["str_val"].to_list() == [b"A123"]
    assert out["bytes_val"].parameters is None and out["bytes_val"].to_list() == [b"B456"]


def test_a_declared_method_without_its_function_cannot_load(tmp_path: Path) -> None:
    config = {"methods": {"missing": {"inputs": ["x"]}}}
    with pytest.raises(LoadError, match="method 'missing' needs a function 'missing'"):
        load_runtime(load_message(ADD, model_yaml_config=config))


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        (
            "mindspore",
            {
                "float_val": [2.5],
                "int_val": [2],
                "bool_val": [False],
                "str_val": "A123",
                "bytes_val": {"b64": "QjQ1Ng=="},
            },
        ),
        (
            "angel",
            {
                "float_val": "[2.5]",
                "int_val": "[2]",
                "bool_val": "[false]",
                "str_val": "A123",
                "bytes_val": '{"b64":"QjQ1Ng=="}',
            },
        ),
    ],
)
def test_a_job_that_asks_for_an_api_s_json_gets_it_instead_of_tensors(style: str, expected: dict) -> None:
    runtime = load_runtime(load_message(ADD))
    tensors = [
        Tensor.from_numpy("float_val", np.array([1.5], np.float32)),
        Tensor.from_numpy("int_val", np.array([1], np.int32)),
        Tensor.from_numpy("bool_val", np.array([True])),
        Tensor.from_list("str_val", "BYTES", (), ["A"], {"content_type": "str"}),
        Tensor.from_list("bytes_val", "BYTES", (), [b"B"]),
    ]
    wire = {**job(1, "mix_all_type", *tensors), "parameters": {"answer": style}}
    [item] = runtime.run_batch([wire], lambda item: None, lambda job_id: False)
    assert "tensors" not in item and item["parameters"] == {"answer": style}
    assert item["content_type"] == "application/json" and json.loads(item["body"]) == expected


OUTPUT_VALUES = st.one_of(
    st.floats(),
    st.floats(width=32),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, -(2**70)]),  # INT64's edges, and beyond
    st.text(st.characters(blacklist_categories=())),
    st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010)),  # surrogates: UTF-8 cannot encode them
    st.text(st.characters(max_codepoint=127)),
    st.binary(max_size=8),
    st.lists(st.floats(width=32, allow_nan=False), max_size=3),
    st.lists(st.integers(-5, 5), max_size=3),
)


def _through_tensors(outputs: dict[str, Any], style: str) -> dict[str, Any]:
    """Each output as a tensor, then as the API's JSON value: the way without the shortcut."""
    values = {name: encode_tensor(to_tensor(name, value)) for name, value in outputs.items()}
    return {name: angel_text(value) for name, value in values.items()} if style == "angel" else values


def _outcome(make: Any, outputs: dict[str, Any], style: str) -> tuple[str, str]:
    try:
        return "answer", compact_json(make(outputs, style))
    except Exception as err:  # the same failure, word for word
        return type(err).__name__, str(err)


@given(st.dictionaries(st.sampled_from(["y", "pred", "proba"]), OUTPUT_VALUES, min_size=1))
def test_an_answer_made_without_tensors_is_the_one_made_through_them(outputs: dict[str, Any]) -> None:
    for style in ANSWER_STYLES:
        shortcut = _outcome(lambda values, s: answer_values(list(values.items()), s), outputs, style)
        assert shortcut == _outcome(_through_tensors, outputs, style)


@given(st.one_of(st.lists(OUTPUT_VALUES, max_size=4).map(tuple), st.lists(OUTPUT_VALUES, max_size=4), OUTPUT_VALUES))
@example(returned=(0.25, -1, 2**63 - 1))
@example(returned=0.5)
def test_angel_body_written_directly_is_the_answer_encoded(returned: Any) -> None:
    for count in (1, 2, 3):
        method = Method("m", ("x",), ("pred", 'é"\\', "100%s")[:count])
        body = angel_body(angel_template(method), method, returned)
        values = [returned] if count == 1 else returned if isinstance(returned, tuple | list) else None
        numbers = values is not None and len(values) == count and all(_plain_number(v) for v in values)
        assert (body is not None) == numbers  # the direct way takes exactly the plain numbers, one per output
        if body is not None:
            assert body.decode("ascii") == compact_json(answer_values(named_outputs(method, returned), "angel"))


def _plain_number(value: Any) -> bool:
    return type(value) is float or (type(value) is int and -(2**63) <= value < 2**63)


def test_angel_body_needs_declared_outputs() -> None:
    assert angel_template(Method("m")) is None and angel_body(None, Method("m"), 1.0) is None
    method = Method("m", ("x",), ("pred", "label"))
    assert angel_body(angel_template(method), method, (0.25, -1)) == b'{"pred":"0.25","label":"-1"}'
    assert angel_body(angel_template(method), method, [0.25, -1]) == b'{"pred":"0.25","label":"-1"}'


def test_plain_outputs_skip_the_tensor_and_others_take_it() -> None:
    assert json_value("y", 0.1) == 0.1 and json_value("y", True) is True and json_value("y", "ok") == "ok"
    assert json_value("y", 2**63 - 1) == 2**63 - 1 and json_value("y", np.float32(0.1)) == 0.1
    assert json_value("y", b"B") == {"b64": "Qg=="} and json_value("y", [1, 2]) == [1, 2]


def test_outputs_are_named_as_declared() -> None:
    two = Method("m", ("x",), ("a", "b"))
    assert named_outputs(two, (1, 2)) == [("a", 1), ("b", 2)]
    assert named_outputs(two, [1, 2]) == [("a", 1), ("b", 2)]
    assert named_outputs(two, {"b": 2, "a": 1, "c": 3}) == [("a", 1), ("b", 2)]
    assert named_outputs(Method("m", ("x",), ("a",)), (1, 2)) == [("a", (1, 2))]
    assert named_outputs(Method("m"), 5) == [("output", 5)]
    assert named_outputs(Method("m"), {"k": 1, 2: 3}) == [("k", 1), ("2", 3)]
    for returned, count in (((1, 2, 3), 3), (5, 1), ([], 0)):
        with pytest.raises(ValueError) as caught:
            named_outputs(two, returned)
        assert str(caught.value) == f"returned {count} value(s) for 2 declared output(s)"
    with pytest.raises(ValueError) as caught:
        named_outputs(two, {"a": 1})
    assert str(caught.value) == "the answer lacks output(s) b"
