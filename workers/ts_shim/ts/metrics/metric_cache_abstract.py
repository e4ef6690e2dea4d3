"""``ts.metrics.metric_cache_abstract``: the API of ``context.metrics``."""

from workers.backend_metrics import MetricCacheAbstract

__all__ = ["MetricCacheAbstract"]
