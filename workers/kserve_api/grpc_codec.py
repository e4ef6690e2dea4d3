"""KServe's gRPC forms of ``InferRequest`` and ``InferResponse`` (``to_grpc``/``from_grpc`` of KServe 0.21's
``kserve.protocol.infer_type``), on this project's own message classes (:func:`workers.oip_grpc.messages`; they
need the ``grpc`` extra, and only these functions import them).

What KServe does, and so do we:

- ``to_grpc``: a tensor whose data is a numpy array is made binary first (``set_data_from_numpy``, which also sets
  its ``binary_data_size`` parameter); a binary tensor (``_raw_data``) goes in ``raw_input_contents`` /
  ``raw_output_contents``, in tensor order; a list goes in the contents field of its datatype, ``str`` elements as
  UTF-8 (the tensor's ``data`` becomes that list too). A response sends every output list raw when
  ``use_binary_outputs`` is set or some output is FP16. Requested outputs do not select the response's outputs.
- ``from_grpc``: each tensor's ``data`` is its contents as a list (an empty list for FP16, whose elements come
  raw), raw contents become the tensors' ``_raw_data`` (and a request's ``use_binary_outputs``); a request's input
  and requested-output parameters become plain values, while its own parameters and everything of a response keep
  the message's ``InferParameter`` map.

Where KServe fails and we do not: parameters that are floats (``double_param``) or ints beyond int64
(``uint64_param``) are sent, and read back, as the protocol allows; nested lists are sent flat; BF16 reads as FP16
does (raw).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..oip_grpc import CONTENTS_FIELD, add_tensor, messages, set_parameters
from .codec import to_http_parameters
from .errors import InvalidInput
from .infer_tensor import InferInput, InferOutput, RequestedOutput, _contains_fp16_datatype

RAW_ONLY = frozenset({"FP16", "BF16"})
"""Datatypes without a contents field."""


def contents_of(datatype: str, contents: Any) -> list[Any]:
    """A tensor's typed contents as a list (KServe's ``get_content``): empty for FP16 and BF16, whose elements come
    raw; :class:`InvalidInput` for an unknown datatype."""
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        if datatype in RAW_ONLY:
            return []
        raise InvalidInput("invalid content type")
    return list(getattr(contents, field))


def _invalid_parameter(value: Any) -> str:
    raise InvalidInput(f"to_grpc: invalid parameter value: {value}")


def _flat(values: list[Any]) -> list[Any]:
    if not any(isinstance(value, list) for value in values):
        return values
    flat: list[Any] = []
    for value in values:
        flat.extend(_flat(value) if isinstance(value, list) else [value])
    return flat


def _add(entries: Any, raw_contents: Any, tensor: Any, role: str, datatype_error: str) -> None:
    """Append ``tensor`` (an ``InferInput`` or ``InferOutput``) to a message: raw when it is binary, else typed."""
    if isinstance(tensor.data, np.ndarray):
        tensor.set_data_from_numpy(tensor.data, binary_data=True)
    raw = tensor._raw_data is not None
    if raw:
        values = tensor._raw_data
    else:
        if not isinstance(tensor.data, list):
            raise InvalidInput(f"{role} data is not a List")
        if tensor.datatype not in CONTENTS_FIELD:
            raise InvalidInput(datatype_error)
        values = [value.encode("utf-8") if isinstance(value, str) else value for value in _flat(tensor.data)]
        tensor._data = values
    parameters = tensor.parameters
    add_tensor(
        entries, raw_contents, tensor.name, tensor.datatype, tensor.shape, parameters, values, raw, _invalid_parameter
    )


def _header(message: Any, model_name: str, model_version: str | None, message_id: str | None, parameters: Any) -> Any:
    message.model_name = model_name
    if model_version is not None:
        message.model_version = model_version
    if message_id is not None:
        message.id = message_id
    set_parameters(message.parameters, parameters, _invalid_parameter)
    return message


def _http_parameters(entries: Any) -> dict[str, Any] | None:
    return to_http_parameters(entries) if entries else None


def _tensors(kind: type, entries: Any, parameters: Callable[[Any], Any]) -> list[Any]:
    """``InferInput``s or ``InferOutput``s (``kind``) of a message's tensor entries, each with its contents as
    ``data`` and ``parameters(entry.parameters)``."""
    return [
        kind(
            name=entry.name,
            shape=list(entry.shape),
            datatype=entry.datatype,
            data=contents_of(entry.datatype, entry.contents),
            parameters=parameters(entry.parameters),
        )
        for entry in entries
    ]


def request_to_grpc(request: Any) -> Any:
    """``InferRequest.to_grpc()``: a ``ModelInferRequest``."""
    message = _header(
        messages().ModelInferRequest(), request.model_name, request.model_version, request.id, request.parameters
    )
    for infer_input in request.inputs:
        _add(message.inputs, message.raw_input_contents, infer_input, "input", "invalid input datatype")
    for output in request.request_outputs or ():
        entry = message.outputs.add(name=output.name)
        set_parameters(entry.parameters, output.parameters, _invalid_parameter)
    return message


def request_from_grpc(cls: Any, message: Any) -> Any:
    """``InferRequest.from_grpc(message)``: ``cls`` built from a ``ModelInferRequest`` (ours, or another pool's)."""
    inputs = _tensors(InferInput, message.inputs, _http_parameters)
    outputs = [RequestedOutput(entry.name, _http_parameters(entry.parameters)) for entry in message.outputs]
    return cls(
        model_name=message.model_name,
        infer_inputs=inputs,
        request_id=message.id,
        raw_inputs=message.raw_input_contents,
        from_grpc=True,
        parameters=message.parameters,
        request_outputs=outputs or None,
        model_version=message.model_version,
    )


def response_to_grpc(response: Any) -> Any:
    """``InferResponse.to_grpc()``: a ``ModelInferResponse`` of every output."""
    message = _header(
        messages().ModelInferResponse(), response.model_name, response.model_version, response.id, response.parameters
    )
    raw = bool(response._use_binary_outputs) or _contains_fp16_datatype(response)
    for output in response.outputs:
        if raw and isinstance(output.data, list) and output.data:
            output.data = output.as_numpy()
        _add(message.outputs, message.raw_output_contents, output, "output", "to_grpc: invalid output datatype")
    return message


def response_from_grpc(cls: Any, message: Any) -> Any:
    """``InferResponse.from_grpc(message)``: ``cls`` built from a ``ModelInferResponse`` (ours, or another
    pool's)."""
    outputs = _tensors(InferOutput, message.outputs, lambda parameters: parameters)
    return cls(
        response_id=message.id,
        model_name=message.model_name,
        infer_outputs=outputs,
        model_version=message.model_version,
        raw_outputs=message.raw_output_contents,
        from_grpc=True,
        parameters=message.parameters,
    )
