"""Uses the ``ts`` names a TorchServe handler uses besides streaming: the context class and its request and response
setters, ``ts.metrics`` (cached metrics, dimensions, a ``CachingMetric`` of its own) and ``PredictionException``.

Each answer says which ``ts`` package it got, so a test can tell the real TorchServe from our shim.
"""

import ts
from ts.context import Context
from ts.metrics.caching_metric import CachingMetric
from ts.metrics.dimension import Dimension
from ts.metrics.metric_cache_errors import MetricsCacheKeyError
from ts.metrics.metric_type_enum import MetricTypes
from ts.utils.util import PredictionException


def handle(data, context):
    if data is None:
        try:
            context.metrics.get_metric("TsRealCalls", MetricTypes.COUNTER)
        except MetricsCacheKeyError:
            context.metrics.add_metric_to_cache("TsRealCalls", "count", ["ModelName"], MetricTypes.COUNTER)
        return None
    if (data[0].get("body") or {}).get("op") == "fail":
        raise PredictionException("tsreal refuses", 418)
    context.metrics.get_metric("TsRealCalls", MetricTypes.COUNTER).add_or_update(1, [context.model_name])
    context.metrics.add_counter("TsRealRows", len(data), None, [Dimension("Origin", "tsreal")])
    CachingMetric("TsRealDirect", "ms", ["ModelName"], MetricTypes.GAUGE).add_or_update(5, [context.model_name])
    answers = []
    for idx in range(len(data)):
        context.set_response_status(201, "Made", idx)
        context.set_response_header(idx, "x-ts-version", ts.__version__)
        answers.append(
            {
                "ts_file": ts.__file__,
                "context_is_ts_context": isinstance(context, Context),
                "request_id": context.get_request_id(idx),
                "probe": context.get_request_header(idx, "x-probe"),
            }
        )
    return answers
