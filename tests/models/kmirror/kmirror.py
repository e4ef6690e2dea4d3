"""A KServe model that answers whatever it is sent without failing: V1 gives back the instances (or the whole
payload), V2 its first input as ``output-0``. For the OpenAPI conformance test, where a model's own failure would
look like the server's."""

from kserve import InferRequest, InferResponse, Model
from kserve.utils.utils import get_predict_response


class MirrorModel(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    async def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):
            if not payload.inputs:
                return InferResponse(payload.id, self.name, [])
            return get_predict_response(payload, payload.inputs[0].as_numpy(), self.name)
        if isinstance(payload, bytes):
            return {"predictions": [payload.decode("latin-1")]}
        if isinstance(payload, dict) and "instances" in payload:
            return {"predictions": payload["instances"]}
        return {"predictions": payload}

    async def explain(self, payload, headers=None):
        if isinstance(payload, bytes):
            payload = payload.decode("latin-1")
        return {"explanations": payload}
