"""A KServe model script that serves gRPC as KServe's docs show it: ``ModelServer(enable_grpc=True,
grpc_port=...)``, with ``modelserver.kserve`` in place of ``kserve``. Its model doubles an Open Inference Protocol
input (any numeric datatype; BYTES are repeated twice) and tells, in the response's parameters, whether the request
came over gRPC and whether its outputs default to binary (KServe: when the gRPC inputs were raw)."""

import argparse

import numpy as np
from modelserver.kserve.utils.utils import get_predict_response

from modelserver.kserve import InferRequest, InferResponse, Model, ModelServer, model_server


class Doubler(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    def get_input_types(self):
        return [{"name": "x", "datatype": "FP32", "shape": [-1]}]

    def get_output_types(self):
        return [{"name": "output-0", "datatype": "FP32", "shape": [-1]}]

    async def predict(self, payload: InferRequest, headers=None) -> InferResponse:
        values = payload.inputs[0].as_numpy()
        doubled = values * 2 if values.dtype != object else np.array([v + v for v in values.ravel()], dtype=object)
        response = get_predict_response(payload, doubled, self.name)
        response.parameters = {"from_grpc": payload.from_grpc, "binary_outputs": payload.use_binary_outputs}
        return response


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    args, _ = parser.parse_known_args()
    ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=True).start([Doubler("doubler")])
