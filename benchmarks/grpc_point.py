"""A benchmark point for the Open Inference Protocol over gRPC: ``ModelInfer`` throughput and latency of this
server's gRPC API beside KServe 0.21's own gRPC server, on the same model file (``handlers/kserve_echo.py``,
which echoes its first input), each started as a KServe script with one worker and ``--enable_grpc true``.

    python -m benchmarks.grpc_point [--duration 5] [--concurrency 8] [--out benchmarks/results/grpc.json]

Two requests, both raw tensors (``raw_input_contents``, as ``tritonclient.grpc`` sends them): a small FP32
tensor (16 elements) and a 1 MiB FP32 tensor (262144 elements). The client is closed-loop grpc.aio on uvloop in
this process: ``concurrency`` calls in flight on one channel, a warm-up, then a measured window; the first answer
must hold the request's tensor (raw, or as typed FP32 contents as KServe answers). KServe runs from this Python
environment (``pip install kserve==0.21.0``, in the ``test`` extra). Separate from ``python -m benchmarks run``
for now: that harness drives HTTP clients only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .procs import HOST, free_port, spawn
from .scenarios import HANDLERS

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"modelserver": HANDLERS / "kserve_echo_ours.py", "kserve": HANDLERS / "kserve_echo.py"}
SIZES = {"small": 16, "1mb-fp32": 262144}
METHOD = "/inference.GRPCInferenceService/ModelInfer"


def request_bytes(elements: int) -> tuple[bytes, bytes]:
    """A serialized ModelInferRequest for ``echo`` with one raw FP32 input, and the input's bytes."""
    sys.path.insert(0, str(ROOT))
    from modelserver import grpc_stubs

    pb = grpc_stubs.load("oip_inference")
    data = bytes(range(256)) * (elements * 4 // 256) if elements * 4 >= 256 else bytes(elements * 4)
    request = pb.ModelInferRequest(model_name="echo", raw_input_contents=[data])
    request.inputs.add(name="input-0", datatype="FP32", shape=[1, elements])
    return request.SerializeToString(), data


def check(answer: bytes, data: bytes) -> bool:
    """The answer holds the request's tensor: raw (this server answers raw to raw) or as typed FP32 contents
    (KServe answers typed unless the output was asked for binary)."""
    import struct

    from modelserver import grpc_stubs

    response = grpc_stubs.load("oip_inference").ModelInferResponse.FromString(answer)
    if response.raw_output_contents:
        return list(response.raw_output_contents) == [data]
    values = response.outputs[0].contents.fp32_contents if response.outputs else []
    return struct.pack(f"<{len(values)}f", *values) == data


async def wait_ready(target: str, body: bytes, data: bytes, timeout: float = 90.0) -> None:
    import grpc

    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD)
        while True:
            try:
                if check(await call(body, timeout=5), data):
                    return
                raise RuntimeError(f"{target}: the echo answer is not the request's tensor")
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def load(target: str, body: bytes, concurrency: int, warmup: float, duration: float) -> dict[str, Any]:
    """Closed loop: ``concurrency`` tasks each send the next call as soon as the last one is answered."""
    import grpc

    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(
        target, options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    ) as channel:
        call = channel.unary_unary(METHOD)
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + duration

        async def worker() -> None:
            nonlocal errors
            while (now := time.perf_counter()) < stop_at:
                try:
                    await call(body, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                done = time.perf_counter()
                if now >= measure_from and done <= stop_at:
                    latencies.append(done - now)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    count = len(latencies)
    return {
        "requests": count,
        "errors": errors,
        "rps": round(count / duration, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3) if count else None,
        "p99_ms": round(latencies[min(count - 1, int(count * 0.99))] * 1000, 3) if count else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    results: dict[str, Any] = {"concurrency": args.concurrency, "duration_s": args.duration, "points": []}
    workdir = Path(tempfile.mkdtemp(prefix="grpc-bench-"))
    for name, script in SCRIPTS.items():
        port, http_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONUNBUFFERED": "1"}
        if name == "modelserver":
            env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{HANDLERS}"
        command = [sys.executable, str(script), "--http_port", str(http_port), "--grpc_port", str(port)]
        command += ["--model_name", "echo", "--workers", "1", "--enable_grpc", "true"]
        managed = spawn(f"{name}-grpc", command, workdir, env)
        target = f"{HOST}:{port}"
        try:
            for size, elements in SIZES.items():
                body, data = request_bytes(elements)
                uvloop.run(wait_ready(target, body, data))
                point = uvloop.run(load(target, body, args.concurrency, args.warmup, args.duration))
                point.update(target=name, request=size)
                results["points"].append(point)
                print(f"{name:12} {size:9} {point['rps']:>9} req/s  p50 {point['p50_ms']} ms  p99 {point['p99_ms']} ms")
        finally:
            managed.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    results = run(args)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
