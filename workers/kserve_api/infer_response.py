"""``InferResponse``: a V2 inference response and its REST forms (KServe 0.21's ``kserve.protocol.infer_type``).

See :mod:`workers.kserve_api.infer_type` for which outputs :meth:`InferResponse.to_rest` sends as binary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .codec import dumps, to_http_parameters
from .errors import InvalidInput
from .infer_tensor import InferOutput, RequestedOutput
from .rest_body import binary_slice, json_header, set_binary_size, tensor_fields

__all__ = ["InferResponse"]


class InferResponse:
    """A V2 inference response: ``InferResponse(response_id, model_name, infer_outputs, model_version=None,
    raw_outputs=None, from_grpc=False, parameters=None, use_binary_outputs=False, requested_outputs=None)``.

    Attributes: ``id``, ``model_name``, ``model_version``, ``outputs``, ``parameters``, ``from_grpc``; the binary
    settings are kept in ``_use_binary_outputs`` and ``_requested_outputs`` as in KServe."""

    def __init__(
        self,
        response_id: str | None,
        model_name: str,
        infer_outputs: list[InferOutput],
        model_version: str | None = None,
        raw_outputs: list[Any] | None = None,
        from_grpc: bool | None = False,
        parameters: dict[str, Any] | None = None,
        use_binary_outputs: bool | None = False,
        requested_outputs: list[RequestedOutput] | None = None,
    ) -> None:
        self.id = response_id
        self.model_name = model_name
        self.model_version = model_version
        self.outputs = infer_outputs
        self.parameters = parameters
        self.from_grpc = from_grpc
        self._requested_outputs = requested_outputs
        self._use_binary_outputs = use_binary_outputs
        if raw_outputs:
            for infer_output, raw_output in zip(self.outputs, raw_outputs, strict=False):
                infer_output._raw_data = raw_output

    @classmethod
    def from_grpc(cls, response: Any) -> InferResponse:
        """A response from a gRPC ``ModelInferResponse``: typed contents become the outputs' ``data`` lists, raw
        contents their ``_raw_data``; its and its outputs' ``parameters`` are the message's ``InferParameter`` maps,
        as in KServe. Needs the ``grpc`` extra (see :mod:`workers.kserve_api.grpc_codec`)."""
        from .grpc_codec import response_from_grpc

        return response_from_grpc(cls, response)

    def to_grpc(self) -> Any:
        """The response as a gRPC ``ModelInferResponse`` of our message classes, with every output: raw when it is
        binary or numpy, and every list raw too when ``use_binary_outputs`` is set or an output is FP16; typed
        otherwise. :class:`InvalidInput` as for ``InferRequest.to_grpc``. Needs the ``grpc`` extra."""
        from .grpc_codec import response_to_grpc

        return response_to_grpc(self)

    @classmethod
    def from_rest(cls, response: Mapping[str, Any]) -> InferResponse:
        """A response from a parsed V2 JSON body (every output with JSON ``data``)."""
        outputs = response.get("outputs")
        if not isinstance(outputs, list):
            raise InvalidInput("Unrecognized response format: 'outputs' must be a list")
        infer_outputs = []
        for output in outputs:
            name, shape, datatype, parameters = tensor_fields(output, "output")
            if "data" not in output:
                raise InvalidInput(
                    f"'data' field is missing for output '{name}' for model '{response.get('model_name')}'"
                )
            infer_outputs.append(InferOutput(name, list(shape), datatype, data=output["data"], parameters=parameters))
        return cls(
            model_name=response.get("model_name"),
            model_version=response.get("model_version"),
            response_id=response.get("id"),
            parameters=response.get("parameters"),
            infer_outputs=infer_outputs,
        )

    @classmethod
    def from_bytes(cls, res_bytes: Any, json_length: int) -> InferResponse:
        """A response from a REST body: the JSON header (``json_length`` bytes; all of it when nothing binary
        follows), then the binary outputs, which are decoded into ``data`` lists as in KServe."""
        header = json_header(res_bytes, json_length)
        model_name = header.get("model_name")
        outputs = header.get("outputs")
        if not isinstance(outputs, list):
            raise InvalidInput("Unrecognized response format: 'outputs' must be a list")
        infer_outputs = []
        start = json_length
        for tensor in outputs:
            name, shape, datatype, parameters = tensor_fields(tensor, "output")
            infer_output = InferOutput(name=name, shape=shape, datatype=datatype, parameters=parameters)
            if parameters and "binary_data_size" in parameters:
                size = parameters.get("binary_data_size")
                infer_output._raw_data, start = binary_slice(res_bytes, start, size, f"output '{name}'")
                infer_output.set_data_from_numpy(infer_output.as_numpy(), binary_data=False)
            else:
                data = tensor.get("data")
                if data is None:
                    raise InvalidInput(f"'data' field is missing for output '{name}' for model '{model_name}'")
                infer_output.data = data
            infer_outputs.append(infer_output)
        return cls(
            model_name=model_name,
            model_version=header.get("model_version"),
            response_id=header.get("id"),
            parameters=header.get("parameters"),
            infer_outputs=infer_outputs,
        )

    def to_rest(self) -> tuple[dict[str, Any] | bytes, int | None]:
        """The response as a V2 REST body: ``(dict, None)``, or ``(bytes, json_length)`` when some output is binary.

        Which outputs are binary follows KServe's rule (see the module's docstring). Outputs are normalised on the
        way (numpy arrays and nested lists become flat lists, ``BYTES`` become strings). :class:`InvalidInput` for a
        requested output the model did not produce (``"Unexpected inference output 'x' for model 'm'"``), an output
        without data, or FP16 data as JSON."""
        infer_outputs = []
        raw_outputs = []
        use_binary = self._use_binary_outputs
        requested = self._requested_outputs
        for wanted in requested if requested else self.outputs:
            infer_output = self.get_output_by_name(wanted.name) if requested else wanted
            if requested:
                use_binary = wanted.binary_data
            if infer_output is None:
                raise InvalidInput(f"Unexpected inference output '{wanted.name}' for model '{self.model_name}'")
            if infer_output.data is None and infer_output._raw_data is None:
                raise InvalidInput(
                    f"'data' field is missing for output '{infer_output.name}' for model '{self.model_name}'"
                )
            if isinstance(infer_output.data, np.ndarray):
                infer_output.set_data_from_numpy(infer_output.data, binary_data=bool(use_binary))
            elif use_binary and infer_output.data is None:  # already binary: keep the buffer (no copy) once it fits
                infer_output.as_numpy()
                set_binary_size(infer_output)
            elif infer_output.data or infer_output._raw_data is not None:
                infer_output.set_data_from_numpy(infer_output.as_numpy(), binary_data=bool(use_binary))
            if infer_output.datatype == "FP16" and infer_output.data:
                raise InvalidInput(
                    "Sending FP16 data via JSON is not supported. Please use the binary data format for output "
                    f"{infer_output.name}"
                )
            entry: dict[str, Any] = {
                "name": infer_output.name,
                "shape": infer_output.shape,
                "datatype": infer_output.datatype,
            }
            if infer_output.parameters:
                entry["parameters"] = to_http_parameters(infer_output.parameters)
            if use_binary:
                raw_outputs.append(infer_output._raw_data)
            else:
                entry["data"] = infer_output.data
            infer_outputs.append(entry)
        result: dict[str, Any] = {
            "id": self.id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "outputs": infer_outputs,
        }
        if self.parameters:
            result["parameters"] = to_http_parameters(self.parameters)
        if raw_outputs:
            header = dumps(result)
            return b"".join([header, *raw_outputs]), len(header)
        return result, None

    def get_output_by_name(self, name: str) -> InferOutput | None:
        """The output called ``name``, or None."""
        for infer_output in self.outputs:
            if infer_output.name == name:
                return infer_output
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InferResponse):
            return False
        return (
            self.model_name == other.model_name
            and self.model_version == other.model_version
            and self.id == other.id
            and self.from_grpc == other.from_grpc
            and self.parameters == other.parameters
            and self.outputs == other.outputs
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model_name": self.model_name,
            "outputs": [infer_output.to_dict() for infer_output in self.outputs],
            "parameters": self.parameters,
            "from_grpc": self.from_grpc,
        }

    def __repr__(self) -> str:
        return (
            f'"id": "{self.id}",'
            f'"model_name": "{self.model_name}",'
            f'"outputs": {self.outputs!r},'
            f'"parameters": {self.parameters},'
            f'"from_grpc": {self.from_grpc}'
        )

    def __str__(self) -> str:
        return self.__repr__()
