"""A handler's returned element as the bytes of its answer, as TorchServe's worker encodes it, and the failures
that answer a whole batch.

Used by the runner (:mod:`.handler_runner`) for each final answer and by TorchServe's streaming helpers
(:mod:`.streaming`) for the pieces a handler writes itself.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Any, Final

from .json_output import dumps_indent2_bytes

logger = logging.getLogger("workers.handler_runner")  # the runner's name, as the log has always shown it


class BatchError(Exception):
    """A failure that answers every job of the batch with one status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OutputEncodingError(BatchError):
    """A returned element is neither str, bytes, a Tensor nor JSON-serialisable."""

    def __init__(self) -> None:
        super().__init__(503, "Unsupported model output data type.")


_BINARY_OUTPUTS: Final = (bytes, bytearray)


def encode_output(value: Any) -> bytes | bytearray:
    """bytes as they are, str as UTF-8, a Tensor via ``torch.save``, anything else as ``json.dumps(x, indent=2)``."""
    try:
        return _encode(value)
    except (TypeError, ValueError) as exc:
        logger.warning("Unable to serialize model output.", exc_info=True)
        error = OutputEncodingError()
        error.__cause__ = exc  # mypyc compiles `raise ... from` without the cause
        raise error from exc


def _encode(value: Any) -> bytes | bytearray:
    kind = type(value)
    if kind is dict or kind is list:  # the usual prediction: no tensor, no text (its subclasses take the long way)
        return dumps_indent2_bytes(value)
    if isinstance(value, _BINARY_OUTPUTS):
        return value  # msgpack packs either as bin: no copy here
    if isinstance(value, str):  # a subclass's own encode runs (compiled, str.encode would be called directly)
        text: Any = value
        return text.encode("utf-8")
    torch = sys.modules.get("torch")  # a handler returning a Tensor has imported torch; we never do
    if torch is not None and isinstance(value, torch.Tensor):
        buffer = io.BytesIO()
        torch.save(value, buffer)
        return buffer.getvalue()
    return dumps_indent2_bytes(value)
