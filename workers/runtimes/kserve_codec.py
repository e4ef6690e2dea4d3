"""What a KServe ``Model`` is given and what it gives back, in the worker: job maps <-> KServe's types.

A job with tensors is an Open Inference Protocol (V2) request: it becomes the ``InferRequest`` of the
package the model subclasses (the real ``kserve``, or ours in :mod:`workers.kserve_api`), whose binary
inputs keep their received buffer (``_raw_data``, not copied) and whose JSON inputs carry their values
in ``data``, as KServe's own decoder leaves them. A job without tensors is a KServe V1 request: its
body is decoded by KServe's content-type rule. What the model returns becomes an item map: a V1 dict
as compact JSON, bytes or text as they are, an ``InferResponse`` as output tensors.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from ..oip_grpc import plain_parameters
from ..tensors import Tensor

JSON_CONTENT_TYPES = frozenset(
    {"application/json", "application/cloudevents+json", "application/ld+json", "application/octet-stream"}
)
"""KServe decodes a V1 body as JSON for these content types (or none); any other passes the raw bytes."""

BINARY_SIZE = "binary_data_size"

try:  # orjson is KServe's JSON codec: its messages and datetime/numpy output are what KServe clients see
    import orjson
except ImportError:  # pragma: no cover - orjson comes with the real kserve package
    orjson = None  # type: ignore[assignment]


class KServeTypes:
    """The KServe classes a model speaks, of one package (the model's own): ``InferRequest``, ``InferInput``,
    ``RequestedOutput``, ``InferResponse``, ``InferenceVerb`` and ``InvalidInput``."""

    def __init__(self, infer_type: Any, inference_verb: Any, invalid_input: type[Exception]) -> None:
        self.InferRequest = infer_type.InferRequest
        self.InferInput = infer_type.InferInput
        self.InferResponse = infer_type.InferResponse
        self.RequestedOutput = infer_type.RequestedOutput
        self.InferenceVerb = inference_verb
        self.InvalidInput = invalid_input


# -- requests ----------------------------------------------------------------------------------------


def v1_body(job: Mapping[str, Any], invalid_input: type[Exception]) -> Any:
    """KServe's ``DataPlane.decode`` for a V1 request: JSON for the JSON content types (or none), else raw bytes."""
    inputs = job.get("inputs") or []
    if not inputs:
        return {}
    _, content_type, body = inputs[0]
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime and mime not in JSON_CONTENT_TYPES:
        return bytes(body)
    try:
        return loads(body)
    except ValueError as err:
        raise invalid_input(f"Unrecognized request format: {err}") from None


def loads(body: bytes | bytearray | memoryview) -> Any:
    if orjson is not None:
        return orjson.loads(body)
    return json.loads(bytes(body))


def infer_request(job: Mapping[str, Any], model_name: str, model_version: str, types: KServeTypes) -> Any:
    """The job's tensors as an ``InferRequest``; binary inputs keep their buffer, JSON inputs get their values."""
    inputs = []
    from_grpc = bool(job.get("from_grpc"))
    raw = False
    for wire in job["tensors"]:
        tensor = Tensor.from_wire(wire)
        parameters = dict(tensor.parameters or {})
        binary = BINARY_SIZE in parameters
        if binary and from_grpc:  # KServe's gRPC inputs carry no binary_data_size
            del parameters[BINARY_SIZE]
        given = parameters if parameters or not from_grpc else None  # KServe's gRPC: None for no parameters
        infer_input = types.InferInput(
            name=tensor.name, shape=list(tensor.shape), datatype=tensor.datatype, parameters=given
        )
        if binary:
            raw = True
            infer_input._raw_data = tensor.data  # the received buffer itself: as_numpy() is a view of it
        else:
            values = tensor.to_list()
            if tensor.datatype == "BYTES":
                values = [_text(value) for value in values]
            infer_input.data = values
        inputs.append(infer_input)
    outputs = [
        types.RequestedOutput(name=str(out["name"]), parameters=out.get("parameters"))
        for out in job.get("outputs") or ()
    ]
    request = types.InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=job.get("infer_id") or job.get("request_id"),
        from_grpc=from_grpc,
        parameters=dict(job["parameters"]) if job.get("parameters") else None,
        request_outputs=outputs or None,
        model_version=model_version,
    )
    if from_grpc and raw:  # KServe's rule: raw gRPC inputs make use_binary_outputs true
        request._use_raw_outputs = True
    return request


def _text(value: bytes) -> str | bytes:
    """A BYTES element that came as a JSON string goes back to the model as that string."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


# -- responses -----------------------------------------------------------------------------------


def output_tensors(response: Any) -> list[Tensor]:
    """An ``InferResponse``'s outputs as tensors: raw data as it is, JSON data through ``Tensor.from_list``."""
    tensors = []
    for output in response.outputs or ():
        parameters = None
        if output.parameters:  # plain values, or InferParameters when the output was read from gRPC
            parameters = {k: v for k, v in plain_parameters(output.parameters).items() if k != BINARY_SIZE} or None
        raw = getattr(output, "_raw_data", None)
        shape = [int(dim) for dim in output.shape]
        if raw is not None:
            tensors.append(Tensor(output.name, output.datatype, shape, raw, parameters))
        else:
            data = output.data
            packed = _packed_list(output, data)
            if packed is not None:
                tensors.append(Tensor(output.name, output.datatype, shape, packed, parameters))
                continue
            if hasattr(data, "tolist"):
                data = data.tolist()
            tensors.append(Tensor.from_list(output.name, output.datatype, shape, data, parameters))
    return tensors


def _packed_list(output: Any, data: Any) -> bytes | None:
    """The bytes of a list that ``set_data_from_numpy(array, binary_data=False)`` made (still the very list it
    set), packed by numpy with the array's dtype: 5 times faster than element by element for a 1 MB tensor. None
    when the list is another one, or numpy cannot take it (then :meth:`Tensor.from_list` says what is wrong)."""
    source = getattr(output, "_list_of", None)
    if source is None or source[0] is not data:
        return None
    import numpy as np

    try:
        return np.asarray(data, dtype=np.dtype(source[1]).newbyteorder("<")).tobytes()
    except (TypeError, ValueError, OverflowError):
        return None


def v1_response_body(response: Any) -> tuple[bytes, str]:
    """``(body, content type)`` of a V1 answer: bytes and text as they are (no content type, as KServe's plain
    ``Response``), anything else compact JSON."""
    if isinstance(response, bytes | bytearray | memoryview):
        return bytes(response), ""
    if isinstance(response, str):
        return response.encode("utf-8"), ""
    return dumps(response), "application/json"


def dumps(value: Any) -> bytes:
    if orjson is not None:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(value, separators=(",", ":"), default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def chunk_bytes(chunk: Any) -> bytes:
    """One piece of a streamed V1 answer."""
    if isinstance(chunk, bytes | bytearray | memoryview):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    return dumps(chunk)
