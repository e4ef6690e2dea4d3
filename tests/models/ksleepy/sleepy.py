"""A KServe model that sleeps as many seconds as its first input's first element says, then answers that input:
for deadlines and cancellation. Each call's start and end go to the worker's log."""

import asyncio
import logging

from kserve import InferRequest, Model
from kserve.utils.utils import get_predict_response

log = logging.getLogger("ksleepy")


class SleepyModel(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    async def predict(self, payload: InferRequest, headers=None):
        values = payload.inputs[0].as_numpy()
        log.warning("ksleepy: sleeping %s s", float(values.ravel()[0]))
        await asyncio.sleep(float(values.ravel()[0]))
        log.warning("ksleepy: woke up")
        return get_predict_response(payload, values, self.name)
