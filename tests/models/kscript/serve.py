"""A KServe model script, as KServe's docs write one, with only its import line changed: ``modelserver.kserve``
in place of ``kserve``."""

import argparse
import os
import time

from modelserver.kserve import InferRequest, Model, ModelRepository, ModelServer, model_server


class Multiplier(Model):
    def __init__(self, name: str, factor: int = 2) -> None:
        super().__init__(name)
        self.factor = factor
        self.load()

    def predict(self, payload, headers=None):  # synchronous on purpose: it must not stall the server
        if isinstance(payload, InferRequest):
            raise NotImplementedError("this model speaks V1 only")
        time.sleep(float(payload.get("sleep", 0)))
        return {"predictions": [value * self.factor for value in payload["instances"]], "pid": os.getpid()}

    def stop(self) -> None:
        print(f"model {self.name} stopped in {os.getpid()}", flush=True)
        super().stop()


class Resting(Model):
    """Registered with ``register_model`` and never loaded: not ready, so KServe answers 503 for it."""

    def predict(self, payload, headers=None):
        return {"predictions": "served while not ready"}


class Repository(ModelRepository):
    """Models loaded on request (``POST /v2/repository/models/{name}/load``): a multiplier by 10."""

    def load(self, name: str) -> bool:
        model = Multiplier(name, factor=10)
        self.update(model)
        return model.ready


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])  # KServe's flags, --model_name among them
    args, _ = parser.parse_known_args()
    server = ModelServer(registered_models=Repository())
    server.register_model(Resting("resting"))
    server.start([Multiplier(args.model_name, factor=3)])
