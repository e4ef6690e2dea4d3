"""Request statistics kept in every metrics mode: plain numbers that the request path adds to, read when asked.

In ``log`` mode a request's metrics are only lines in ``ts_metrics.log``; these numbers are what remains readable
in-process, whatever the mode: the ``/metrics`` families that count requests are rendered from them at scrape time
(:mod:`modelserver.metrics.version`), and :meth:`VersionStats.summary` answers Angel Serving's per-version metrics
summary (requests, successes, failures, total latency and a latency distribution) with current values.

The numbers are per model version, per label set of TorchServe's per-request families (``ts_inference_requests_total``,
``ts_inference_latency_microseconds``, ``ts_queue_latency_microseconds``: ``(model_name, model_version)``, where
``model_version`` is ``default`` for requests whose URL named no version, else that version):

* :class:`RequestStats`: one version's requests under one label set (admitted, answered);
* :class:`LatencySums`: the latency sums of one label set. The ``default`` label set of a model is shared by every
  version that answered unversioned requests (after its default version changed), as TorchServe's counter child is:
  its versions add into one float in request order, as the counters these sums replace did, so ``/metrics`` prints
  the same digits as before;
* :class:`VersionStats`: one version, both label sets together: failures, the successes' latency sum and
  histogram, and :meth:`~VersionStats.summary`.

:class:`~modelserver.metrics.version.VersionMetrics` updates the fields directly (a few int and float additions and
one ``bisect`` per request, no method call, no allocation); the readers here add things up when asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .config import DEFAULT_SUMMARY_BUCKETS_MS

# Latency buckets (seconds) of ``modelserver_request_latency_seconds``; the stats' histogram refines them.
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


@dataclass(frozen=True)
class LatencyLayout:
    """The buckets of a :class:`VersionStats` histogram, shared by every version of a server.

    ``bounds`` (seconds, ascending, each an inclusive upper bound: Prometheus' ``le``) are the union of
    :data:`LATENCY_BUCKETS` and the summary bounds, so both views of the histogram are exact sums of its buckets;
    a histogram has one count more than ``bounds``: the overflow. ``latency_cuts`` and ``summary_cuts`` are where
    those two sets of bounds sit in ``bounds``.
    """

    bounds: tuple[float, ...]
    latency_cuts: tuple[int, ...]
    summary_cuts: tuple[int, int, int]
    summary_ms: tuple[int, int, int]


def latency_layout(summary_ms: tuple[int, int, int] = DEFAULT_SUMMARY_BUCKETS_MS) -> LatencyLayout:
    """The layout for these summary bounds (milliseconds, strictly ascending, positive)."""
    if not 0 < summary_ms[0] < summary_ms[1] < summary_ms[2]:
        raise ValueError(f"summary bounds must be three ascending positive milliseconds, not {summary_ms}")
    summary_seconds = tuple(bound / 1000 for bound in summary_ms)
    bounds = tuple(sorted({*LATENCY_BUCKETS, *summary_seconds}))
    first, second, third = (bounds.index(bound) for bound in summary_seconds)
    return LatencyLayout(bounds, tuple(bounds.index(b) for b in LATENCY_BUCKETS), (first, second, third), summary_ms)


DEFAULT_LAYOUT: Final = latency_layout()


def regroup(counts: Sequence[int], cuts: Sequence[int]) -> list[int]:
    """Per-bucket counts merged into coarser buckets whose bounds are ``bounds[cut]`` for each cut, plus the
    overflow: ``len(cuts) + 1`` counts."""
    merged, start = [], 0
    for cut in cuts:
        merged.append(sum(counts[start : cut + 1]))
        start = cut + 1
    merged.append(sum(counts[start:]))
    return merged


class LatencySums:
    """The latency sums of one label set, over its requests that got their final result (whatever the status):
    microseconds from admission to the final result (``latency_us``) and to the dispatch to a worker
    (``queue_us``)."""

    __slots__ = ("latency_us", "queue_us")

    def __init__(self) -> None:
        self.latency_us = 0.0
        self.queue_us = 0.0


class RequestStats:
    """One model version's requests under one label set: ``requests`` admitted (before queueing, so a 503 for a
    full queue counts), ``answered`` with their final result (whatever its status); ``sums``: the label set's
    latency sums, which it may share with other versions of the model."""

    __slots__ = ("answered", "requests", "sums")

    def __init__(self, sums: LatencySums | None = None) -> None:
        self.requests = 0
        self.answered = 0
        self.sums = sums if sums is not None else LatencySums()


@dataclass(frozen=True)
class Summary:
    """One model version's requests as Angel Serving's metrics summary reports them, both label sets together.

    ``failed`` counts final results with status >= 400 and requests that ended with an error (no result);
    ``total_latency_ms`` and ``distribution`` are over succeeded requests only (status < 400): admission to final
    result, and the counts in ``[0, b0]``, ``(b0, b1]``, ``(b1, b2]`` and ``> b2`` milliseconds for the configured
    ``count_distribution_bucket`` ``b0,b1,b2``.
    """

    requests: int
    succeeded: int
    failed: int
    total_latency_ms: float
    distribution: tuple[int, int, int, int]

    @property
    def pending(self) -> int:
        """Admitted requests with neither a final result nor an error yet (queued, running, or abandoned)."""
        return self.requests - self.succeeded - self.failed


class VersionStats:
    """One model version's requests, both label sets together.

    ``default`` and ``explicit`` are its :class:`RequestStats` (URL without, with the version); ``failed``: final
    results with status >= 400 and requests that ended with an error (no result). Over the succeeded ones (final
    status < 400): ``counts``, a histogram over ``layout.bounds`` (not cumulative; the last count is the overflow),
    whose total is ``succeeded``, and ``success_seconds``, admission to final result added in request order.
    """

    __slots__ = ("bounds", "counts", "default", "explicit", "failed", "layout", "success_seconds")

    def __init__(self, default: RequestStats, explicit: RequestStats, layout: LatencyLayout = DEFAULT_LAYOUT) -> None:
        self.default = default
        self.explicit = explicit
        self.layout = layout
        self.bounds = layout.bounds  # read per request: one attribute instead of two
        self.counts = [0] * (len(layout.bounds) + 1)
        self.failed = 0
        self.success_seconds = 0.0

    @property
    def requests(self) -> int:
        return self.default.requests + self.explicit.requests

    @property
    def succeeded(self) -> int:
        """Every success is in the histogram: no separate count to add to per request."""
        return sum(self.counts)

    def summary(self) -> Summary:
        """The numbers as they are now."""
        first, second, third, over = regroup(self.counts, self.layout.summary_cuts)
        return Summary(
            requests=self.requests,
            succeeded=first + second + third + over,
            failed=self.failed,
            total_latency_ms=self.success_seconds * 1000.0,
            distribution=(first, second, third, over),
        )

    def latency_histogram(self) -> list[int]:
        """The histogram in :data:`LATENCY_BUCKETS` (per bucket, plus the overflow): exact, as those bounds are
        among the histogram's."""
        return regroup(self.counts, self.layout.latency_cuts)
