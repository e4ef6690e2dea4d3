"""``kserve.protocol.grpc.grpc_predict_v2_pb2_grpc``: the client stub and servicer base of
``inference.GRPCInferenceService`` (:mod:`workers.kserve_api.grpc_service`). ``ImportError`` without the ``grpc``
extra."""

from workers.kserve_api.grpc_service import (
    GRPCInferenceServiceServicer,
    GRPCInferenceServiceStub,
    add_GRPCInferenceServiceServicer_to_server,
)

__all__ = ["GRPCInferenceServiceServicer", "GRPCInferenceServiceStub", "add_GRPCInferenceServiceServicer_to_server"]
