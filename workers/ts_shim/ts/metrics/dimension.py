"""``ts.metrics.dimension``."""

from workers.backend_metrics import Dimension

__all__ = ["Dimension"]
