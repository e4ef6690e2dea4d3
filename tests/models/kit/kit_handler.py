"""A test handler whose behaviour each request chooses with a JSON body ``{"op": ...}``."""

import os
import time

from ts.handler_utils.utils import send_intermediate_predict_response
from ts.utils.util import PredictionException


def _op(row):
    body = row.get("body", row.get("data"))
    return body if isinstance(body, dict) else {"op": "echo", "value": body}


def handle(data, context):
    if data is None:
        return None
    reqs = [_op(row) for row in data]
    first = reqs[0]
    op = first.get("op")
    if op == "raise":
        raise ValueError("boom")
    if op == "predict_exception":
        raise PredictionException(first.get("message", "custom failure"), first.get("code", 599))
    if op == "memory":
        raise MemoryError("no memory")
    if op == "wrong_count":
        return [1] * (len(reqs) + 1)
    if op == "not_a_list":
        return {"oops": True}
    if op == "unserialisable":
        return [object() for _ in reqs]
    if op == "sleep":
        time.sleep(first.get("seconds", 1))
    if op == "exit":
        os._exit(3)
    if op == "stream":
        for _ in range(3):
            send_intermediate_predict_response(["hello"] * len(reqs), context.request_ids, "Intermediate", 200, context)
            time.sleep(first.get("pause", 0))
        return ["hello world "] * len(reqs)
    replies = []
    for idx, req in enumerate(reqs):
        if req.get("status"):
            context.set_response_status(req["status"], req.get("phrase", ""), idx)
        for key, value in req.get("headers", {}).items():
            context.set_response_header(idx, key, value)
        if req.get("content_type"):
            context.set_response_content_type(idx, req["content_type"])
        replies.append(
            {
                "op": req.get("op"),
                "pid": os.getpid(),
                "batch": len(reqs),
                "url_path": context.get_request_header(idx, "url_path"),
                "explain": context.get_request_header(idx, "explain"),
                "header": context.get_request_header(idx, "X-Test"),
                "keys": sorted(data[idx].keys()),
                "types": {k: type(v).__name__ for k, v in data[idx].items()},
                "gpu_id": context.system_properties.get("gpu_id"),
                "batch_size": context.system_properties.get("batch_size"),
                "model_dir_ok": os.path.isdir(context.system_properties.get("model_dir", "")),
            }
        )
    return replies
