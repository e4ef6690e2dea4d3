"""``ts.torch_handler.request_envelope.base``: the base class of request envelopes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


def request_payload(row: Any) -> Any:
    """A request row's ``data`` input, else its ``body`` input (the row of one HTTP request, ``{input name: value}``).

    TorchServe writes ``row.get("data") or row.get("body")``; here an empty but present ``data`` still counts."""
    if not isinstance(row, dict):
        return None
    value = row.get("data")
    return row.get("body") if value is None else value


class BaseEnvelope(ABC):
    """Wraps ``handle_fn(data, context)``: :meth:`parse_input` before it (when there is data), :meth:`format_output`
    after it (when there are results). The context of the call being served is ``self.context``."""

    def __init__(self, handle_fn: Any) -> None:
        self._handle_fn = handle_fn
        self.context: Any = None

    def handle(self, data: Any, context: Any) -> Any:
        self.context = context
        if data:
            data = self.parse_input(data)
        results = self._handle_fn(data, context)
        if results:
            results = self.format_output(results)
        return results

    @abstractmethod
    def parse_input(self, data: Any) -> Any:
        """The batch's request rows -> the handler's ``data``."""

    @abstractmethod
    def format_output(self, data: Any) -> Any:
        """The handler's results -> the list of responses, one per request."""
