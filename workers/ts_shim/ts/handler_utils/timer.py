"""``ts.handler_utils.timer``: ``@timed``, TorchServe's opt-in per-stage timing metric."""

from workers.handlers.timing import timed

__all__ = ["timed"]
