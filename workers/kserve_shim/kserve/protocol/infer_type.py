"""``kserve.protocol.infer_type``: the V2 request, response and tensor types, and the BYTES framing."""

from workers.kserve_api.infer_type import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    deserialize_bytes_tensor,
    serialize_byte_tensor,
    to_http_parameters,
)
from workers.kserve_api.infer_type import _contains_fp16_datatype as _contains_fp16_datatype  # KServe's tests import it

__all__ = [
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "RequestedOutput",
    "deserialize_bytes_tensor",
    "serialize_byte_tensor",
    "to_http_parameters",
]
