"""What one model version updates per request and per batch: :class:`VersionMetrics`.

The request path calls :meth:`VersionMetrics.admit` (queued), :meth:`~VersionMetrics.dispatched` and
:meth:`~VersionMetrics.sent` (per batch), then :meth:`~VersionMetrics.finished` (the final result and its status)
or :meth:`~VersionMetrics.failed` (an error, no result). Each call updates the statistics of
:mod:`modelserver.metrics.stats` (every mode) and whatever series the mode records (log lines, prometheus values),
all looked up once when the version was registered.

The per-request ``ts_*`` families and ``modelserver_request_latency_seconds{stage="total"}`` are not updated per
request in ``prometheus``/``legacy`` mode: their children here (:class:`RequestsCounter`, :class:`LatencyCounter`,
:class:`QueueLatencyCounter` per :class:`LabelSet`, :class:`TotalLatency` per version) read the statistics when
``/metrics`` is scraped, printing what separate counters and a histogram would have held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Final

from .series import NULL_SERIES, Family, Histogram, Series, bucket_of, cumulative_buckets
from .stats import DEFAULT_LAYOUT, LATENCY_BUCKETS, LatencyLayout, LatencySums, RequestStats, Summary, VersionStats

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..types import Job

# The stages of modelserver_request_latency_seconds, in the order their children are made.
STAGES: Final[tuple[str, ...]] = ("queue", "worker", "total")


class RequestSeries(RequestStats):
    """One model version's requests under one label set of the ``ts_*`` families (its statistics), and in ``log``
    mode the label set's series that write the lines: ``requests_line`` per admission, ``result_lines`` (latency,
    queue latency) per final result; None otherwise, so nothing is written. A job carries it from admission
    (``job.metrics``)."""

    __slots__ = ("requests_line", "result_lines")

    def __init__(
        self,
        sums: LatencySums | None = None,
        requests_line: Series | None = None,
        result_lines: tuple[Series, Series] | None = None,
    ) -> None:
        super().__init__(sums)
        self.requests_line = requests_line
        self.result_lines = result_lines


class LabelSet:
    """One label set ``(model_name, model_version)`` of the ``ts_*`` families: the latency sums its versions add
    to, each version's :class:`RequestSeries` under it (several for a model's ``default`` label set when its default
    version changed), and the series of its log lines (None outside ``log`` mode)."""

    __slots__ = ("members", "requests_line", "result_lines", "sums")

    def __init__(self, requests_line: Series | None = None, result_lines: tuple[Series, Series] | None = None) -> None:
        self.sums = LatencySums()
        self.members: list[RequestSeries] = []
        self.requests_line = requests_line
        self.result_lines = result_lines

    def member(self) -> RequestSeries:
        """A model version's requests under this label set: a new member."""
        series = RequestSeries(self.sums, self.requests_line, self.result_lines)
        self.members.append(series)
        return series

    def requests(self) -> int:
        return sum(member.requests for member in self.members)

    def answered(self) -> int:
        return sum(member.answered for member in self.members)


class RequestsCounter(Series):
    """The ``ts_inference_requests_total`` child of a label set, read at scrape time; shown once a request was
    admitted (TorchServe shows a child once it has been updated)."""

    __slots__ = ("_label_set",)

    def __init__(self, label_set: LabelSet) -> None:
        self._label_set = label_set

    @property
    def updated(self) -> bool:
        return self._label_set.requests() > 0

    def export(self, family: Metric, values: Sequence[str]) -> None:
        family.add_metric(values, float(self._label_set.requests()))  # type: ignore[attr-defined]


class LatencyCounter(RequestsCounter):
    """The ``ts_inference_latency_microseconds`` child of a label set, read at scrape time; shown once a request
    got its final result."""

    __slots__ = ()

    @property
    def updated(self) -> bool:
        return self._label_set.answered() > 0

    def export(self, family: Metric, values: Sequence[str]) -> None:
        family.add_metric(values, self._label_set.sums.latency_us)  # type: ignore[attr-defined]


