"""``ts.torch_handler.request_envelope.kservev2``: KServe's v2 (Open Inference Protocol) JSON.

The handler gets the ``inputs`` list of the batch's first request (each ``{"name", "shape", "datatype", "data"}``,
``data`` nested by ``shape``, a BYTES input's ``data`` its first element, as TorchServe 0.12 gives them); its results
are answered as one v2 response for the batch, as in TorchServe::

    {"id": <the request's id, else the x-request-id>, "model_name": ..., "model_version": ...,
     "outputs": [{"name": <the name of input i>, "shape": [...], "datatype": "FP32", "data": [flat list]}, ...]}

with one output per result element, named after the input at the same place (``output-<i>`` past the last input,
where TorchServe fails), its shape and datatype those of ``numpy.array(element)``.
"""

from __future__ import annotations

import json
from typing import Any

from .base import BaseEnvelope, request_payload

_DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "object": "BYTES",
}
"""numpy dtype name -> v2 datatype, as TorchServe maps them; unicode arrays (kind ``U``) are ``BYTES`` too."""


def datatype_of(dtype: Any) -> str:
    """The v2 datatype of a numpy dtype; ``ValueError`` for one without (TorchServe fails there too)."""
    datatype = _DATATYPES.get(str(dtype)) or ("BYTES" if dtype.kind == "U" else None)
    if datatype is None:
        raise ValueError(f"numpy dtype {dtype} has no KServe v2 datatype")
    return datatype


def _as_torchserve_gives_it(tensor: Any) -> Any:
    """TorchServe 0.12 hands a handler each input's ``data`` nested by its ``shape`` (a BYTES input: its first
    element), so handlers written for it index ``data`` as an array."""
    if not isinstance(tensor, dict) or "data" not in tensor:
        return tensor
    data = tensor["data"]
    if tensor.get("datatype") == "BYTES":
        return {**tensor, "data": data[0] if isinstance(data, list) and data else data}
    import numpy as np

    try:
        nested = np.array(data).reshape(tuple(tensor.get("shape") or ())).tolist()
    except (TypeError, ValueError):  # a shape that does not fit: the handler sees the data as sent
        return tensor
    return {**tensor, "data": nested}


class KServev2Envelope(BaseEnvelope):
    """``inputs`` in, one ``{"id", "model_name", "model_version", "outputs"}`` out."""

    def __init__(self, handle_fn: Any) -> None:
        super().__init__(handle_fn)
        self._request_id: Any = None
        self._input_names: list[str] = []

    def parse_input(self, data: Any) -> Any:
        payload = request_payload(data[0])
        if isinstance(payload, bytes | bytearray | str):
            payload = json.loads(payload)
        request_id = payload.get("id")
        self._request_id = request_id if request_id not in (None, "") else None
        inputs = payload.get("inputs")
        if not isinstance(inputs, list):
            self._input_names = []
            return inputs
        self._input_names = [str(i.get("name")) for i in inputs if isinstance(i, dict)]
        return [_as_torchserve_gives_it(i) for i in inputs]

    def format_output(self, data: Any) -> list[dict[str, Any]]:
        context = self.context
        request_id, self._request_id = self._request_id, None
        response: dict[str, Any] = {"id": request_id if request_id is not None else context.get_request_id(0)}
        model = (context.manifest or {}).get("model")
        if model:
            response["model_name"] = model.get("modelName")
            response["model_version"] = model.get("modelVersion")
        else:
            response["model_name"] = context.model_name
        names, self._input_names = self._input_names, []
        # TorchServe 0.12 names output i after input i (and fails when there are more outputs than inputs)
        response["outputs"] = [
            self._output(names[index] if index < len(names) else f"output-{index}", element)
            for index, element in enumerate(data)
        ]
        return [response]

    @staticmethod
    def _output(name: str, element: Any) -> dict[str, Any]:
        import numpy as np

        array = np.array(element)
        return {
            "name": name,
            "shape": list(array.shape),
            "datatype": datatype_of(array.dtype),
            "data": array.reshape(-1).tolist(),
        }
