"""Workflow specifications (TorchServe's WorkFlow and Dag checks) and the DAG run (DagExecutor's data flow)."""

from __future__ import annotations

import asyncio

import pytest

from modelserver.errors import BackendError, InvalidDag, InvalidWorkflow, NoWorker
from modelserver.types import Input
from modelserver.workflow_dag import NodeFailed, run_dag
from modelserver.workflow_spec import WorkflowNode, WorkflowSpec, parse_spec


def _spec(dag: dict, models: dict | None = None) -> WorkflowSpec:
    return parse_spec("wf", {"models": models or {}, "dag": dag}, "handler.py")


def test_model_and_function_nodes_and_their_settings() -> None:
    spec = _spec(
        {"pre": ["m"], "m": ["post"]},
        {"batch-size": 4, "max-workers": 2, "retry-attempts": 3, "m": {"url": "m.mar", "batch-size": 8}},
    )
    pre, m, post = spec.nodes["pre"], spec.nodes["m"], spec.nodes["post"]
    assert (m.model_name, m.url, m.handler, m.batch_size, m.max_workers, m.retry_attempts) == (
        "wf__m",
        "m.mar",
        None,
        8,
        2,
        3,
    )
    assert (pre.url, pre.handler, pre.batch_size, pre.max_workers, pre.retry_attempts) == (
        None,
        "handler.py:pre",
        1,
        1,
        3,
    )
    assert post.is_function and spec.start == "pre"
    assert spec.children == {"pre": ("m",), "m": ("post",), "post": ()}
    assert spec.dag_text == "{pre=[m], m=[post]}"
    assert spec.settings["max-batch-delay"] == 50  # TorchServe's default


def test_a_model_of_models_that_is_not_in_the_dag_is_not_a_node() -> None:
    assert list(_spec({"a": []}, {"unused": {"url": "u.mar"}}).nodes) == ["a"]


@pytest.mark.parametrize(
    ("dag", "message"),
    [
        ({"a": ["a"]}, "Self loop exception"),
        ({"a": ["b", "b"]}, "loop exception"),
        ({"a": ["c"], "b": ["c"]}, "DAG should have only one start node"),
        ({"a": ["b"], "b": ["a"]}, "DAG should have only one start node"),
        ({"s": ["a"], "a": ["b"], "b": ["a"]}, "Not a valid DAG"),
    ],
)
def test_invalid_dags_get_torchserves_messages(dag: dict, message: str) -> None:
    with pytest.raises(InvalidDag) as caught:
        _spec(dag)
    assert caught.value.message == message and caught.value.status == 400


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"dag": {"a": []}},
        {"models": {}, "dag": {}},
        {"models": {"m": {}}, "dag": {"m": []}},
        {"models": {"batch-size": "four"}, "dag": {"a": []}},
        {"models": {}, "dag": {"a": "b"}},
    ],
)
def test_specifications_of_the_wrong_shape_are_invalid_workflows(document: object) -> None:
    with pytest.raises(InvalidWorkflow) as caught:
        parse_spec("wf", document, "h.py")
    assert caught.value.status == 500


def _run(spec: WorkflowSpec, invoke, inputs: list[Input] | None = None) -> list[tuple[str, bytes]]:
    return asyncio.run(run_dag(spec, inputs or [("body", "text/plain", b"x")], invoke))


def test_fan_out_and_fan_in_inputs() -> None:
    spec = _spec({"pre": ["a", "b"], "a": ["join"], "b": ["join"]})
    seen: dict[str, list[Input]] = {}

    async def invoke(node: WorkflowNode, inputs: list[Input]) -> bytes:
        seen[node.name] = inputs
        if node.name == "a":
            await asyncio.sleep(0.02)  # b answers first: the join's inputs come in the order parents finish
        return node.name.encode() + b"!"

    assert _run(spec, invoke) == [("join", b"join!")]
    assert seen["pre"] == [("body", "text/plain", b"x")]
    assert seen["a"] == seen["b"] == [("body", "", b"pre!")]
    assert seen["join"] == [("b", "", b"b!"), ("a", "", b"a!")]


def test_the_leaves_answer_in_the_order_they_finish() -> None:
    spec = _spec({"pre": ["slow", "fast"]})

    async def invoke(node: WorkflowNode, inputs: list[Input]) -> bytes:
        await asyncio.sleep(0.03 if node.name == "slow" else 0)
        return node.name.encode()

    assert _run(spec, invoke) == [("fast", b"fast"), ("slow", b"slow")]


def test_a_failing_node_is_retried_then_fails_the_run() -> None:
    spec = _spec({"pre": ["m"]}, {"retry-attempts": 2, "m": {"url": "m.mar"}})
    calls: list[str] = []

    async def invoke(node: WorkflowNode, inputs: list[Input]) -> bytes:
        calls.append(node.name)
        if node.name == "m":
            raise BackendError("boom", 503)
        return b"ok"

    with pytest.raises(NodeFailed) as caught:
        _run(spec, invoke)
    assert caught.value.message == "Error executing m" and caught.value.status == 500
    assert calls == ["pre", "m", "m", "m"]


def test_a_node_that_times_out_is_cancelled_and_retried() -> None:
    spec = _spec({"pre": []}, {"timeout-ms": 20, "retry-attempts": 1})
    cancelled: list[bool] = []

    async def invoke(node: WorkflowNode, inputs: list[Input]) -> bytes:
        if not cancelled:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise
        return b"second time"

    assert _run(spec, invoke) == [("pre", b"second time")]
    assert cancelled == [True]


def test_no_worker_is_not_retried_and_keeps_its_message() -> None:
    spec = _spec({"pre": []})
    calls: list[str] = []

    async def invoke(node: WorkflowNode, inputs: list[Input]) -> bytes:
        calls.append(node.name)
        raise NoWorker("wf__pre")

    with pytest.raises(NodeFailed) as caught:
        _run(spec, invoke)
    assert calls == ["pre"] and caught.value.message.startswith('Model "wf__pre" has no worker')


def test_a_failure_cancels_the_nodes_still_running() -> None:
    spec = _spec({"pre": ["slow", "bad"]}, {"retry-attempts": 0})
    cancelled: list[str] = []

    async def invoke(node: WorkflowNode, inputs: list[Input]) -> bytes:
        if node.name == "bad":
            raise BackendError("no", 500)
        if node.name == "slow":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(node.name)
                raise
        return b""

    with pytest.raises(NodeFailed):
        _run(spec, invoke)
    assert cancelled == ["slow"]


def test_a_streamed_node_answer_is_gathered_up_to_max_response_size_then_refused() -> None:
    from modelserver.errors import ServeError
    from modelserver.types import InferenceResult, ResultStream
    from modelserver.workflows import _whole

    def piece(size: int) -> InferenceResult:
        return InferenceResult(200, "", {}, "", b"x" * size)

    async def gather(limit: int) -> tuple[bytes | ServeError, bool]:
        stream = ResultStream(piece(4))
        closed: list[bool] = []
        stream.on_close(lambda _stream: closed.append(True))
        stream.push(piece(4))
        stream.push(piece(4), last=True)
        try:
            return await _whole(stream, limit, "n"), bool(closed)
        except ServeError as err:
            return err, bool(closed)

    whole, closed = asyncio.run(gather(12))
    assert whole == b"x" * 12 and closed
    refused, closed = asyncio.run(gather(11))
    assert isinstance(refused, ServeError) and "max_response_size (11 bytes)" in refused.message and closed