class QueueLatencyCounter(LatencyCounter):
    """The ``ts_queue_latency_microseconds`` child of a label set, read at scrape time."""

    __slots__ = ()

    def export(self, family: Metric, values: Sequence[str]) -> None:
        family.add_metric(values, self._label_set.sums.queue_us)  # type: ignore[attr-defined]


def request_counters(label_set: LabelSet) -> tuple[Series, Series, Series]:
    """The children of one label set in the three ``ts_*`` families, in the order of ``REQUEST_FAMILIES``."""
    return RequestsCounter(label_set), LatencyCounter(label_set), QueueLatencyCounter(label_set)


class TotalLatency(Series):
    """``modelserver_request_latency_seconds{stage="total"}`` of one version, read from its :class:`VersionStats`:
    the succeeded requests' histogram in :data:`LATENCY_BUCKETS`, and their latency sum."""

    __slots__ = ("_stats",)

    def __init__(self, stats: VersionStats) -> None:
        self._stats = stats

    @property
    def updated(self) -> bool:
        return self._stats.succeeded > 0

    def export(self, family: Metric, values: Sequence[str]) -> None:
        buckets = cumulative_buckets(LATENCY_BUCKETS, self._stats.latency_histogram())
        family.add_metric(values, buckets, self._stats.success_seconds)  # type: ignore[attr-defined]


