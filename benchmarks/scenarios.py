"""What the benchmark measures: each scenario names a handler, a request body, the batching settings and the
concurrency levels, and every target (this server, TorchServe, Mosec, KServe, the bare aiohttp echo) serves it in its
own way.

The handler files are TorchServe handlers, used unchanged by this server and archived with ``torch-model-archiver``
for TorchServe; Mosec gets an equivalent service of its own (``benchmarks/targets/mosec_service.py``). The ``kserve-*``
scenarios speak KServe's APIs (V1, and the Open Inference Protocol V2 with the binary tensor extension) to one KServe
model file, ``handlers/kserve_echo.py``, which KServe and this server both run; the ``grpc-*`` scenarios call the
Open Inference Protocol's gRPC ``ModelInfer`` of the same model (:mod:`benchmarks.grpc_bodies`).
"""

from __future__ import annotations

import functools
import io
import json
import random
import sys
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import grpc_bodies

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = Path(__file__).resolve().parent / "handlers"
EXAMPLES_STORE = ROOT / "examples" / "model_store"

JSON_BODY = (
    b'{"id": 42, "name": "benchmark", "tags": ["echo", "json"], "values": [1, 2, 3, 4, 5], "text": "hello, world!"}'
)
BINARY_BYTES = 100 * 1024
STREAM_CHUNKS = 10
COST_S = 0.010
FRONTENDS_WORKERS = 2
"""Workers of the ``frontends-*`` scenarios, in all: one per frontend with two frontends, both in the one frontend."""


@dataclass(frozen=True)
class Handler:
    """A model as TorchServe would archive it: a handler file, optional extra files and serialized weights."""

    name: str
    handler_file: Path | None = None
    archive: Path | None = None
    """A ready archive (the digits example), used as it is instead of ``handler_file``."""
    needs_torch: bool = False
    worker_runtime: str = "torchserve"
    """What our worker runs the file as: ``torchserve`` (a TorchServe handler) or ``kserve`` (a KServe ``Model``,
    archived with a ``model-config.yaml`` that says ``workerRuntime: kserve``)."""
    config_file: Path | None = None
    """A model-config.yaml archived as it is (the example servables: their methods, protocol and runtime)."""


HANDLER_FILES = {
    "echo": Handler("echo", handler_file=EXAMPLES_STORE / "echo" / "echo_handler.py"),
    "cost": Handler("cost", handler_file=HANDLERS / "cost_handler.py"),
    "stream": Handler("stream", handler_file=HANDLERS / "stream_handler.py"),
    "digits": Handler("digits", archive=EXAMPLES_STORE / "digits.mar", needs_torch=True),
    "kserve-echo": Handler("echo", handler_file=HANDLERS / "kserve_echo.py", worker_runtime="kserve"),
    "mindspore-add": Handler(
        "add",
        handler_file=EXAMPLES_STORE / "add" / "servable.py",
        worker_runtime="servable",
        config_file=EXAMPLES_STORE / "add" / "model-config.yaml",
    ),
    "angel-lr": Handler(
        "lr",
        handler_file=EXAMPLES_STORE / "lr" / "servable.py",
        worker_runtime="servable",
        config_file=EXAMPLES_STORE / "lr" / "model-config.yaml",
    ),
}


@functools.cache
def binary_body() -> bytes:
    """100 KiB of seeded random bytes: incompressible and the same in every run."""
    return random.Random(20261122).randbytes(BINARY_BYTES)


