"""A handler with a fixed cost per call: it sleeps ``COST_S`` once per batch, whatever the batch size, and answers
each request with the size of the batch it was part of. The ideal throughput is ``batch size / COST_S``.

TorchServe's function form, so the same file runs under TorchServe and under this server unchanged.
"""

import time

COST_S = 0.010


def handle(data, context):
    if data is None:  # TorchServe initialises function handlers with handle(None, context)
        return None
    time.sleep(COST_S)
    return [len(data)] * len(data)
