"""The Open Inference Protocol's gRPC messages to tensors and back (``inference.ModelInferRequest`` /
``ModelInferResponse``, as KServe 0.21 and Triton define them).

Inputs come either typed, in the ``InferTensorContents`` field of their datatype, or raw: ``raw_input_contents``
holds one buffer per input, in input order (row-major, little-endian; BYTES elements each a 4-byte little-endian
length and its bytes), and then no input may have contents. FP16 and BF16 have no contents field, so they come raw.
Every malformed request raises :class:`OIPError` (answered INVALID_ARGUMENT) naming the field or tensor.

The response is raw (``raw_output_contents``) when the request's inputs were, or when an output has no contents
field (FP16, BF16); typed otherwise, which is what KServe's own server does. Raw tensors are neither copied in
nor out: :mod:`.grpc_oip_wire` reads and writes them on the wire around protobuf. Triton's and KServe's clients read
both forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workers.oip_grpc import CONTENTS_FIELD, add_tensor, parameters_of, set_parameters
from workers.tensors import Tensor, TensorError

from . import grpc_oip_wire as wire
from .oip_codec import MAX_RANK, MAX_TENSORS, OIPError, RequestedOutput


@dataclass(slots=True)
class GrpcRequest:
    """A decoded ``ModelInferRequest``."""

    id: str
    parameters: dict[str, Any]
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None
    raw: bool


def decode_request(request: Any, raw: Sequence[Any] | None = None, max_tensors: int = MAX_TENSORS) -> GrpcRequest:
    """Tensors and parameters of a ``ModelInferRequest`` (see the module docstring). ``raw``: its
    ``raw_input_contents`` when the caller took them off the wire itself (:func:`.grpc_oip_wire.split_request`),
    else they are read from ``request``."""
    entries = request.inputs
    if not entries:
        raise OIPError("the request has no inputs")
    if len(entries) > max_tensors or len(request.outputs) > max_tensors:
        raise OIPError(f"the request has more than {max_tensors} inputs or outputs")
    if raw is None:
        raw = request.raw_input_contents
    if raw and len(raw) != len(entries):
        raise OIPError(
            f"raw_input_contents has {len(raw)} buffer(s) for {len(entries)} input(s): give one per input, in order"
        )
    inputs: list[Tensor] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        name = entry.name
        where = f"input {name!r}"
        if name in seen:
            raise OIPError(f"{where} is given twice")
        seen.add(name)
        if len(entry.shape) > MAX_RANK or any(dim < 0 for dim in entry.shape):
            shown = list(entry.shape)
            raise OIPError(f"{where}: shape must be at most {MAX_RANK} non-negative dimensions, got {shown}")
        parameters = parameters_of(entry.parameters) or None
        has_contents = entry.HasField("contents")
        try:
            if raw:
                if has_contents:
                    raise OIPError(f"{where} has contents, but the request gives raw_input_contents: use one form")
                inputs.append(Tensor(name, entry.datatype, entry.shape, raw[index], parameters))
                continue
            field = CONTENTS_FIELD.get(entry.datatype)
            if field is None:
                raise OIPError(
                    f"{where}: datatype {entry.datatype!r} has no contents field; send it in raw_input_contents"
                    if entry.datatype in ("FP16", "BF16")
                    else f"{where}: unknown datatype {entry.datatype!r}"
                )
            values = getattr(entry.contents, field)
            inputs.append(Tensor.from_list(name, entry.datatype, entry.shape, list(values), parameters))
        except TensorError as err:
            raise OIPError(str(err)) from None
    outputs = None
    if request.outputs:
        outputs = []
        for output in request.outputs:
            values = parameters_of(output.parameters)
            binary = values.get("binary_data")
            outputs.append(RequestedOutput(output.name, values, binary if isinstance(binary, bool) else None))
    return GrpcRequest(request.id, parameters_of(request.parameters), inputs, outputs, bool(raw))


def chosen_outputs(model_name: str, tensors: list[Tensor], requested: list[RequestedOutput] | None) -> list[Tensor]:
    """The outputs the request named, in its order, else all of them; an output the model did not produce is an
    :class:`OIPError`."""
    if requested is None:
        return tensors
    by_name = {tensor.name: tensor for tensor in reversed(tensors)}
    chosen = []
    for output in requested:
        tensor = by_name.get(output.name)
        if tensor is None:
            raise OIPError(f"Unexpected inference output '{output.name}' for model '{model_name}'")
        chosen.append(tensor)
    return chosen


def response_bytes(
    messages: Any,
    model_name: str,
    model_version: str,
    request_id: str,
    parameters: dict[str, Any] | None,
    tensors: list[Tensor],
    requested: list[RequestedOutput] | None,
    raw: bool,
    wire_min_bytes: int = 0,
    pieces: bool = False,
) -> Any:
    """The serialized ``ModelInferResponse`` (``messages``: the compiled ``.proto``'s classes): raw outputs of
    ``wire_min_bytes`` or more in all written by :mod:`.grpc_oip_wire` around the outputs' own buffers (with
    ``pieces``, as the list of its pieces, :func:`.grpc_oip_wire.response_pieces`), the rest through protobuf."""
    chosen = chosen_outputs(model_name, tensors, requested)
    raw = raw or any(tensor.datatype not in CONTENTS_FIELD for tensor in chosen)
    if not raw or sum(len(tensor.data) for tensor in chosen) < wire_min_bytes:
        response = encode_response(
            messages.ModelInferResponse(), model_name, model_version, request_id, parameters, chosen, None, raw
        )
        return response.SerializeToString()
    entries = []
    for tensor in chosen:
        own = {k: v for k, v in (tensor.parameters or {}).items() if k != "binary_data_size"}
        extra = b""
        if own:
            holder = messages.ModelInferResponse.InferOutputTensor()
            set_parameters(holder.parameters, own)
            extra = holder.SerializeToString()
        entries.append(wire.output_entry(tensor.name, tensor.datatype, tensor.shape, extra))
    extra = b""
    if parameters:
        holder = messages.ModelInferResponse()
        set_parameters(holder.parameters, parameters)
        extra = holder.SerializeToString()
    write = wire.response_pieces if pieces else wire.response_bytes
    return write(model_name, model_version, request_id, extra, entries, [tensor.data for tensor in chosen])


def encode_response(
    response: Any,
    model_name: str,
    model_version: str,
    request_id: str,
    parameters: dict[str, Any] | None,
    tensors: list[Tensor],
    requested: list[RequestedOutput] | None,
    raw: bool,
) -> Any:
    """Fill ``response`` (a fresh ``ModelInferResponse``) with the outputs the request named (:func:`chosen_outputs`)
    through protobuf."""
    chosen = chosen_outputs(model_name, tensors, requested)
    raw = raw or any(tensor.datatype not in CONTENTS_FIELD for tensor in chosen)
    response.model_name = model_name
    response.model_version = model_version
    response.id = request_id
    set_parameters(response.parameters, parameters)
    for tensor in chosen:
        own = {k: v for k, v in (tensor.parameters or {}).items() if k != "binary_data_size"}
        values = tensor.data if raw else tensor.to_list()
        add_tensor(
            response.outputs, response.raw_output_contents, tensor.name, tensor.datatype, tensor.shape, own, values, raw
        )
    return response