@functools.cache
def digit_png() -> bytes:
    """One held-out scikit-learn digit (8x8, 16 grey levels) as a PNG, the way a client would send it."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images[-1] * (255 / 16)).clip(0, 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG")
    return out.getvalue()


def same_json(expected: bytes) -> Callable[[bytes], bool]:
    """A check that an answer is the JSON that was sent (the echo model re-serialises it with ``indent=2``)."""
    wanted = json.loads(expected)

    def check(payload: bytes) -> bool:
        if payload == expected:
            return True
        try:
            return json.loads(payload) == wanted
        except ValueError:
            return False

    return check


def same_binary_body(payload: bytes) -> bool:
    return payload == binary_body()


# -- KServe: V1, V2 JSON and V2 binary ------------------------------------------------------------------------------

KSERVE_MODEL = "echo"
V1_PATH = f"/v1/models/{KSERVE_MODEL}:predict"
V2_PATH = f"/v2/models/{KSERVE_MODEL}/infer"
HEADER_LENGTH = "Inference-Header-Content-Length"
V1_INSTANCES = [[0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5], [8.5, 9.5, 10.5, 11.5, 12.5, 13.5, 14.5, 15.5]]
V1_BODY = json.dumps({"instances": V1_INSTANCES}).encode()
V2_JSON_SHAPE = [1, 16]
V2_JSON_DATA = [i * 0.25 - 2 for i in range(16)]
"""Multiples of 1/4: exact in FP32, so every server's JSON gives back the same numbers."""
V2_JSON_BODY = json.dumps(
    {"inputs": [{"name": "input-0", "shape": V2_JSON_SHAPE, "datatype": "FP32", "data": V2_JSON_DATA}]}
).encode()
V2_BINARY_SHAPE = [1, 262144]
V2_BINARY_BYTES = 4 * V2_BINARY_SHAPE[0] * V2_BINARY_SHAPE[1]
V2_BINARY_HEADER = json.dumps(
    {
        "inputs": [
            {
                "name": "input-0",
                "shape": V2_BINARY_SHAPE,
                "datatype": "FP32",
                "parameters": {"binary_data_size": V2_BINARY_BYTES},
            }
        ],
        "parameters": {"binary_data_output": True},
    },
    separators=(",", ":"),
).encode()
V2_BINARY_HEADERS = ((HEADER_LENGTH, str(len(V2_BINARY_HEADER))),)


@functools.cache
def v2_binary_tensor() -> bytes:
    """1 MiB: 262144 seeded random FP32 values in [-1, 1), little-endian as the binary extension wants."""
    rng = random.Random(20261206)
    values = array("f", [rng.uniform(-1.0, 1.0) for _ in range(V2_BINARY_SHAPE[0] * V2_BINARY_SHAPE[1])])
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


@functools.cache
def v2_binary_body() -> bytes:
    """The JSON header, then the tensor's bytes; ``Inference-Header-Content-Length`` is the header's length."""
    return V2_BINARY_HEADER + v2_binary_tensor()


def _json(payload: bytes | str) -> object:
    try:
        return json.loads(payload)
    except ValueError:
        return None


def v1_answer(payload: bytes) -> bool:
    """``{"predictions": <the instances sent>}``."""
    answer = _json(payload)
    return isinstance(answer, dict) and answer.get("predictions") == V1_INSTANCES


def _flat(data: object) -> list[object]:
    """A tensor's ``data`` as a flat list (the specification allows nested lists too)."""
    if not isinstance(data, list):
        return [data]
    return [value for item in data for value in _flat(item)]


def _single_output(answer: object, shape: list[int]) -> dict[str, object] | None:
    """The one FP32 ``output-0`` of the given shape in a V2 answer, or None."""
    if not isinstance(answer, dict) or not isinstance(answer.get("outputs"), list) or len(answer["outputs"]) != 1:
        return None
    output = answer["outputs"][0]
    if not isinstance(output, dict) or output.get("name") != "output-0" or output.get("datatype") != "FP32":
        return None
    return output if output.get("shape") == shape else None


def v2_json_answer(payload: bytes) -> bool:
    """One output ``output-0``, FP32, shape [1, 16], whose data are the input's values."""
    output = _single_output(_json(payload), V2_JSON_SHAPE)
    return output is not None and "data" in output and _flat(output["data"]) == V2_JSON_DATA


