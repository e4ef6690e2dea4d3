"""Reading and writing the parts of V2 REST bodies that ``InferRequest`` and ``InferResponse`` share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .codec import loads
from .errors import InvalidInput
from .infer_tensor import InferOutput, RequestedOutput

__all__ = ["binary_slice", "byte_size", "field", "json_header", "requested_outputs", "set_binary_size", "tensor_fields"]


def json_header(body: Any, json_length: int) -> dict[str, Any]:
    """The JSON header of a REST body, :class:`InvalidInput` if it does not parse to an object."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        header = loads(memoryview(body)[:json_length])
    except (ValueError, TypeError) as err:
        raise InvalidInput(f"Unrecognized request format: {err}") from None
    if not isinstance(header, dict):
        raise InvalidInput(f"Unrecognized request format: expected a JSON object, got {type(header).__name__}")
    return header


def tensor_fields(tensor: Any, kind: str) -> tuple[str, list[int], str, Any]:
    if not isinstance(tensor, Mapping):
        raise InvalidInput(f"Unrecognized request format: each {kind} must be a JSON object")
    try:
        return tensor["name"], tensor["shape"], tensor["datatype"], tensor.get("parameters")
    except KeyError as err:
        raise InvalidInput(f"Unrecognized request format: {kind} {tensor.get('name')!r} has no {err}") from None


def binary_slice(body: Any, start: int, size: Any, what: str) -> tuple[memoryview, int]:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidInput(f"'binary_data_size' of {what} must be a non-negative integer, got {size!r}")
    end = start + size
    view = memoryview(body)
    if end > len(view):
        raise InvalidInput(f"{what} needs {size} bytes of binary data, {max(len(view) - start, 0)} are left")
    return view[start:end], end


def requested_outputs(outputs: Any) -> list[RequestedOutput] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(isinstance(output, Mapping) for output in outputs):
        raise InvalidInput("Unrecognized request format: 'outputs' must be a list of objects")
    try:
        return [RequestedOutput(name=output["name"], parameters=output.get("parameters")) for output in outputs]
    except KeyError:
        raise InvalidInput("Unrecognized request format: a requested output has no 'name'") from None


def byte_size(raw: Any) -> int:
    """Bytes in a bytes-like object (a memoryview of any format counts its bytes, not its items)."""
    return raw.nbytes if isinstance(raw, memoryview) else len(raw)


def set_binary_size(tensor: InferOutput) -> None:
    size = byte_size(tensor._raw_data)
    if tensor.parameters is None:
        tensor.parameters = {"binary_data_size": size}
    else:
        tensor.parameters["binary_data_size"] = size


def field(source: Any, name: str, default: Any = None) -> Any:
    if isinstance(source, Mapping):
        return source.get(name, default)
    return getattr(source, name, default)
