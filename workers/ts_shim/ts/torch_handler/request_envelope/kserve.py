"""``ts.torch_handler.request_envelope.kserve``: KServe's v1 protocol, ``{"instances": [...]}``.

The handler gets the ``instances`` of the batch's first request (a KServe transformer sends one request at a time)
and its whole result list is answered as one ``{"predictions": [...]}``, or ``{"explanations": [...]}`` when the
request header ``explain`` is ``"True"`` (``/explanations/...``, ``:explain``). That is one item for the batch, as in
TorchServe.
"""

from __future__ import annotations

import json
from typing import Any

from .base import BaseEnvelope, request_payload


class KServeEnvelope(BaseEnvelope):
    """``instances`` in, ``[{"predictions": results}]`` (or ``explanations``) out."""

    def parse_input(self, data: Any) -> Any:
        payload = request_payload(data[0])
        if isinstance(payload, bytes | bytearray | str):  # raw JSON bytes, as a KServe transformer sends them
            payload = json.loads(payload)
        return payload.get("instances")

    def format_output(self, data: Any) -> list[dict[str, Any]]:
        explain = self.context is not None and self.context.get_request_header(0, "explain") == "True"
        return [{"explanations" if explain else "predictions": data}]
