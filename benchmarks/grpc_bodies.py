"""The requests of the gRPC scenarios and the checks of their answers: ``inference.GRPCInferenceService/ModelInfer``
of the Open Inference Protocol, one raw FP32 input ``input-0`` (``raw_input_contents``, as ``tritonclient.grpc``
sends tensors) to the echo model, which answers it as ``output-0``.

A body here is the serialized ``ModelInferRequest`` alone; the load generator adds gRPC's 5-byte message prefix.
The request carries an ``id``, so that every server answers with the same id and an answer's size is the same for
every call of a point (the load generator counts the answers' bytes: a call that failed has none).
"""

from __future__ import annotations

import functools
import random
import struct
import sys
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "inference.GRPCInferenceService"
MODEL_INFER = f"/{SERVICE}/ModelInfer"
REQUEST_ID = "bench-0001"
MODEL = "echo"
SMALL_SHAPE = [1, 16]
LARGE_SHAPE = [1, 262144]


@functools.cache
def messages() -> Any:
    """The OIP messages compiled from this checkout's ``.proto`` (the same text the servers were written from)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from workers import grpc_stubs

    return grpc_stubs.load("oip_inference")


def small_tensor() -> bytes:
    """16 FP32 values, multiples of 1/4 (exact), little-endian."""
    return struct.pack("<16f", *(i * 0.25 - 2 for i in range(16)))


@functools.cache
def large_tensor() -> bytes:
    """1 MiB: 262144 seeded random FP32 values in [-1, 1), little-endian."""
    rng = random.Random(20261207)
    values = array("f", [rng.uniform(-1.0, 1.0) for _ in range(LARGE_SHAPE[0] * LARGE_SHAPE[1])])
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


TENSORS: dict[str, tuple[list[int], Callable[[], bytes]]] = {
    "small": (SMALL_SHAPE, small_tensor),
    "large": (LARGE_SHAPE, large_tensor),
}


@functools.cache
def request_body(size: str) -> bytes:
    """The serialized ``ModelInferRequest`` of a ``small`` or ``large`` tensor."""
    shape, tensor = TENSORS[size]
    request = messages().ModelInferRequest(model_name=MODEL, id=REQUEST_ID, raw_input_contents=[tensor()])
    request.inputs.add(name="input-0", datatype="FP32", shape=shape)
    return request.SerializeToString()


def answer_check(size: str) -> Callable[[bytes], bool]:
    """Whether a serialized ``ModelInferResponse`` holds the request's tensor as ``output-0`` (FP32, its shape):
    raw, or typed in ``fp32_contents``."""
    shape, tensor = TENSORS[size]

    def check(payload: bytes) -> bool:
        try:
            response = messages().ModelInferResponse.FromString(payload)
        except Exception:  # protobuf's DecodeError: not a ModelInferResponse
            return False
        if len(response.outputs) != 1 or response.id != REQUEST_ID:
            return False
        output = response.outputs[0]
        if (output.name, output.datatype, list(output.shape)) != ("output-0", "FP32", shape):
            return False
        data = tensor()
        if response.raw_output_contents:
            return list(response.raw_output_contents) == [data]
        values = output.contents.fp32_contents
        return len(values) * 4 == len(data) and struct.pack(f"<{len(values)}f", *values) == data

    return check
