"""The gRPC ceiling: a minimal grpc.aio server of ``inference.GRPCInferenceService/ModelInfer`` (the same ``.proto``
as this server's, ``workers/protos/oip_inference.proto``) that answers every request with its inputs as
outputs (``output-<i>`` for input ``i``, as the echo model names them), read and written as this server's
``ModelInfer`` does: by protobuf for a small message, around the raw tensors by :mod:`modelserver.grpc_oip_wire`
(no copy) from 64 KiB on. No model, no queue, no core call: what grpc.aio and the message handling alone cost per
call on this machine (with this server's heap thresholds, :mod:`workers.allocator`). ``--passthrough`` skips
protobuf too (a fixed answer to any bytes): grpc.aio alone. ``--transport native`` serves the same method with this
server's own HTTP/2 (:mod:`modelserver.h2`, ``grpc_transport=native``) instead of grpc.aio: that transport's ceiling.

    python -m benchmarks.grpc_echo --port 8081 [--passthrough] [--transport native]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "gRPC echo listening on"
METHOD = "ModelInfer"
SERVICE = "inference.GRPCInferenceService"


def echo_method(passthrough: bool) -> Any:
    """The coroutine of ``ModelInfer`` (request bytes in, answer bytes out): the answer to a request is its inputs
    as outputs."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from workers import grpc_stubs

    pb = grpc_stubs.load("oip_inference")
    if passthrough:
        fixed = pb.ModelInferResponse(model_name="echo", id="bench").SerializeToString()

        async def constant(request: bytes, context: Any) -> bytes:
            return fixed

        return constant
    from modelserver.grpc_oip import WIRE_MIN_BYTES
    from modelserver.grpc_oip_wire import output_entry, response_pieces, split_request

    Request, Response = pb.ModelInferRequest, pb.ModelInferResponse

    async def echo(body: bytes, context: Any) -> bytes:
        if len(body) < WIRE_MIN_BYTES:
            request = Request.FromString(body)
            response = Response(model_name=request.model_name, id=request.id)
            for index, tensor in enumerate(request.inputs):
                response.outputs.add(name=f"output-{index}", datatype=tensor.datatype, shape=tensor.shape)
            response.raw_output_contents.extend(request.raw_input_contents)
            return response.SerializeToString()
        rest, raw = split_request(body)
        request = Request.FromString(rest)
        outputs = [
            output_entry(f"output-{index}", tensor.datatype, tensor.shape)
            for index, tensor in enumerate(request.inputs)
        ]
        return response_pieces(request.model_name, "", request.id, b"", outputs, raw)

    return echo


def echo_handler(passthrough: bool) -> Any:
    """grpc.aio's handler for ``ModelInfer``."""
    import grpc

    from modelserver.grpc_oip_wire import joined

    method = grpc.unary_unary_rpc_method_handler(echo_method(passthrough), response_serializer=joined)
    return grpc.method_handlers_generic_handler(SERVICE, {METHOD: method})


def echo_table(passthrough: bool) -> Any:
    """The native transport's table of the one method (bytes in and out, as ``own_wire``)."""
    from modelserver.grpc_server import ServiceTable

    implementation = type("Echo", (), {"model_infer": staticmethod(echo_method(passthrough))})()
    return ServiceTable(SERVICE, [(METHOD, None, None, False, False)], implementation, frozenset({METHOD}))


def _stop_on_signals() -> asyncio.Event:
    """Set on SIGTERM or SIGINT: the echo then stops serving."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_native(host: str, port: int, passthrough: bool) -> None:
    from modelserver.config import Address
    from modelserver.h2.listener import NativeGrpcListener

    stop = _stop_on_signals()
    unlimited = 1 << 31
    listener = NativeGrpcListener(
        "echo", Address("http", host, port), [echo_table(passthrough)], max_receive=unlimited, max_send=unlimited
    )
    await listener.start()
    print(f"{READY_LINE} {host}:{listener.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await listener.stop(1.0)


async def serve(host: str, port: int, passthrough: bool, extra: list[tuple[str, Any]] | None = None) -> None:
    import grpc

    stop = _stop_on_signals()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
    server.add_generic_rpc_handlers((echo_handler(passthrough),))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"{READY_LINE} {host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grpc_echo", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--passthrough", action="store_true", help="no protobuf: a fixed answer to any request")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=INT", help="a grpc server option")
    parser.add_argument("--transport", choices=("grpcio", "native"), default="grpcio", help="what carries the calls")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from workers.allocator import keep_freed_memory

    keep_freed_memory()  # the heap thresholds this server's processes run with
    extra = [(key, int(value)) for key, _, value in (o.partition("=") for o in args.option)]
    if args.transport == "native":
        uvloop.run(serve_native(args.host, args.port, args.passthrough))
    else:
        uvloop.run(serve(args.host, args.port, args.passthrough, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
