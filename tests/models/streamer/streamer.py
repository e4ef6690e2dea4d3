"""Streams ``count`` pieces (each padded with ``pad`` x's), ``pause`` seconds apart, recording its progress in
``progress`` (a file).

The progress file is the side effect a test reads to see that a client's disconnect stopped it:
``send_intermediate_predict_response`` raises once the client is gone, and the handler records that.
"""

import json
import time

from ts.handler_utils.utils import send_intermediate_predict_response


def handle(data, context):
    if data is None:
        return None
    spec = data[0].get("body") or {}
    count, pause, progress = spec.get("count", 3), spec.get("pause", 0.0), spec.get("progress")
    padding = "x" * spec.get("pad", 0)
    sent = 0
    state = "finished"
    try:
        for i in range(count):
            pieces = [f"piece-{i};{padding}"] * len(data)
            send_intermediate_predict_response(pieces, context.request_ids, "part", 200, context)
            sent += 1
            if progress:
                with open(progress, "w") as f:
                    json.dump({"sent": sent, "state": "running"}, f)
            time.sleep(pause)
    except Exception as err:  # the client went away: stop computing
        state = f"stopped: {type(err).__name__}"
    if progress:
        with open(progress, "w") as f:
            json.dump({"sent": sent, "state": state, "cancelled": context.is_cancelled(0)}, f)
    return ["end"] * len(data)
