"""The prometheus-client objects a scrape builds: imported on the first scrape, not at start-up.

prometheus-client's package imports its HTTP exposition (``http.server``, ``wsgiref``, ``urllib``) whatever part of
it is asked for: about 15 ms of a start that is meant to answer within 0.3 s. The request path records into this
server's own series (:mod:`.series`); only a scrape, or the merge of several frontends' scrapes, needs these.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = [
    "CollectorRegistry",
    "GaugeMetricFamily",
    "HistogramMetricFamily",
    "Metric",
    "Sample",
    "TorchServeCounter",
    "floatToGoString",
]


class TorchServeCounter(CounterMetricFamily):
    """A counter family that remembers the name it is exposed under.

    prometheus-client names counter samples ``<name>_total`` (``Requests2XX_total``); TorchServe's Java client
    printed the registered name itself (``Requests2XX``, ``ts_inference_requests_total``). ``render`` uses
    ``exposed_name`` for both the ``# HELP``/``# TYPE`` lines and the samples.
    """

    def __init__(self, name: str, documentation: str, labels: Iterable[str], torchserve: bool = True) -> None:
        super().__init__(name, documentation, labels=list(labels))
        self.exposed_name = name if torchserve else self.name + "_total"
