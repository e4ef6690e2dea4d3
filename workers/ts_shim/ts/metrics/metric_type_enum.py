"""``ts.metrics.metric_type_enum``."""

from workers.backend_metrics import MetricTypes

__all__ = ["MetricTypes"]