def v2_binary_answer_with(payload: bytes, header_length: int) -> bool:
    """A binary answer whose JSON header is ``header_length`` bytes: one binary FP32 output ``output-0`` of the
    input's shape and size, and after the header exactly the input's bytes."""
    if not 0 < header_length <= len(payload) or len(payload) - header_length != V2_BINARY_BYTES:
        return False
    output = _single_output(_json(payload[:header_length]), V2_BINARY_SHAPE)
    if output is None or "data" in output:
        return False
    parameters = output.get("parameters")
    if not isinstance(parameters, dict) or parameters.get("binary_data_size") != V2_BINARY_BYTES:
        return False
    return payload[header_length:] == v2_binary_tensor()


def v2_binary_answer(payload: bytes) -> bool:
    """The body alone (a client that sees no headers): the header is what comes before the last 1 MiB."""
    return v2_binary_answer_with(payload, len(payload) - V2_BINARY_BYTES)


def v2_binary_headers(headers: Mapping[str, str], payload: bytes) -> bool:
    """``Inference-Header-Content-Length`` is there and splits the body where :func:`v2_binary_answer_with` wants."""
    value = headers.get(HEADER_LENGTH)
    if value is None or not str(value).strip().isdigit():
        return False
    return v2_binary_answer_with(payload, int(value))


# -- MindSpore Serving and Angel Serving, beside echo-json's body size ------------------------------------------------

MINDSPORE_PATH = "/model/add:echo"
MINDSPORE_TEXT = ("hello, world! " * 6)[:80]
"""80 characters: the request body is then 109 B, echo-json's size."""
MINDSPORE_BODY = json.dumps({"instances": [{"data": MINDSPORE_TEXT}]}).encode()
ANGEL_PATH = "/v1/models/lr:predict"
ANGEL_BODY = json.dumps(
    {"instances": [{"sparseIndices": [0, 2, 4, 6, 8], "sparseValues": [1.0, 0.5, 0.125, 2.0, 1.5], "key": "u1"}]}
).encode()
"""Five features of the logistic regression and the instance's name: 109 B, echo-json's size."""


def mindspore_answer(payload: bytes) -> bool:
    """MindSpore's reply to the echo method: the text sent, as the instance's ``data`` output."""
    return _json(payload) == {"instances": [{"data": MINDSPORE_TEXT}]}


def angel_answer(payload: bytes) -> bool:
    """Angel's reply: one string-valued prediction map for the instance ``u1``, with a probability."""
    answer = _json(payload)
    if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
        return False
    [prediction] = answer["predictions"] if len(answer["predictions"]) == 1 else [None]
    return isinstance(prediction, dict) and prediction.get("sid") == "u1" and isinstance(prediction.get("proba"), str)


def batch_size_answer(payload: bytes) -> bool:
    """The cost handler answers with the size of the batch, an integer from 1 to 64."""
    return payload.strip().isdigit() and 1 <= int(payload) <= 64