class VersionMetrics:
    """The statistics and series one model version updates, looked up once when the version is registered.

    Times come from ``time.perf_counter``: a job is stamped when admitted (``started_at``) and when its batch goes
    to a worker (``dispatched_at``); the rest is computed when its final result arrives. Optional series are None
    when the mode does not record them, so the request path skips them with one test.
    """

    __slots__ = (
        "_batch_size",
        "_dispatch_started",
        "_last_batch",
        "_load_time",
        "_prediction_time",
        "_queue_time",
        "_stages",
        "_worker_thread_time",
        "backend_line",
        "default",
        "explicit",
        "hostname",
        "restarts",
        "stats",
        "streams",
    )

    def __init__(
        self,
        default: RequestSeries | None = None,
        explicit: RequestSeries | None = None,
        *,
        layout: LatencyLayout = DEFAULT_LAYOUT,
        hostname: str = "",
        queue_time: Series = NULL_SERIES,
        worker_thread_time: Series = NULL_SERIES,
        prediction_time: Series = NULL_SERIES,
        load_time: Family | None = None,
        stages: tuple[Series, Series] | None = None,
        batch_size: Series | None = None,
        restarts: Series = NULL_SERIES,
        backend_line: Callable[[str], None] | None = None,
    ) -> None:
        self.default = default if default is not None else RequestSeries()
        """Requests whose URL named no version (TorchServe's ``model_version="default"``)."""
        self.explicit = explicit if explicit is not None else RequestSeries()
        """Requests whose URL named this version."""
        self.stats = VersionStats(self.default, self.explicit, layout)
        """This version's statistics, every label set together (:meth:`summary`)."""
        self.hostname = hostname
        self.restarts = restarts
        self.backend_line = backend_line
        """Where the model's workers' ``[METRICS]`` lines go (None: to the model log like other output)."""
        self.streams = 0
        self._queue_time = None if queue_time is NULL_SERIES else queue_time
        """TorchServe's ``QueueTime``, None where it is not recorded (Prometheus mode): no call per request then."""
        self._worker_thread_time = worker_thread_time
        self._prediction_time = prediction_time
        self._load_time = load_time
        self._stages: tuple[Histogram, Histogram] | None = None
        if stages is not None and type(stages[0]) is Histogram and type(stages[1]) is Histogram:
            self._stages = (stages[0], stages[1])  # type: ignore[assignment]
        """The queue and worker stages of ``modelserver_request_latency_seconds`` (Prometheus mode), updated in place
        by :meth:`finished` (a call per stage per request cost more than the update)."""
        self._batch_size = batch_size
        self._dispatch_started = 0.0
        self._last_batch = -1.0

    def admit(self, job: Job, explicit_version: bool) -> None:
        """An inference request is about to be queued: count it (503s included) and stamp it."""
        series = self.explicit if explicit_version else self.default
        series.requests += 1
        line = series.requests_line
        if line is not None:
            line.update(1.0)
        job.metrics = series
        job.started_at = perf_counter()

    def dispatched(self, batch: list[Job]) -> None:
        """A batch left the queue for a worker."""
        now = self._dispatch_started = perf_counter()
        for job in batch:
            job.dispatched_at = now
        if self._batch_size is not None:
            self._batch_size.update(float(len(batch)))

    def sent(self) -> None:
        """The batch just dispatched is on the worker's socket: TorchServe's ``WorkerThreadTime`` is the frontend's
        own time on a batch, without the wait for the backend (whole milliseconds, as TorchServe's clock gives)."""
        self._worker_thread_time.update((perf_counter() - self._dispatch_started) * 1000.0 // 1.0)

    def finished(self, job: Job, status: int) -> None:
        """A job's final result (a stream's last piece) arrived with this HTTP status; < 400 is a success.

        TorchServe's latency sums, ``QueueTime`` and ``PredictionTime`` count every final result; the statistics'
        successes and this server's stage histograms only those with status < 400. A job that was never admitted
        (a customized describe) is ignored.
        """
        series: RequestSeries | None = job.metrics  # declared: compiled, its fields are then read as fields
        if series is None:
            return
        now = perf_counter()
        started, dispatched = job.started_at, job.dispatched_at
        total = now - started
        queued = dispatched - started
        latency_us = (total * 1e9 + 0.5) // 1.0 / 1000.0  # TorchServe's nanoseconds / 1000.0: at most 3 decimals
        queue_us = (queued * 1e9 + 0.5) // 1.0 / 1000.0  # (float steps: round() costs more)
        series.answered += 1
        sums = series.sums
        sums.latency_us += latency_us
        sums.queue_us += queue_us
        stats = self.stats
        if status < 400:  # a success: counted in the histogram (its total is the number of successes)
            stats.success_seconds += total
            stats.counts[bucket_of(stats.bounds, total)] += 1  # a bound is inclusive ("le")
            stages = self._stages
            if stages is not None:  # Histogram.update's two lines for each stage
                queue, worker = stages
                worked = now - dispatched
                queue.counts[bucket_of(queue.bounds, queued)] += 1
                queue.sum += queued
                worker.counts[bucket_of(worker.bounds, worked)] += 1
                worker.sum += worked
        else:
            stats.failed += 1
        lines = series.result_lines
        if lines is not None:
            lines[0].update(latency_us)
            lines[1].update(queue_us)
        queue_time = self._queue_time
        if queue_time is not None:
            queue_time.update(queued * 1000.0 // 1.0)  # whole milliseconds, as TorchServe's QueueTime
        if dispatched != self._last_batch:  # once per batch: every job of a batch shares its dispatch time
            self._last_batch = dispatched
            self._prediction_time.update(round((now - dispatched) * 100_000.0) / 100.0)  # the backend's round(ms, 2)

    def failed(self, job: Job) -> None:
        """A job ended with an error and no result (refused, worker died, timed out...): a failure in the
        statistics; no latency is recorded. A job that was never admitted is ignored."""
        if job.metrics is not None:
            self.stats.failed += 1

    def done(self, job: Job) -> None:
        """The former name of ``finished(job, 200)``, kept while callers move to :meth:`finished`."""
        self.finished(job, 200)

    def summary(self) -> Summary:
        """This version's statistics now (see :class:`~modelserver.metrics.stats.Summary`)."""
        return self.stats.summary()

    def worker_loaded(self, worker_name: str, seconds: float) -> None:
        """``WorkerLoadTime``: from starting the worker process to its model being loaded."""
        if self._load_time is not None:
            self._load_time.child(worker_name, "Host", self.hostname).update(float(round(seconds * 1e9) // 1_000_000))

    def worker_restarted(self) -> None:
        self.restarts.update(1.0)


NULL_VERSION_METRICS: Final = VersionMetrics()
"""What a model version updates until the server attaches its real metrics (and in tests without a server)."""
