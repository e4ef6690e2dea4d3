"""Captum explanations for the built-in handlers. Captum is optional: without it explanations answer 501.

Every entry point imports captum when called, never at module import, so a worker serving predictions
needs neither captum nor its matplotlib dependency.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .ts_util import PredictionException

CAPTUM_MISSING = "Explanations need Captum: pip install captum"
N_STEPS = 15
"""Integration steps; TorchServe's vision handler uses 15, far cheaper than captum's default of 50."""


def captum_attr() -> ModuleType:
    """``captum.attr``, or a 501 ``PredictionException`` telling the operator what to install."""
    try:
        import captum.attr as attr
    except ImportError as exc:
        raise PredictionException(CAPTUM_MISSING, 501) from exc
    return attr


def integrated_gradients(model: Any) -> Any:
    return captum_attr().IntegratedGradients(model)


def layer_integrated_gradients(model: Any, layer: Any) -> Any:
    return captum_attr().LayerIntegratedGradients(model, layer)


def parse_target(value: Any) -> Any:
    """The request's ``target`` field: an int (also sent as text or bytes), anything else as given, default 0."""
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.lstrip("-").isdigit() else text
    return value or 0


def attribute_inputs(model: Any, inputs: Any, target: Any, ig: Any = None) -> list[Any]:
    """Integrated Gradients of ``model`` w.r.t. a batch of inputs: one nested list per input, of its shape."""
    if not inputs.is_floating_point():
        inputs = inputs.float()
    ig = ig if ig is not None else integrated_gradients(model)
    return ig.attribute(inputs, target=target, n_steps=N_STEPS).tolist()