DIGIT_LABELS = frozenset(
    {str(d) for d in range(10)} | {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
)


def digit_answer(payload: bytes) -> bool:
    """The digits model answers with its top class probabilities keyed by the class name (``index_to_name.json``
    names them ``zero`` to ``nine``; a plain digit is accepted too)."""
    try:
        answer = json.loads(payload)
    except ValueError:
        return False
    return (
        isinstance(answer, dict)
        and bool(answer)
        and set(answer) <= DIGIT_LABELS
        and all(isinstance(v, float | int) and 0 <= v <= 1 for v in answer.values())
    )


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    handler: str
    """A key of :data:`HANDLER_FILES`, or of the equivalent services of a peer that has no TorchServe handlers."""
    body: Callable[[], bytes]
    content_type: str
    concurrency: tuple[int, ...]
    check: Callable[[bytes], bool] | None
    """Whether an answer's body is right (a 2xx answer it rejects counts as an error)."""
    batch_size: int = 1
    max_batch_delay_ms: int = 100
    kind: str = "load"
    """``load``: closed-loop requests/s and latency; ``stream``: time to first chunk and per-chunk overhead."""
    ideal_rps: float | None = None
    """For a handler with a fixed cost: ``batch size / cost``, the throughput a perfect server would reach."""
    kserve_path: str | None = None
    """Where a KServe-speaking target (ours and KServe) takes the request: ``/v1/models/echo:predict`` or
    ``/v2/models/echo/infer``. None for the scenarios on TorchServe's ``/predictions`` API."""
    headers: tuple[tuple[str, str], ...] = ()
    """Request headers besides ``Content-Type`` (the binary extension's ``Inference-Header-Content-Length``)."""
    header_check: Callable[[Mapping[str, str], bytes], bool] | None = None
    """A check of an answer's headers with its body, where the client sees the headers."""
    protocol_path: str | None = None
    """Where this server takes a request of an API only it serves here (MindSpore's ``/model/add:echo``, Angel's
    ``/v1/models/lr:predict``); the other targets skip such a scenario."""
    metrics_mode: str = "prometheus"
    """This server's ``metrics_mode``. A scenario in another mode (TorchServe's default ``log``) measures what the
    mode costs beside ``echo-json``: this server only runs it."""
    paired_with: str | None = None
    """A scenario whose point of this server this one is compared with: when both are selected, this one runs right
    after that point (not after every other target of that scenario), so the ratio between them is not the
    machine's drift over minutes."""
    frontend_processes: int = 0
    """A scaling scenario when > 0 (this server only): that many frontend processes share the port, with ``workers``
    workers in all, and neither the server nor the load generator is pinned to a core (docs/scaling.md)."""
    workers: int = 1
    grpc_method: str | None = None
    """The gRPC method of a gRPC scenario (``/inference.GRPCInferenceService/ModelInfer``), whose ``body`` is the
    serialized request message and ``check`` reads the serialized answer; None for the HTTP scenarios."""

    @property
    def unpinned(self) -> bool:
        return self.frontend_processes > 0

    @property
    def handler_spec(self) -> Handler:
        return HANDLER_FILES[self.handler]

    @property
    def is_kserve(self) -> bool:
        """KServe's REST APIs (V1, V2); the gRPC scenarios are :attr:`is_grpc`."""
        return self.kserve_path is not None

    @property
    def is_grpc(self) -> bool:
        return self.grpc_method is not None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "echo-json",
        "Echo, 109 B JSON body, batch 1",
        "echo",
        lambda: JSON_BODY,
        "application/json",
        (1, 16, 64),
        same_json(JSON_BODY),
    ),
    Scenario(
        "echo-binary",
        "Echo, 100 KiB binary body, batch 1",
        "echo",
        binary_body,
        "application/octet-stream",
        (1, 16, 64),
        same_binary_body,
    ),
    Scenario(
        "echo-json-logmetrics",
        "Echo, 109 B JSON body, batch 1, metrics_mode=log (TorchServe's default; beside echo-json)",
        "echo",
        lambda: JSON_BODY,
        "application/json",
        (64,),
        same_json(JSON_BODY),
        metrics_mode="log",
        paired_with="echo-json",
    ),
    Scenario(
        "echo-batch8",
        "Echo, 109 B JSON body, batch 8, maxBatchDelay 5 ms",
        "echo",
        lambda: JSON_BODY,
        "application/json",
        (16, 64),
        same_json(JSON_BODY),
        batch_size=8,
        max_batch_delay_ms=5,
    ),
    Scenario(
        "cost10ms-batch1",
        "10 ms per call, batch 1",
        "cost",
        lambda: JSON_BODY,
        "application/json",
        (64,),
        batch_size_answer,
        ideal_rps=1 / COST_S,
    ),
    Scenario(
        "cost10ms-batch8",
        "10 ms per call, batch 8, maxBatchDelay 5 ms",
        "cost",
        lambda: JSON_BODY,
        "application/json",
        (64,),
        batch_size_answer,
        batch_size=8,
        max_batch_delay_ms=5,
        ideal_rps=8 / COST_S,
    ),
    Scenario(
        "stream",
        f"Streaming, {STREAM_CHUNKS} chunks per answer",
        "stream",
        lambda: JSON_BODY,
        "application/json",
        (1,),
        None,
        kind="stream",
    ),
    Scenario(
        "digits",
        "Digits CNN (the bundled example as shipped: its model-config.yaml sets batch 8, maxBatchDelay 10 ms), "
        "one 8x8 PNG per request",
        "digits",
        digit_png,
        "image/png",
        (1, 16, 64),
        digit_answer,
        batch_size=8,
        max_batch_delay_ms=10,
    ),
    Scenario(
        "kserve-v1-json",
        f"KServe V1 predict, {len(V1_BODY)} B JSON instances, echoed as predictions",
        "kserve-echo",
        lambda: V1_BODY,
        "application/json",
        (16, 64),
        v1_answer,
        kserve_path=V1_PATH,
    ),
    Scenario(
        "kserve-v2-json",
        f"KServe V2 infer, FP32 tensor {V2_JSON_SHAPE} as JSON ({len(V2_JSON_BODY)} B), echoed as output-0",
        "kserve-echo",
        lambda: V2_JSON_BODY,
        "application/json",
        (16, 64),
        v2_json_answer,
        kserve_path=V2_PATH,
    ),
    Scenario(
        "kserve-v2-binary",
        f"KServe V2 infer, one 1 MiB FP32 tensor {V2_BINARY_SHAPE}, binary tensor extension both ways",
        "kserve-echo",
        v2_binary_body,
        "application/octet-stream",
        (1, 16, 64),
        v2_binary_answer,
        kserve_path=V2_PATH,
        headers=V2_BINARY_HEADERS,
        header_check=v2_binary_headers,
    ),
    Scenario(
        "mindspore-json",
        f"MindSpore Serving echo method, {len(MINDSPORE_BODY)} B JSON instance (beside echo-json), batch 1",
        "mindspore-add",
        lambda: MINDSPORE_BODY,
        "application/json",
        (1, 16, 64),
        mindspore_answer,
        protocol_path=MINDSPORE_PATH,
    ),
    Scenario(
        "angel-json",
        f"Angel Serving predict, logistic regression on a sparse vector, {len(ANGEL_BODY)} B JSON (beside echo-json), "
        "batch 1",
        "angel-lr",
        lambda: ANGEL_BODY,
        "application/json",
        (1, 16, 64),
        angel_answer,
        protocol_path=ANGEL_PATH,
    ),
    *(
        Scenario(
            f"frontends-{count}",
            f"Echo, 109 B JSON body, batch 1, {FRONTENDS_WORKERS} workers, {count} frontend process"
            f"{'es' if count > 1 else ''} (this server only; nothing pinned)",
            "echo",
            lambda: JSON_BODY,
            "application/json",
            (16, 64),
            same_json(JSON_BODY),
            frontend_processes=count,
            workers=FRONTENDS_WORKERS,
        )
        for count in (1, 2)
    ),
    Scenario(
        "grpc-small",
        f"OIP gRPC ModelInfer, FP32 tensor {grpc_bodies.SMALL_SHAPE} raw (64 B), echoed as output-0",
        "kserve-echo",
        functools.partial(grpc_bodies.request_body, "small"),
        "application/grpc",
        (1, 16, 64),
        grpc_bodies.answer_check("small"),
        grpc_method=grpc_bodies.MODEL_INFER,
    ),
    Scenario(
        "grpc-1mb",
        f"OIP gRPC ModelInfer, one 1 MiB FP32 tensor {grpc_bodies.LARGE_SHAPE} raw, echoed as output-0",
        "kserve-echo",
        functools.partial(grpc_bodies.request_body, "large"),
        "application/grpc",
        (1, 16),
        grpc_bodies.answer_check("large"),
        grpc_method=grpc_bodies.MODEL_INFER,
    ),
)

PROTOCOL_SCENARIOS = tuple(s.name for s in SCENARIOS if s.protocol_path is not None)

KSERVE_SCENARIOS = tuple(s.name for s in SCENARIOS if s.is_kserve)

FRONTEND_SCENARIOS = tuple(s.name for s in SCENARIOS if s.frontend_processes)
FRONTENDS_ONLY_OURS = "the frontends-* scenarios scale this server's frontend processes: it runs them alone"
GRPC_SCENARIOS = tuple(s.name for s in SCENARIOS if s.is_grpc)

SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}
