"""``InferRequest``: a V2 inference request and its REST forms (KServe 0.21's ``kserve.protocol.infer_type``)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from .codec import dumps, to_http_parameters
from .errors import InvalidInput
from .infer_tensor import InferInput, RequestedOutput
from .rest_body import binary_slice, byte_size, field, json_header, requested_outputs, tensor_fields

__all__ = ["InferRequest"]


class InferRequest:
    """A V2 inference request: ``InferRequest(model_name, infer_inputs, request_id=None, raw_inputs=None,
    from_grpc=False, parameters=None, request_outputs=None, model_version=None)``.

    ``raw_inputs`` (one bytes-like per input, in order) become the inputs' ``_raw_data``. Attributes: ``id``,
    ``model_name``, ``model_version``, ``inputs``, ``parameters``, ``request_outputs``, ``from_grpc``."""

    def __init__(
        self,
        model_name: str,
        infer_inputs: list[InferInput],
        request_id: str | None = None,
        raw_inputs: list[Any] | None = None,
        from_grpc: bool | None = False,
        parameters: dict[str, Any] | None = None,
        request_outputs: list[RequestedOutput] | None = None,
        model_version: str | None = None,
    ) -> None:
        self.id = request_id
        self.model_name = model_name
        self.inputs = infer_inputs
        self.parameters = parameters
        self.from_grpc = from_grpc
        self._use_raw_outputs = False
        if raw_inputs:
            self._use_raw_outputs = True
            for infer_input, raw_input in zip(self.inputs, raw_inputs, strict=False):
                infer_input._raw_data = raw_input
        self.request_outputs = request_outputs
        self.model_version = model_version

    @property
    def use_binary_outputs(self) -> bool:
        """Whether outputs default to binary: REST ``parameters.binary_data_output`` (False when absent); for gRPC,
        whether the inputs came as raw contents. A requested output's ``binary_data`` decides for that output."""
        if self._use_raw_outputs and self.from_grpc:
            return True
        if self.parameters and not self.from_grpc:
            return self.parameters.get("binary_data_output", False)
        return False

    @classmethod
    def from_grpc(cls, request: Any) -> InferRequest:
        """A request from a gRPC ``ModelInferRequest``: typed contents become the inputs' ``data`` lists, raw
        contents their ``_raw_data``; ``parameters`` is the message's ``InferParameter`` map, as in KServe. Needs
        the ``grpc`` extra (see :mod:`workers.kserve_api.grpc_codec`)."""
        from .grpc_codec import request_from_grpc

        return request_from_grpc(cls, request)

    def to_grpc(self) -> Any:
        """The request as a gRPC ``ModelInferRequest`` of our message classes (those of
        ``kserve.protocol.grpc.grpc_predict_v2_pb2`` in the shim): binary and numpy inputs raw, lists typed.
        :class:`InvalidInput` for data that is neither, a list of a datatype without contents (FP16), or a parameter
        the protocol cannot carry. Needs the ``grpc`` extra."""
        from .grpc_codec import request_to_grpc

        return request_to_grpc(self)

    @classmethod
    def from_bytes(cls, req_bytes: Any, json_length: int, model_name: str) -> InferRequest:
        """A request from a REST body: the JSON header (``json_length`` bytes), then the binary inputs.

        As in KServe, binary inputs are decoded into ``data`` lists (``BYTES`` as UTF-8 strings) and an FP16 input
        must be binary. :class:`InvalidInput` for a malformed body."""
        header = json_header(req_bytes, json_length)
        inputs = header.get("inputs")
        if not isinstance(inputs, list):
            raise InvalidInput("Unrecognized request format: 'inputs' must be a list")
        infer_inputs = []
        start = json_length
        for tensor in inputs:
            name, shape, datatype, parameters = tensor_fields(tensor, "input")
            infer_input = InferInput(name=name, shape=shape, datatype=datatype, parameters=parameters)
            data = tensor.get("data")
            if data is not None:
                if infer_input.datatype == "FP16":
                    raise InvalidInput(
                        "Receiving FP16 data via JSON is not supported. Please use the binary data format "
                        f"for input {infer_input.name}"
                    )
                infer_input.data = data
            elif parameters and "binary_data_size" in parameters:
                size = parameters.get("binary_data_size")
                if size is None:
                    raise InvalidInput(
                        f"'binary_data_size' is not specified for input '{infer_input.name}' for model '{model_name}'"
                    )
                infer_input._raw_data, start = binary_slice(req_bytes, start, size, f"input '{infer_input.name}'")
                infer_input.set_data_from_numpy(infer_input.as_numpy(), binary_data=False)
            else:
                raise InvalidInput(f"'data' field is missing for input '{infer_input.name}' for model '{model_name}'")
            infer_inputs.append(infer_input)
        return cls(
            model_name=model_name,
            request_id=header.get("id"),
            parameters=header.get("parameters"),
            infer_inputs=infer_inputs,
            request_outputs=requested_outputs(header.get("outputs")),
        )

    @classmethod
    def from_inference_request(cls, request: Any, model_name: str) -> InferRequest:
        """A request from a parsed V2 JSON body: a dict, or an object with the same attributes (KServe passes its
        pydantic ``InferenceRequest``). FP16 inputs with JSON data raise :class:`InvalidInput`, as in KServe."""
        inputs = field(request, "inputs")
        if not isinstance(inputs, list):
            raise InvalidInput("Unrecognized request format: 'inputs' must be a list")
        infer_inputs = []
        for tensor in inputs:
            if isinstance(tensor, Mapping):
                name, shape, datatype, parameters = tensor_fields(tensor, "input")
            else:
                name, shape, datatype = tensor.name, tensor.shape, tensor.datatype
                parameters = getattr(tensor, "parameters", None)
            data = field(tensor, "data")
            if str(datatype).upper() == "FP16" and data is not None and len(data) != 0:
                raise InvalidInput(
                    f"Sending FP16 data via JSON is not supported. Please use the binary data format for input {name}"
                )
            infer_inputs.append(
                InferInput(name, shape, datatype, data=data, parameters={} if parameters is None else parameters)
            )
        outputs = field(request, "outputs")
        requested = None
        if outputs:
            requested = []
            for output in outputs:
                parameters = field(output, "parameters")
                requested.append(RequestedOutput(field(output, "name"), {} if parameters is None else parameters))
        return cls(
            model_name=model_name,
            infer_inputs=infer_inputs,
            request_id=field(request, "id"),
            parameters=field(request, "parameters"),
            request_outputs=requested,
        )

    def to_rest(self) -> tuple[dict[str, Any] | bytes, int | None]:
        """The request as a V2 REST body: ``(dict, None)``, or ``(bytes, json_length)`` when some input has
        ``_raw_data`` (those go after the JSON, in input order). A request without an id gets a uuid4. Inputs whose
        ``data`` is a numpy array are converted to JSON lists first. :class:`InvalidInput` for an input without data,
        with both ``data`` and ``_raw_data``, or FP16 data as JSON."""
        infer_inputs = []
        raw_inputs = []
        for infer_input in self.inputs:
            if infer_input.data is None and infer_input._raw_data is None:
                raise InvalidInput(
                    f"'data' field is missing for output '{infer_input.name}' for model '{self.model_name}'"
                )
            if isinstance(infer_input.data, np.ndarray):
                infer_input.set_data_from_numpy(infer_input.data, binary_data=False)
            if infer_input.data and infer_input._raw_data:
                raise InvalidInput(
                    f"Both 'data' and 'raw_data' fields are set for input '{infer_input.name}' "
                    f"for model '{self.model_name}'"
                )
            if infer_input.datatype == "FP16" and infer_input.data:
                raise InvalidInput(
                    "Sending FP16 data via JSON is not supported. Please use the binary data format for input "
                    f"{infer_input.name}"
                )
            entry: dict[str, Any] = {
                "name": infer_input.name,
                "shape": infer_input.shape,
                "datatype": infer_input.datatype,
            }
            if infer_input.parameters:
                entry["parameters"] = to_http_parameters(infer_input.parameters)
            raw = infer_input._raw_data
            if raw is not None:  # marked binary even when _raw_data was set directly (KServe relies on the caller)
                entry.setdefault("parameters", {})["binary_data_size"] = byte_size(raw)
                raw_inputs.append(raw)
            else:
                entry["data"] = infer_input.data
            infer_inputs.append(entry)
        requested = []
        for output in self.request_outputs or ():
            wanted: dict[str, Any] = {"name": output.name}
            if output.parameters:
                wanted["parameters"] = to_http_parameters(output.parameters)
            requested.append(wanted)
        result: dict[str, Any] = {
            "id": self.id if self.id else str(uuid.uuid4()),
            "model_name": self.model_name,
            "inputs": infer_inputs,
        }
        if requested:
            result["outputs"] = requested
        if self.parameters:
            result["parameters"] = to_http_parameters(self.parameters)
        if raw_inputs:
            header = dumps(result)
            return b"".join([header, *raw_inputs]), len(header)
        return result, None

    def as_dataframe(self) -> Any:
        """The inputs as a pandas DataFrame, one column per input (``BYTES`` decoded as UTF-8). Needs pandas."""
        import pandas as pd

        frames = []
        for infer_input in self.inputs:
            data = infer_input.data
            if data is None and infer_input._raw_data is not None:
                data = infer_input.as_numpy().ravel().tolist()
            if infer_input.datatype == "BYTES":
                data = [str(value, "utf-8") if isinstance(value, bytes) else value for value in data]
            frames.append(pd.DataFrame(data, columns=[infer_input.name]))
        return pd.concat(frames, axis=1)

    def get_input_by_name(self, name: str) -> InferInput | None:
        """The input called ``name``, or None."""
        for infer_input in self.inputs:
            if infer_input.name == name:
                return infer_input
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InferRequest):
            return False
        return (
            self.model_name == other.model_name
            and self.id == other.id
            and self.from_grpc == other.from_grpc
            and self.parameters == other.parameters
            and self.inputs == other.inputs
            and self.request_outputs == other.request_outputs
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model_name": self.model_name,
            "inputs": [infer_input.to_dict() for infer_input in self.inputs],
            "parameters": self.parameters,
            "from_grpc": self.from_grpc,
        }

    def __repr__(self) -> str:
        return (
            f'"id": "{self.id}",'
            f'"model_name": "{self.model_name}",'
            f'"inputs": {self.inputs!r},'
            f'"parameters": {self.parameters},'
            f'"from_grpc": {self.from_grpc}'
        )

    def __str__(self) -> str:
        return self.__repr__()
