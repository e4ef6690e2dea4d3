"""The Open Inference Protocol (KServe V2) REST codec: request bodies to tensors, output tensors to response bodies.

Pure (no numpy, no aiohttp, no I/O). :func:`decode_request` makes a :class:`V2Request` of an ``/infer`` body;
:func:`encode_response` makes an :class:`EncodedResponse` (buffers for a gathering write) of output
:class:`~workers.tensors.Tensor` objects. Every client error is an :class:`OIPError` (a ``ValueError``) naming the
field or tensor; the dialect answers it with 400 ``{"error": message}`` (:func:`encode_error`).

Requests:

* With an ``Inference-Header-Content-Length`` header, whatever the content type: that many bytes of JSON, then
  the binary data of the inputs carrying ``parameters.binary_data_size``, in input order, adding up to the rest of
  the body exactly. Each is a zero-copy ``memoryview`` slice of the body, passed on as it is (BYTES need not be
  UTF-8). A binary input of 0 bytes needs no header (KServe's client sends an empty tensor so, ``"data": null``).
  Without the header, the whole body is JSON, whatever the content type.
* UTF-8 JSON (not UTF-16/32), an object: ``id`` (string), ``parameters`` (values string, number or bool;
  ``binary_data_output`` a bool), ``inputs`` (non-empty, unique names; ``name``, ``shape``, ``datatype``, optional
  ``parameters``, exactly one of ``data`` and ``parameters.binary_data_size``), ``outputs`` (``name``, optional
  ``parameters``; ``binary_data`` a bool). ``null`` for an optional field is leaving it out, ``"outputs": []`` is
  no ``outputs`` (all outputs); unknown fields are ignored.
* JSON data flat or nested, at most 64 levels deep; nesting is not checked against the shape, the element count
  is, and every element must suit the datatype exactly (:meth:`Tensor.from_list`). At most ``max_tensors``
  inputs and outputs; shapes of rank 64 or less, dimensions below 2**63.

Responses: the outputs the request named, in its order, else all in the model's order. An output is binary when
its own ``binary_data`` says so, else when the request's ``binary_data_output`` does, else JSON (the spec's and
Triton's precedence). JSON data are flat, BYTES as UTF-8 strings (a non-UTF-8 element is an :class:`OIPError`
asking for binary output); the JSON is compact and ASCII.

Where this differs from KServe 0.21 (/work/shared/specs/kserve-oip-mindspore-angel.md section 3):

* Element types are exact: KServe lets numpy coerce (``"1"`` or ``true`` in INT32, ``1`` in BOOL, ``1.0`` in
  INT64); we refuse them. A count that does not fit the shape is a 400 here, a 500 there.
* FP16 and BF16 travel as JSON both ways; KServe refuses FP16 in JSON and BF16 altogether (tritonclient refuses
  BF16 in JSON on its side; Triton accepts FP16 JSON).
* Binary mode follows the header, not the content type (KServe wants a non-JSON content type); binary BYTES
  reach the model as bytes (KServe decodes them as UTF-8 and fails on other bytes).
* With ``outputs`` listed, KServe ignores ``binary_data_output`` for outputs without their own flag; we apply it.
* Responses omit ``model_version`` when None and ``parameters`` when empty (KServe sends ``null``); a binary
  response is ``application/octet-stream`` (KServe sends no content type). Schema errors are 400 (KServe: 422).
  Triton's shared-memory parameters are refused.
* ``NaN``/``Infinity``/``-Infinity`` are read and written as Python's json and tritonclient's rapidjson do;
  strict parsers (orjson, so KServe's client) refuse them: such clients should ask for binary output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from workers.datatypes import DATATYPES, TensorError, byte_view
from workers.tensors import Tensor

__all__ = [
    "MAX_DEPTH",
    "MAX_RANK",
    "MAX_TENSORS",
    "EncodedResponse",
    "OIPError",
    "RequestedOutput",
    "V2Request",
    "decode_request",
    "encode_error",
    "encode_json",
    "encode_response",
]

MAX_TENSORS = 1024
"""Default bound on the inputs, and on the requested outputs, of one request."""
MAX_DEPTH = 64
"""Deepest nesting of JSON tensor data."""
MAX_RANK = 64
"""Most dimensions a shape may have."""

JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"
HEADER_LENGTH = "Inference-Header-Content-Length"

_MAX_DIM = 2**63 - 1
_MAX_MESSAGE = 400
_SHARED_MEMORY = "shared_memory_region"
_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


class OIPError(ValueError):
    """A request the protocol refuses (or an output JSON cannot carry); the message names the field or tensor."""


@dataclass(slots=True)
class RequestedOutput:
    """One entry of the request's ``outputs``: its ``parameters`` as sent, and ``binary`` (its ``binary_data``
    parameter, None when it has none)."""

    name: str
    parameters: dict[str, Any]
    binary: bool | None = None


@dataclass(slots=True)
class V2Request:
    """A decoded ``/infer`` request. ``inputs`` keep their own parameters minus ``binary_data_size`` (None when
    nothing is left); ``outputs`` is None when the request named none; ``binary_output_default`` is the request's
    ``parameters.binary_data_output``."""

    id: str | None
    parameters: dict[str, Any]
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None
    binary_output_default: bool = False
    binary_inputs: list[str] = field(default_factory=list)
    """The names of the inputs that came as binary data (a KServe model finds their buffer in ``_raw_data``)."""


@dataclass(slots=True)
class EncodedResponse:
    """A response body as buffers for a gathering write: the JSON, then each binary output's data as it is.
    ``header_length`` (the ``Inference-Header-Content-Length`` value) is None when there is no binary output."""

    parts: list[bytes | bytearray | memoryview]
    header_length: int | None
    content_type: str

    @property
    def body_length(self) -> int:
        return sum(len(part) for part in self.parts)


# -- requests -------------------------------------------------------------------------------------


def decode_request(
    body: bytes | bytearray | memoryview, header_length: str | None, content_type: str, max_tensors: int = MAX_TENSORS
) -> V2Request:
    """Decode an inference request body (see the module docstring); raise :class:`OIPError` for anything amiss.

    ``header_length`` is the ``Inference-Header-Content-Length`` header's value, None when it is absent;
    ``content_type`` only improves error messages."""
    view = byte_view(body)
    size = len(view)
    if header_length is None:
        json_end = size
        what = "the request body"
    else:
        json_end = _header_length(header_length, size)
        what = f"the JSON header ({HEADER_LENGTH}: {json_end})"
    if json_end == 0:
        raise OIPError(f"{what} is empty")
    hint = ""
    if header_length is None and "json" not in (content_type or "").lower():
        hint = f" (binary tensor data needs the {HEADER_LENGTH} header)"
    document = _parse_json(view[:json_end], what, hint)
    if not isinstance(document, dict):
        raise OIPError(f"{what} must be a JSON object, got {_kind(document)}{hint}")

    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise OIPError(f"'id' must be a string, got {_kind(request_id)}")
    parameters = _parameters(document.get("parameters"), "'parameters'")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise OIPError(f"parameters.binary_data_output must be a boolean, got {_kind(binary_default)}")

    entries = document.get("inputs")
    if entries is None:
        raise OIPError("the request has no 'inputs'")
    if not isinstance(entries, list):
        raise OIPError(f"'inputs' must be an array, got {_kind(entries)}")
    if not entries:
        raise OIPError("'inputs' must not be empty")
    _bound("inputs", entries, max_tensors)
    inputs: list[Tensor] = []
    binary: list[str] = []
    seen: set[str] = set()
    offset = json_end
    for index, entry in enumerate(entries):
        start = offset
        tensor, offset = _input(index, entry, view, offset, header_length is not None)
        if tensor.name in seen:
            raise OIPError(f"input {tensor.name!r} is given twice")
        seen.add(tensor.name)
        inputs.append(tensor)
        if _is_binary(entry, start, offset):
            binary.append(tensor.name)
    if offset != size:
        raise OIPError(
            f"{size - offset} byte(s) follow the binary data of the inputs: the binary_data_size parameters "
            f"add up to {offset - json_end} of the {size - json_end} byte(s) after the JSON header"
        )
    requested = _requested(document.get("outputs"), max_tensors)
    return V2Request(request_id, parameters, inputs, requested, binary_default, binary)


def _is_binary(entry: dict[str, Any], start: int, end: int) -> bool:
    """The input came as binary data (``binary_data_size``), not as JSON ``data``."""
    return end > start or "binary_data_size" in (entry.get("parameters") or {})


def _header_length(value: str, size: int) -> int:
    text = value.strip(" \t") if isinstance(value, str) else ""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise OIPError(f"{HEADER_LENGTH} must be a non-negative integer, got {_short(repr(value))}")
    length = int(text)
    if length > size:
        raise OIPError(f"{HEADER_LENGTH} is {length} but the body has only {size} byte(s)")
    return length


def _parse_json(raw: memoryview, what: str, hint: str) -> Any:
    try:
        text = str(raw, "utf-8")
    except UnicodeDecodeError as err:
        raise OIPError(f"{what} is not valid UTF-8 ({err.reason} at byte {err.start}){hint}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise OIPError(f"{what} is nested too deeply to be parsed") from None
    except ValueError as err:  # JSONDecodeError, or an integer with too many digits
        raise OIPError(f"{what} is not valid JSON: {_short(str(err))}{hint}") from None


def _input(index: int, entry: Any, view: memoryview, offset: int, binary_mode: bool) -> tuple[Tensor, int]:
    if not isinstance(entry, dict):
        raise OIPError(f"inputs[{index}] must be an object, got {_kind(entry)}")
    name = entry.get("name")
    if not isinstance(name, str):
        raise OIPError(f"inputs[{index}].name must be a string, got {_kind(name)}")
    where = f"input {_short(repr(name))}"
    datatype = entry.get("datatype")
    if datatype not in DATATYPES:
        case = " (datatypes are case-sensitive)" if isinstance(datatype, str) and datatype.upper() in DATATYPES else ""
        shown = _short(repr(datatype)) if isinstance(datatype, str) else _kind(datatype)
        raise OIPError(f"{where}: unknown datatype {shown}{case}; known: {', '.join(DATATYPES)}")
    shape = _shape(where, entry.get("shape"))
    parameters = dict(_parameters(entry.get("parameters"), f"{where} parameters"))
    if _SHARED_MEMORY in parameters:
        raise OIPError(f"{where}: shared memory (parameters.{_SHARED_MEMORY}) is not supported")
    data = entry.get("data")
    if "binary_data_size" in parameters:
        byte_size = parameters.pop("binary_data_size")
        if data is not None:
            raise OIPError(f"{where} has both 'data' and parameters.binary_data_size; give one")
        if type(byte_size) is not int or byte_size < 0:
            raise OIPError(f"{where}: parameters.binary_data_size must be a non-negative integer")
        if byte_size and not binary_mode:  # KServe's client sends an empty binary tensor this way
            raise OIPError(f"{where} has parameters.binary_data_size but the request has no {HEADER_LENGTH} header")
        end = offset + byte_size
        if end > len(view):
            raise OIPError(
                f"{where}: binary_data_size is {byte_size} but only {len(view) - offset} byte(s) of binary data remain"
            )
        return _tensor(where, Tensor, name, datatype, shape, view[offset:end], parameters or None), end
    if data is None:
        raise OIPError(f"{where} has no data: give 'data', or binary data with parameters.binary_data_size")
    flat = _flatten(where, data)
    return _tensor(where, Tensor.from_list, name, datatype, shape, flat, parameters or None), offset


def _tensor(where: str, make: Any, *args: Any) -> Tensor:
    try:
        return make(*args)
    except TensorError as err:  # its message starts "tensor 'name': "
        raise OIPError(_short(f"{where}: {str(err).removeprefix(f'tensor {args[0]!r}: ')}")) from None


def _shape(where: str, shape: Any) -> list[int]:
    if not isinstance(shape, list) or not all(type(dim) is int and 0 <= dim <= _MAX_DIM for dim in shape):
        shown = _short(json.dumps(shape)) if isinstance(shape, list) else _kind(shape)
        raise OIPError(f"{where}: shape must be an array of non-negative integers (below 2**63), got {shown}")
    if len(shape) > MAX_RANK:
        raise OIPError(f"{where}: shape has {len(shape)} dimensions; at most {MAX_RANK} are accepted")
    return shape


def _flatten(where: str, data: Any) -> list[Any]:
    """Elements in document order, one nesting level at a time (no recursion); at most MAX_DEPTH levels."""
    if not isinstance(data, list):
        return [data]
    level = data
    for _ in range(MAX_DEPTH):
        kinds = set(map(type, level))
        if list not in kinds:
            return level
        if len(kinds) == 1:
            level = list(chain.from_iterable(level))
        else:  # ragged: elements in document order
            level = [item for element in level for item in (element if isinstance(element, list) else (element,))]
    raise OIPError(f"{where}: data is nested more than {MAX_DEPTH} levels deep")


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OIPError(f"{where} must be an object, got {_kind(value)}")
    for key, item in value.items():
        if not isinstance(item, str | int | float):
            raise OIPError(f"{where}: {_short(repr(key))} must be a string, number or boolean, got {_kind(item)}")
    return value


def _requested(entries: Any, max_tensors: int) -> list[RequestedOutput] | None:
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise OIPError(f"'outputs' must be an array, got {_kind(entries)}")
    _bound("outputs", entries, max_tensors)
    requested: list[RequestedOutput] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise OIPError(f"outputs[{index}] must be an object, got {_kind(entry)}")
        name = entry.get("name")
        if not isinstance(name, str):
            raise OIPError(f"outputs[{index}].name must be a string, got {_kind(name)}")
        where = f"requested output {_short(repr(name))}"
        if name in seen:
            raise OIPError(f"{where} is requested twice")
        seen.add(name)
        parameters = _parameters(entry.get("parameters"), f"{where} parameters")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise OIPError(f"{where}: parameters.binary_data must be a boolean, got {_kind(binary)}")
        if _SHARED_MEMORY in parameters:
            raise OIPError(f"{where}: shared memory (parameters.{_SHARED_MEMORY}) is not supported")
        requested.append(RequestedOutput(name, parameters, binary))
    return requested or None


def _bound(field: str, entries: list[Any], max_tensors: int) -> None:
    if len(entries) > max_tensors:
        raise OIPError(f"the request has {len(entries)} {field}; at most {max_tensors} are accepted")


# -- responses ------------------------------------------------------------------------------------


def encode_response(
    model_name: str,
    model_version: str | None,
    id: str | None,
    parameters: dict[str, Any] | None,
    outputs: list[Tensor],
    requested: list[RequestedOutput] | None,
    binary_output_default: bool,
) -> EncodedResponse:
    """The response to an ``/infer`` request (see the module docstring).

    ``id`` is the request's id, or the server's request id when the request had none. Output and response
    parameters must be JSON values (a ``binary_data_size`` an output carries is replaced or dropped). Raises
    :class:`OIPError` for a requested output the model did not produce and for a non-UTF-8 BYTES element asked
    for as JSON; a binary output's data is put in ``parts`` as it is, never copied."""
    if requested is None:
        chosen = [(tensor, binary_output_default) for tensor in outputs]
    else:
        by_name = {tensor.name: tensor for tensor in reversed(outputs)}  # the first of a name wins
        chosen = []
        for output in requested:
            tensor = by_name.get(output.name)
            if tensor is None:
                raise OIPError(_short(f"Unexpected inference output '{output.name}' for model '{model_name}'"))
            chosen.append((tensor, binary_output_default if output.binary is None else output.binary))
    entries: list[dict[str, Any]] = []
    blobs: list[bytes | bytearray | memoryview] = []
    for tensor, binary in chosen:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        own = tensor.parameters
        extra = {key: value for key, value in own.items() if key != "binary_data_size"} if own else {}
        if binary:
            extra["binary_data_size"] = len(tensor.data)
            entry["parameters"] = extra
            if tensor.data:
                blobs.append(tensor.data)
        else:
            if extra:
                entry["parameters"] = extra
            entry["data"] = _json_data(tensor)
        entries.append(entry)
    document: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        document["model_version"] = model_version
    if id is not None:
        document["id"] = id
    if parameters:
        document["parameters"] = parameters
    document["outputs"] = entries
    header = encode_json(document)
    if not any(binary for _, binary in chosen):
        return EncodedResponse([header], None, JSON_CONTENT_TYPE)
    return EncodedResponse([header, *blobs], len(header), BINARY_CONTENT_TYPE)


def _json_data(tensor: Tensor) -> list[Any]:
    values = tensor.to_list()
    if tensor.datatype != "BYTES":
        return values
    strings = []
    for index, value in enumerate(values):
        try:
            strings.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            raise OIPError(
                f"output {_short(repr(tensor.name))}: BYTES element {index} is not valid UTF-8, so it cannot be sent "
                "as JSON; request the output with parameters.binary_data: true (or the request parameter "
                "binary_data_output: true)"
            ) from None
    return strings


# -- other bodies ---------------------------------------------------------------------------------


def encode_json(document: Any) -> bytes:
    """Compact, ASCII JSON (so its byte length is its character length)."""
    return json.dumps(document, separators=(",", ":")).encode("ascii")


def encode_error(message: str) -> bytes:
    """The protocol's error body, ``{"error": message}``."""
    return encode_json({"error": message})


def _kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value)) or ("a number" if isinstance(value, int | float) else type(value).__name__)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
