"""The ``kserve`` worker runtime without a socket: loading a ``Model`` subclass from a model directory, V1 and V2
jobs, streamed answers, KServe's error statuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workers.runtimes import LoadError
from workers.runtimes import kserve as runtime_module
from workers.runtimes.kserve import KServeRuntime, error_status
from workers.tensors import Tensor

MODEL = """
import asyncio
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput


class Echo(Model):
    def __init__(self, name, factor=1):
        super().__init__(name, return_response_headers=True)
        self.factor = factor
        self.ready = True

    def predict(self, payload, headers=None, response_headers=None):
        response_headers["x-seen"] = headers.get("x-client", "")
        if isinstance(payload, InferRequest):
            values = payload.inputs[0].as_numpy() * self.factor
            output = InferOutput("out", list(values.shape), "FP32")
            output.set_data_from_numpy(values.astype("float32"), binary_data=True)
            response = InferResponse(response_id=payload.id, model_name=self.name, infer_outputs=[output],
                                 parameters={"binary_seen": "binary_data_size" in (payload.inputs[0].parameters or {})})
            if (payload.parameters or {}).get("via_grpc"):  # as a transformer gets its gRPC predictor's answer
                output.parameters["kind"] = "raw"
                return InferResponse.from_grpc(response.to_grpc())
            return response
        if payload.get("stream"):
            async def pieces():
                for i in range(3):
                    yield f"{i};"
            return pieces()
        if payload.get("bad"):
            raise InvalidInput("bad input")
        if payload.get("boom"):
            raise RuntimeError("boom")
        return {"predictions": [x * self.factor for x in payload["instances"]]}
"""


def load(tmp_path: Path, **extra: Any) -> KServeRuntime:
    (tmp_path / "echo_model.py").write_text(MODEL)
    message = {
        "model_name": "echo",
        "model_version": "1",
        "model_dir": str(tmp_path),
        "handler": "echo_model.py",
        **extra,
    }
    return runtime_module.load(message)


def job(job_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "request_id": f"r{job_id}",
        "headers": {"X-Client": "c1"},
        "inputs": [],
        "method": "predict",
        **fields,
    }


def v1(job_id: int, body: dict[str, Any]) -> dict[str, Any]:
    return job(job_id, inputs=[("body", "application/json", json.dumps(body).encode())])


def test_v1_jobs_of_a_batch_each_get_their_answer_and_headers(tmp_path: Path) -> None:
    runtime = load(tmp_path, model_args=["echo", 3])
    items = runtime.run_batch(
        [v1(1, {"instances": [1, 2]}), v1(2, {"bad": True}), v1(3, {"boom": True})],
        lambda item: None,
        lambda job_id: False,
    )
    assert [item["id"] for item in items] == [1, 2, 3]
    assert json.loads(items[0]["body"]) == {"predictions": [3, 6]} and items[0]["content_type"] == "application/json"
    assert items[0]["headers"] == {"x-seen": "c1"}
    assert (items[1]["status"], items[1]["error"]) == (400, "bad input")
    assert (items[2]["status"], items[2]["error"]) == (500, "RuntimeError : boom")


def test_a_v2_job_reaches_the_model_as_an_infer_request_and_answers_tensors(tmp_path: Path) -> None:
    runtime = load(tmp_path)
    data = np.arange(4, dtype=np.float32)
    tensor = Tensor.from_numpy("in", data, parameters={"binary_data_size": 16})
    [item] = runtime.run_batch(
        [job(1, tensors=[tensor.to_wire()], infer_id="id-1")], lambda item: None, lambda job_id: False
    )
    [out] = item["tensors"]
    assert (out.name, out.datatype, out.shape) == ("out", "FP32", (4,))
    np.testing.assert_array_equal(out.as_numpy(), data)
    assert item["parameters"] == {"binary_seen": True}


def test_a_response_read_from_grpc_answers_plain_parameters(tmp_path: Path) -> None:
    """``InferResponse.from_grpc`` keeps the message's InferParameter maps (KServe's behaviour): they reach the
    client as their values."""
    pytest.importorskip("grpc_tools")
    runtime = load(tmp_path)
    tensor = Tensor.from_numpy("in", np.arange(2, dtype=np.float32), parameters={"binary_data_size": 8})
    [item] = runtime.run_batch(
        [job(1, tensors=[tensor.to_wire()], parameters={"via_grpc": True})], lambda item: None, lambda job_id: False
    )
    assert item.get("status", 200) == 200, item
    assert item["parameters"] == {"binary_seen": True}
    [out] = item["tensors"]
    assert out.parameters == {"kind": "raw"} and out.as_numpy().tolist() == [0.0, 1.0]


def test_an_async_iterator_is_streamed_and_stops_when_the_client_leaves(tmp_path: Path) -> None:
    runtime = load(tmp_path)
    chunks: list[dict[str, Any]] = []
    [final] = runtime.run_batch([v1(1, {"stream": True})], chunks.append, lambda job_id: False)
    assert [c["body"] for c in chunks] == [b"0;", b"1;", b"2;"] and final["body"] == b""
    chunks.clear()
    runtime.run_batch([v1(2, {"stream": True})], chunks.append, lambda job_id: len(chunks) >= 1)
    assert [c["body"] for c in chunks] == [b"0;"]


def test_metadata_of_a_model_without_declared_types(tmp_path: Path) -> None:
    [item] = load(tmp_path).run_batch([job(1, method="metadata")], lambda item: None, lambda job_id: False)
    assert json.loads(item["body"]) == {"inputs": [], "outputs": []}


def test_a_module_without_exactly_one_model_class_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "two.py").write_text("from kserve import Model\nclass A(Model): pass\nclass B(Model): pass\n")
    with pytest.raises(LoadError, match="exactly one KServe Model subclass"):
        runtime_module.load({"model_name": "m", "model_dir": str(tmp_path), "handler": "two.py"})
    chosen = runtime_module.load({"model_name": "m", "model_dir": str(tmp_path), "handler": "two.py:B"})
    assert type(chosen.model).__name__ == "B" and chosen.model.ready


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (NotImplementedError("no"), (501, "no")),
        (ValueError("v"), (500, "ValueError : v")),
        (type("ModelNotReady", (RuntimeError,), {})("not ready"), (503, "not ready")),
    ],
)
def test_kserves_error_table(exception: Exception, expected: tuple[int, str]) -> None:
    assert error_status(exception) == expected


def test_kserves_own_pipeline_runs_without_its_timers_and_an_overridden_call_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = load(tmp_path, latency_logging=True)
    assert runtime._call.__qualname__.startswith("kserve_steps")  # Model.__call__ not overridden: KServe's steps
    with caplog.at_level("INFO", logger="kserve.trace"):
        [item] = runtime.run_batch([v1(1, {"instances": [1]})], lambda item: None, lambda job_id: False)
    assert json.loads(item["body"]) == {"predictions": [1]}
    assert any(r.getMessage().startswith("requestId: N.A., preprocess_ms: ") for r in caplog.records)

    (tmp_path / "own_call.py").write_text(
        "from kserve import Model\n"
        "class Own(Model):\n"
        "    async def __call__(self, body, headers=None, verb=None):\n"
        "        return {'own': True}, {}\n"
    )
    own = runtime_module.load({"model_name": "own", "model_dir": str(tmp_path), "handler": "own_call.py"})
    assert own._call.__qualname__.startswith("own_call")
    [item] = own.run_batch([v1(1, {"instances": [1]})], lambda item: None, lambda job_id: False)
    assert json.loads(item["body"]) == {"own": True}
