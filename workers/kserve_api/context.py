"""The process-wide predictor configuration (KServe 0.21's ``kserve.context``).

``ModelServer`` sets it once when it starts; ``Model.predictor_config`` reads it. KServe keeps it in a
``contextvars.ContextVar``, which a thread or task that did not inherit the setter's context does not see; here it
is a plain module global, so every thread and task of the worker process sees the one value.
"""

from __future__ import annotations

from .predictor_config import PredictorConfig

__all__ = ["get_predictor_config", "set_predictor_config"]

_predictor_config: PredictorConfig | None = None


def set_predictor_config(config: PredictorConfig | None) -> None:
    """Set the predictor configuration of this process (None clears it)."""
    global _predictor_config
    _predictor_config = config


def get_predictor_config() -> PredictorConfig | None:
    """The predictor configuration set by :func:`set_predictor_config`, or None."""
    return _predictor_config
