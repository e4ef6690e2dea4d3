"""KServe's request and response types (``kserve.protocol.infer_type`` in KServe 0.21): ``InferRequest`` and
``InferResponse``, their REST forms, and the binary tensor data extension.

A binary REST body is a JSON header followed by the raw data of the tensors whose ``parameters`` carry
``binary_data_size``, concatenated in the order the tensors appear in the JSON; the header
``inference-header-content-length`` says how long the JSON is. ``to_rest()`` returns ``(dict, None)`` when no tensor
is binary, else ``(bytes, json_length)``.

Which outputs :meth:`InferResponse.to_rest` sends as binary is KServe's rule, which differs from the specification
and Triton in one case: without requested outputs, every output is binary when ``use_binary_outputs`` is set (the
request's ``parameters.binary_data_output``); with requested outputs, only those are sent, in the order asked, and
each is binary exactly when its own ``parameters.binary_data`` is true; ``binary_data_output`` is then ignored, so a
requested output without ``binary_data`` is JSON even when ``binary_data_output`` is true (the specification would
make it binary).
"""

from __future__ import annotations

from .codec import deserialize_bytes_tensor, from_np_dtype, serialize_byte_tensor, to_http_parameters, to_np_dtype
from .infer_request import InferRequest
from .infer_response import InferResponse
from .infer_tensor import InferInput, InferOutput, RequestedOutput
from .infer_tensor import _contains_fp16_datatype as _contains_fp16_datatype  # KServe's, its tests import it

__all__ = [
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "RequestedOutput",
    "deserialize_bytes_tensor",
    "from_np_dtype",
    "serialize_byte_tensor",
    "to_http_parameters",
    "to_np_dtype",
]
