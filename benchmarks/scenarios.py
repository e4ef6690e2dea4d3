"""What the benchmark measures: each scenario names a handler, a request body, the batching settings and the
concurrency levels, and every target (this server, TorchServe, Mosec, the bare aiohttp echo) serves it in its own way.

The handler files are TorchServe handlers, used unchanged by this server and archived with ``torch-model-archiver``
for TorchServe; Mosec gets an equivalent service of its own (``benchmarks/targets/mosec_service.py``).
"""

from __future__ import annotations

import functools
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = Path(__file__).resolve().parent / "handlers"
EXAMPLES_STORE = ROOT / "examples" / "model_store"

JSON_BODY = (
    b'{"id": 42, "name": "benchmark", "tags": ["echo", "json"], "values": [1, 2, 3, 4, 5], "text": "hello, world!"}'
)
BINARY_BYTES = 100 * 1024
STREAM_CHUNKS = 10
COST_S = 0.010


@dataclass(frozen=True)
class Handler:
    """A model as TorchServe would archive it: a handler file, optional extra files and serialized weights."""

    name: str
    handler_file: Path | None = None
    archive: Path | None = None
    """A ready archive (the digits example), used as it is instead of ``handler_file``."""
    needs_torch: bool = False


HANDLER_FILES = {
    "echo": Handler("echo", handler_file=EXAMPLES_STORE / "echo" / "echo_handler.py"),
    "cost": Handler("cost", handler_file=HANDLERS / "cost_handler.py"),
    "stream": Handler("stream", handler_file=HANDLERS / "stream_handler.py"),
    "digits": Handler("digits", archive=EXAMPLES_STORE / "digits.mar", needs_torch=True),
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
    batch_size: int = 1
    max_batch_delay_ms: int = 100
    kind: str = "load"
    """``load``: closed-loop requests/s and latency; ``stream``: time to first chunk and per-chunk overhead."""
    ideal_rps: float | None = None
    """For a handler with a fixed cost: ``batch size / cost``, the throughput a perfect server would reach."""

    @property
    def handler_spec(self) -> Handler:
        return HANDLER_FILES[self.handler]


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
)

SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}
