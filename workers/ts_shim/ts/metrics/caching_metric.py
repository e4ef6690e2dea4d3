"""``ts.metrics.caching_metric``: a metric that prints a ``[METRICS]`` line per ``add_or_update``."""

from workers.backend_metrics import CachingMetric

__all__ = ["CachingMetric"]
