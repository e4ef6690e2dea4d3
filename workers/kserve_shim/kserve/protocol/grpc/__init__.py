"""``kserve.protocol.grpc``: the Open Inference Protocol's gRPC messages (``grpc_predict_v2_pb2``) and service
(``grpc_predict_v2_pb2_grpc``), from this project's own ``.proto``; they need the ``grpc`` extra."""
