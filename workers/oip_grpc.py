"""The Open Inference Protocol's gRPC messages (``inference.ModelInferRequest`` / ``ModelInferResponse``), as the
frontend's service (:mod:`modelserver.grpc_oip_codec`) and KServe's API (:mod:`workers.kserve_api.grpc_codec`)
both read and write them: where a typed tensor's elements are, and ``InferParameter`` values.

Nothing here imports protobuf: the messages are passed in (:func:`messages` loads their classes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""Where a typed tensor's elements are, by datatype (FP16 and BF16 have no field: they travel raw)."""

PARAMETER_CHOICE = "parameter_choice"
"""The oneof of ``InferParameter``: ``bool_param``, ``int64_param``, ``string_param``, ``double_param``,
``uint64_param``."""


def messages() -> Any:
    """The classes of ``workers/protos/oip_inference.proto`` (``ImportError`` without the ``grpc`` extra)."""
    from .grpc_stubs import load

    return load("oip_inference")


def is_parameter(value: Any) -> bool:
    """Whether ``value`` is an ``inference.InferParameter`` message, of our classes or of another pool's (KServe's
    or Triton's generated modules)."""
    descriptor = getattr(value, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", None) == "inference.InferParameter"


def parameter_value(parameter: Any) -> Any:
    """An ``InferParameter``'s value (None when none of its fields is set)."""
    kind = parameter.WhichOneof(PARAMETER_CHOICE)
    return None if kind is None else getattr(parameter, kind)


def parameters_of(entries: Any) -> dict[str, Any]:
    """A ``map<string, InferParameter>`` as plain values."""
    return {key: parameter_value(value) for key, value in entries.items()}


def plain_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as plain values: an ``InferParameter`` (of any pool) becomes the value of its field, and one with
    no field set is left out (KServe's ``to_http_parameters``); other values stay as they are."""
    result = {}
    for key, value in parameters.items():
        if is_parameter(value):
            value = parameter_value(value)
            if value is None:
                continue
        result[key] = value
    return result


def set_parameters(target: Any, values: Mapping[str, Any] | None, other: Callable[[Any], str] = str) -> None:
    """Fill a ``map<string, InferParameter>`` from plain values: bool, int (int64, else uint64 when it fits), float
    (double), str; an ``InferParameter`` (any pool's) is copied. Any other value becomes ``other(value)`` as a
    string (``other`` may raise instead)."""
    for key, value in (values or {}).items():
        slot = target[str(key)]
        if isinstance(value, bool):
            slot.bool_param = value
        elif isinstance(value, int) and -(2**63) <= value < 2**63:
            slot.int64_param = value
        elif isinstance(value, int) and 0 <= value < 2**64:
            slot.uint64_param = value
        elif isinstance(value, float):
            slot.double_param = value
        elif isinstance(value, str):
            slot.string_param = value
        elif is_parameter(value):
            kind = value.WhichOneof(PARAMETER_CHOICE)
            if kind is not None:
                setattr(slot, kind, getattr(value, kind))
        else:
            slot.string_param = other(value)


def add_tensor(
    entries: Any,
    raw_contents: Any,
    name: str,
    datatype: str,
    shape: Any,
    parameters: Mapping[str, Any] | None,
    values: Any,
    raw: bool,
    other: Callable[[Any], str] = str,
) -> Any:
    """Append a tensor to ``entries`` (a message's repeated ``inputs`` or ``outputs``) and return its entry: its
    ``values`` go in the contents field of its datatype, or, when ``raw``, they are its bytes and go at the end of
    ``raw_contents`` (``raw_input_contents`` / ``raw_output_contents``). ``parameters`` and ``other`` as in
    :func:`set_parameters`."""
    entry = entries.add(name=name, datatype=datatype, shape=shape)
    set_parameters(entry.parameters, parameters, other)
    if raw:
        raw_contents.append(values if type(values) is bytes else bytes(values))
    else:
        getattr(entry.contents, CONTENTS_FIELD[datatype]).extend(values)
    return entry
