"""``ts.torch_handler.base_handler``: the default handler TorchServe handlers subclass."""

from __future__ import annotations

from typing import Any

from workers.handlers import ort_session
from workers.handlers.base import BaseHandler

__all__ = ["BaseHandler", "setup_ort_session"]


def setup_ort_session(model_pt_path: str, map_location: str) -> Any:
    """TorchServe's helper for handlers that open an ONNX model themselves."""
    return ort_session.create_session(model_pt_path, map_location)


def __getattr__(name: str) -> Any:
    """``ONNX_AVAILABLE`` is computed on access, so importing this module never imports onnxruntime."""
    if name == "ONNX_AVAILABLE":
        return ort_session.onnxruntime_available()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
