"""``@timed``: TorchServe's opt-in per-stage timing (``ts.handler_utils.timer.timed``).

When the model's ``model-config.yaml`` has ``handler: {profile: true}``, each decorated stage emits a
``ts_handler_<stage>`` time metric in ms; otherwise the decorator only costs a dict lookup.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def timed(func: F) -> F:
    """Time ``func`` (a handler method) when profiling is switched on in the model's YAML config."""

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        context = getattr(self, "context", None)
        if context is None or not _profiling(context):
            return func(self, *args, **kwargs)
        start = time.perf_counter()
        result = func(self, *args, **kwargs)
        _synchronize_cuda()
        context.metrics.add_time("ts_handler_" + func.__name__, (time.perf_counter() - start) * 1000)
        return result

    return wrapper  # type: ignore[return-value]


def _profiling(context: Any) -> bool:
    handler_config = (getattr(context, "model_yaml_config", None) or {}).get("handler")
    return isinstance(handler_config, dict) and bool(handler_config.get("profile"))


def _synchronize_cuda() -> None:
    """GPU work is asynchronous: wait for it, or the stage would look free (TorchServe uses CUDA events)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
