"""``ts.metrics.metric_cache_yaml_impl``: a metrics cache that declares the metrics of a YAML file."""

from workers.backend_metrics import MetricsCacheYamlImpl

__all__ = ["MetricsCacheYamlImpl"]
