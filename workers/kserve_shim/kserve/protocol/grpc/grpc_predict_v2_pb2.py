"""``kserve.protocol.grpc.grpc_predict_v2_pb2``: the message classes of ``inference.GRPCInferenceService``, from
our own ``.proto`` in a descriptor pool of our own (:func:`workers.oip_grpc.messages`): the classes
``InferRequest.to_grpc()`` builds. Our ``InferParameter`` also has ``double_param`` and ``uint64_param``, and the
repository messages carry ``repository_name`` (Triton's fields) beside KServe's. ``ImportError`` without the
``grpc`` extra."""

from workers.oip_grpc import messages

_messages = messages()

InferParameter = _messages.InferParameter
InferTensorContents = _messages.InferTensorContents
ModelInferRequest = _messages.ModelInferRequest
ModelInferResponse = _messages.ModelInferResponse
ModelMetadataRequest = _messages.ModelMetadataRequest
ModelMetadataResponse = _messages.ModelMetadataResponse
ModelReadyRequest = _messages.ModelReadyRequest
ModelReadyResponse = _messages.ModelReadyResponse
RepositoryModelLoadRequest = _messages.RepositoryModelLoadRequest
RepositoryModelLoadResponse = _messages.RepositoryModelLoadResponse
RepositoryModelUnloadRequest = _messages.RepositoryModelUnloadRequest
RepositoryModelUnloadResponse = _messages.RepositoryModelUnloadResponse
ServerLiveRequest = _messages.ServerLiveRequest
ServerLiveResponse = _messages.ServerLiveResponse
ServerMetadataRequest = _messages.ServerMetadataRequest
ServerMetadataResponse = _messages.ServerMetadataResponse
ServerReadyRequest = _messages.ServerReadyRequest
ServerReadyResponse = _messages.ServerReadyResponse
DESCRIPTOR = ModelInferRequest.DESCRIPTOR.file
