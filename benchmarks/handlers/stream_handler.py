"""Streams ``CHUNKS`` pieces per request as fast as it can: ``CHUNKS - 1`` intermediate responses and the final one.

Each piece is ``"<index> <time.monotonic_ns() when sent>\\n"``, so a client on the same machine can tell how long a
piece took from the handler's hands to its own (CLOCK_MONOTONIC is one clock for every process on a Linux host).
TorchServe's function form with ``send_intermediate_predict_response``, so it runs under TorchServe unchanged.
"""

import time

from ts.handler_utils.utils import send_intermediate_predict_response

CHUNKS = 10


def handle(data, context):
    if data is None:
        return None
    for index in range(CHUNKS - 1):
        piece = f"{index} {time.monotonic_ns()}\n"
        send_intermediate_predict_response(
            [piece] * len(data), context.request_ids, "Intermediate response", 200, context
        )
    return [f"{CHUNKS - 1} {time.monotonic_ns()}\n"] * len(data)
