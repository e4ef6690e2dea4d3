"""``ts.torch_handler.request_envelope.json``: TensorFlow Serving's JSON rows, ``{"instances": [...]}``.

Each request is a JSON object whose ``instances`` are rows for the handler; the rows of every request of the batch
are joined into one list. A row ``{"b64": "..."}``, or a column of a row that is ``{"b64": "..."}``, is decoded to
``bytes``. Each request is answered with the JSON string ``{"predictions": [its share of the results]}``.
"""

from __future__ import annotations

import json
from base64 import b64decode
from typing import Any

from .base import BaseEnvelope, request_payload


def _decoded(value: Any) -> Any:
    """A ``{"b64": text}`` value as the bytes it encodes; anything else as it is."""
    if isinstance(value, dict) and len(value) == 1 and "b64" in value:
        return b64decode(value["b64"])
    return value


def _instances(row: Any) -> list[Any]:
    payload = request_payload(row)
    if payload is None:
        payload = row  # TorchServe falls back to the row itself
    if isinstance(payload, bytes | bytearray | str):  # a body whose content type was not application/json
        payload = json.loads(payload)
    instances = list(payload["instances"])
    for index, instance in enumerate(instances):
        if isinstance(instance, dict):
            decoded = _decoded(instance)
            instances[index] = decoded if decoded is not instance else {k: _decoded(v) for k, v in instance.items()}
    return instances


class JSONEnvelope(BaseEnvelope):
    """The instances of all requests in, ``{"predictions": [...]}`` per request out."""

    def __init__(self, handle_fn: Any) -> None:
        super().__init__(handle_fn)
        self._lengths: list[int] = []

    def parse_input(self, data: Any) -> list[Any]:
        per_request = [_instances(row) for row in data]
        self._lengths = [len(instances) for instances in per_request]
        return [instance for instances in per_request for instance in instances]

    def format_output(self, data: Any) -> list[str]:
        answers = []
        start = 0
        for length in self._lengths:
            answers.append(json.dumps({"predictions": list(data[start : start + length])}))
            start += length
        return answers
