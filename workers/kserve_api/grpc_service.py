"""The client stub and servicer base of ``inference.GRPCInferenceService`` that KServe's generated
``kserve.protocol.grpc.grpc_predict_v2_pb2_grpc`` provides, built from our own ``.proto``'s method table
(:mod:`workers.grpc_stubs`). Importing this module needs the ``grpc`` extra (grpcio, protobuf, grpcio-tools)."""

from __future__ import annotations

from typing import Any

try:
    import grpc
except ImportError as err:
    from ..grpc_stubs import MISSING

    raise ImportError(MISSING) from err

from ..oip_grpc import messages

SERVICE = "inference.GRPCInferenceService"
METHODS = messages().services[SERVICE]
"""(name, request class, response class, client streams, server streams) of each method, in the ``.proto``'s
order."""


def _kind(client_streams: bool, server_streams: bool) -> str:
    return f"{'stream' if client_streams else 'unary'}_{'stream' if server_streams else 'unary'}"


class GRPCInferenceServiceStub:
    """A client of the service on a ``grpc.Channel`` (or ``grpc.aio`` channel): one callable attribute per method,
    ``ModelInfer``, ``ServerLive``..., as grpcio's generated stub has."""

    def __init__(self, channel: Any) -> None:
        for name, request, response, client_streams, server_streams in METHODS:
            call = getattr(channel, _kind(client_streams, server_streams))(
                f"/{SERVICE}/{name}",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )
            setattr(self, name, call)


def _unimplemented(name: str) -> Any:
    def method(self: Any, request: Any, context: Any) -> Any:
        context.set_code(grpc.StatusCode.UNIMPLEMENTED)
        context.set_details("Method not implemented!")
        raise NotImplementedError("Method not implemented!")

    method.__name__ = method.__qualname__ = name
    return method


GRPCInferenceServiceServicer = type(
    "GRPCInferenceServiceServicer",
    (),
    {
        "__doc__": "Base of a servicer: a method not overridden answers UNIMPLEMENTED.",
        "__module__": __name__,
        **{name: _unimplemented(name) for name, *_ in METHODS},
    },
)


def add_GRPCInferenceServiceServicer_to_server(servicer: Any, server: Any) -> None:
    """Serve ``servicer``'s methods (attributes named as the ``.proto``'s methods) on a ``grpc`` or ``grpc.aio``
    server."""
    handlers = {
        name: getattr(grpc, f"{_kind(client_streams, server_streams)}_rpc_method_handler")(
            getattr(servicer, name),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
        for name, request, response, client_streams, server_streams in METHODS
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if hasattr(server, "add_registered_method_handlers"):
        server.add_registered_method_handlers(SERVICE, handlers)
