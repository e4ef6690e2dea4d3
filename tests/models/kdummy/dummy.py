"""A KServe model as KServe's own tests write one: V1 echoes the instances, V2 answers its first input as
``output-0`` and echoes the request's parameters (and the input's, on the output)."""

from kserve import InferRequest, InferResponse, Model
from kserve.utils.utils import get_predict_response


class DummyModel(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    def get_input_types(self):
        return [{"name": "input-0", "datatype": "INT32", "shape": [-1, 2]}]

    def get_output_types(self):
        return [{"name": "output-0", "datatype": "INT32", "shape": [-1, 2]}]

    async def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):
            response = get_predict_response(payload, payload.inputs[0].as_numpy(), self.name)
            response.parameters = payload.parameters
            response.outputs[0].parameters = payload.inputs[0].parameters
            return response
        if isinstance(payload, dict) and payload.get("fail"):
            raise ValueError("kaboom")
        if isinstance(payload, bytes):
            return {"predictions": [payload.decode("latin-1")], "raw": True}
        return {"predictions": payload.get("instances") or payload.get("inputs")}

    async def explain(self, payload, headers=None):
        return {"explanations": payload.get("instances")}


assert InferResponse  # imported as KServe models do
