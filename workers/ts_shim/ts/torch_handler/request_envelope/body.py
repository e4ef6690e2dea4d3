"""``ts.torch_handler.request_envelope.body``: the handler gets each request's payload itself."""

from __future__ import annotations

from typing import Any

from .base import BaseEnvelope, request_payload


class BodyEnvelope(BaseEnvelope):
    """``data`` becomes the list of each request's ``data`` (or ``body``) input; results pass through unchanged."""

    def parse_input(self, data: Any) -> list[Any]:
        return [request_payload(row) for row in data]

    def format_output(self, data: Any) -> Any:
        return data
