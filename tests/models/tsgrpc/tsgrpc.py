"""A TorchServe handler for the gRPC API's tests. Its ``spec`` input (JSON bytes: gRPC inputs have no content type)
asks for ``count`` intermediate pieces (``piece-0``, ...) before the answer, or a failure; the answer names the
inputs the handler got and their types, and the sequence's id (and whether it starts) when there is one."""

import json

from ts.handler_utils.utils import send_intermediate_predict_response


def handle(data, context):
    if data is None:
        return None
    row = data[0]
    raw = row.get("spec")
    spec = json.loads(bytes(raw)) if raw else {}
    if spec.get("fail"):
        raise ValueError("asked to fail")
    for i in range(spec.get("count", 0)):
        send_intermediate_predict_response([f"piece-{i}"], context.request_ids, "part", 200, context)
    inputs = {name: type(value).__name__ for name, value in row.items()}
    answer = {"inputs": inputs, "spec": spec}
    sequence = context.get_request_header(0, "ts_request_sequence_id")
    if sequence:  # StreamPredictions2 names the request's sequence
        answer["sequence"] = sequence
        answer["start"] = context.get_request_header(0, "ts_request_sequence_start")
    return [json.dumps(answer, sort_keys=True)]
