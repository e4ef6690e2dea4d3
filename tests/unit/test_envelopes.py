"""TorchServe's request envelopes (``service_envelope``): a plain handler loaded through the real loader with each
envelope, and batches run through the TorchServe runtime, without HTTP."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from workers.runtimes import LoadError, Runtime, load_runtime

pytestmark = pytest.mark.usefixtures("isolated_imports")

HANDLER = """
    import numpy as np

    seen = []


    def handle(data, context):
        seen.append(data)
        if data is None:
            return None
        mode = context.model_yaml_config.get("mode")
        if mode == "v2":  # KServe v2 inputs: double each input, as float32
            return [np.asarray(item["data"], dtype=np.float32).reshape(item["shape"]) * 2 for item in data]
        if mode == "sum":
            return [sum(row) for row in data]
        return [describe(item) for item in data]


    def describe(item):
        if isinstance(item, (bytes, bytearray)):
            return {"type": type(item).__name__, "text": bytes(item).decode()}
        if isinstance(item, dict):
            return {key: describe(value) for key, value in item.items()}
        return item
"""


def load(model_dir: Path, envelope: str, mode: str = "") -> Runtime:
    (model_dir / "handler.py").write_text(textwrap.dedent(HANDLER))
    return load_runtime(
        {
            "kind": "load",
            "model_name": "m",
            "model_version": "1.0",
            "model_dir": str(model_dir),
            "handler": "handler.py",
            "runtime": "torchserve",
            "batch_size": 4,
            "gpu_id": None,
            "envelope": envelope,
            "limit_max_image_pixels": True,
            "decode_input_request": True,
            "manifest": {"model": {"modelName": "m", "modelVersion": "1.0", "handler": "handler.py"}},
            "model_yaml_config": {"mode": mode},
        }
    )


def job(job_id: int, body: Any, content_type: str = "application/json", method: str = "predict") -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {
        "id": job_id,
        "request_id": f"req-{job_id}",
        "headers": {},
        "inputs": [["body", content_type, raw]],
        "method": method,
    }


def run(runtime: Runtime, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return runtime.run_batch(jobs, lambda chunk: None, lambda job_id: False)


def bodies(items: list[dict[str, Any]]) -> list[Any]:
    assert [item["status"] for item in items] == [200] * len(items), items
    return [json.loads(item["body"]) for item in items]


def test_body_envelope_gives_each_requests_payload(tmp_path: Path) -> None:
    runtime = load(tmp_path, "body")
    items = run(runtime, [job(1, {"a": 1}), job(2, b"raw", "application/octet-stream")])
    assert bodies(items) == [{"a": 1}, {"type": "bytearray", "text": "raw"}]


def test_json_envelope_joins_instances_decodes_b64_and_answers_each_request(tmp_path: Path) -> None:
    runtime = load(tmp_path, "json")
    first = {
        "instances": [
            {"b64": base64.b64encode(b"\x00hi").decode()},
            {"image": {"b64": base64.b64encode(b"png").decode()}, "n": 1},
            [1, 2],
        ]
    }
    items = run(runtime, [job(1, first), job(2, {"instances": [5]}, "application/octet-stream")])
    import handler

    assert handler.seen[-1] == [b"\x00hi", {"image": b"png", "n": 1}, [1, 2], 5]  # all instances of the batch
    described = [{"type": "bytes", "text": "\x00hi"}, {"image": {"type": "bytes", "text": "png"}, "n": 1}, [1, 2]]
    assert [item["body"] for item in items] == [  # one JSON string per request, TorchServe's json.dumps
        json.dumps({"predictions": described}).encode(),
        b'{"predictions": [5]}',
    ]


def test_kserve_envelope_answers_predictions_or_explanations(tmp_path: Path) -> None:
    runtime = load(tmp_path, "kserve", mode="sum")
    request = {"instances": [[1, 2], [3, 4]]}
    assert bodies(run(runtime, [job(1, request)])) == [{"predictions": [3, 7]}]
    assert bodies(run(runtime, [job(2, request, "application/octet-stream", "explain")])) == [{"explanations": [3, 7]}]


def test_kserve_envelope_answers_one_item_for_the_batch_as_torchserve_does(tmp_path: Path) -> None:
    runtime = load(tmp_path, "kserve", mode="sum")
    items = run(runtime, [job(1, {"instances": [[1]]}), job(2, {"instances": [[2]]})])
    assert [(item["status"], item["error"]) for item in items] == [(503, "number of batch response mismatched")] * 2


def test_kservev2_envelope_answers_a_v2_response(tmp_path: Path) -> None:
    runtime = load(tmp_path, "kservev2", mode="v2")
    request = {"id": "r1", "inputs": [{"name": "input-0", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]}
    [answer] = bodies(run(runtime, [job(1, request, "application/octet-stream")]))
    assert answer == {
        "id": "r1",
        "model_name": "m",
        "model_version": "1.0",
        "outputs": [{"name": "input-0", "shape": [2], "datatype": "FP32", "data": [2.0, 4.0]}],  # the input's name
    }
    import handler

    assert handler.seen[-1] == request["inputs"]


def test_kservev2_envelope_without_an_id_uses_the_request_id_and_names_outputs_after_inputs(tmp_path: Path) -> None:
    runtime = load(tmp_path, "kservev2", mode="v2")
    request = {
        "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]},
            {"name": "b", "shape": [1], "datatype": "FP64", "data": [0.5]},
        ]
    }
    [answer] = bodies(run(runtime, [job(7, request, method="explain")]))
    assert answer["id"] == "req-7"
    assert answer["outputs"] == [
        {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [2.0, 4.0, 6.0, 8.0]},
        {"name": "b", "shape": [1], "datatype": "FP32", "data": [1.0]},
    ]
    import handler

    assert handler.seen[-1][0]["data"] == [[1, 2], [3, 4]]  # nested by its shape, as TorchServe 0.12 hands it over
    [again] = bodies(run(runtime, [job(8, {"id": "", "inputs": request["inputs"][:1]})]))
    assert again["id"] == "req-8"  # an id from an earlier request never sticks


def test_kservev2_datatypes_follow_numpy_as_in_torchserve() -> None:
    import numpy as np

    from workers.ts_compat import install_ts_shim

    install_ts_shim()
    from ts.torch_handler.request_envelope.kservev2 import datatype_of

    assert [datatype_of(np.dtype(name)) for name in ("bool", "uint8", "int64", "float16", "float64", "object")] == [
        "BOOL",
        "UINT8",
        "INT64",
        "FP16",
        "FP64",
        "BYTES",
    ]
    assert datatype_of(np.array(["a"]).dtype) == "BYTES"
    with pytest.raises(ValueError, match="complex128"):
        datatype_of(np.dtype("complex128"))


def test_handler_load_call_is_not_enveloped(tmp_path: Path) -> None:
    load(tmp_path, "kservev2")
    import handler

    assert handler.seen == [None]


@pytest.mark.parametrize("envelope", ["nope", "base"])
def test_an_unknown_or_abstract_envelope_is_a_load_error(tmp_path: Path, envelope: str) -> None:
    with pytest.raises(LoadError) as err:
        load(tmp_path, envelope)
    assert err.value.status == 500
    if envelope == "nope":
        assert str(err.value) == (
            "Unable to load request envelope 'nope': no module ts.torch_handler.request_envelope.nope"
        )
    else:
        assert "abstract" in str(err.value)
