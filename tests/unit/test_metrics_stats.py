"""The request statistics kept in every metrics mode (``modelserver.metrics.stats``), the per-version summaries, and
a regression test: the ``/metrics`` text and metric log lines for a fixed sequence of events are byte for byte
those of the code before the statistics (the literals below were produced by running that code on the same
events)."""

from __future__ import annotations

import bisect
import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelserver.metrics.version as version_module
from modelserver.config import CliOptions, load_config
from modelserver.metrics import (
    DEFAULT_SUMMARY_BUCKETS_MS,
    LATENCY_BUCKETS,
    MetricLog,
    MetricsSettings,
    ServerMetrics,
    Summary,
    VersionMetrics,
    latency_layout,
    parse_summary_buckets,
)
from modelserver.metrics.series import bucket_of
from modelserver.types import Job
from tests.unit.metrics_jobs import new_job

HOST = "host1"


class Clock:
    """Stands in for ``perf_counter`` in :mod:`modelserver.metrics.version`: ``at(t)`` sets the time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def at(self, now: float) -> None:
        self.now = now


@contextlib.contextmanager
def fake_clock() -> Iterator[Clock]:
    clock = Clock()
    real = version_module.perf_counter
    version_module.perf_counter = clock  # type: ignore[assignment]
    try:
        yield clock
    finally:
        version_module.perf_counter = real


def server(mode: str = "prometheus", **settings: Any) -> ServerMetrics:
    logs = {"ts_log": MetricLog(memory=[]), "model_log": MetricLog(memory=[])}
    return ServerMetrics(MetricsSettings(mode=mode, **settings), hostname=HOST, **logs)


def job() -> Job:
    return new_job()


def run_request(clock: Clock, version: VersionMetrics, explicit: bool, outcome: int | str, latency_ms: float) -> Job:
    """Admitted at 0, dispatched halfway, then a final result with status ``outcome``, or ``"error"``, or
    ``"pending"`` (nothing yet)."""
    item = job()
    clock.at(0.0)
    version.admit(item, explicit)
    if outcome == "pending":
        return item
    if outcome == "error":
        version.failed(item)
        return item
    clock.at(latency_ms / 2000)
    version.dispatched([item])
    version.sent()
    clock.at(latency_ms / 1000)
    version.finished(item, int(outcome))
    return item


def sample(text: str, name: str, **labels: str) -> str | None:
    """The value printed for the sample with this name and these labels (in TorchServe's label order)."""
    label_text = "".join(f'{k}="{v}",' for k, v in labels.items())
    match = re.search(f"^{re.escape(name)}{{{re.escape(label_text)}}} (\\S+)$", text, re.M)
    return match.group(1) if match else None


# -- the histogram's layout ---------------------------------------------------------------------------------------


def test_layout_is_the_union_of_the_latency_buckets_and_the_summary_bounds() -> None:
    layout = latency_layout((5, 10, 15))
    assert layout.bounds == tuple(sorted({*LATENCY_BUCKETS, 0.015}))  # 5 and 10 ms are latency buckets already
    assert [layout.bounds[i] for i in layout.summary_cuts] == [0.005, 0.01, 0.015]
    assert [layout.bounds[i] for i in layout.latency_cuts] == list(LATENCY_BUCKETS)
    odd = latency_layout((1, 7, 40000))
    assert [odd.bounds[i] for i in odd.summary_cuts] == [0.001, 0.007, 40.0]  # beyond the last latency bucket
    with pytest.raises(ValueError):
        latency_layout((10, 5, 15))


# -- summaries ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("latency_ms", "bucket"),
    [(0.0, 0), (5.0, 0), (5.001, 1), (10.0, 1), (10.0001, 2), (15.0, 2), (15.001, 3), (60000.0, 3)],
)
def test_a_bound_is_inclusive(latency_ms: float, bucket: int) -> None:
    metrics = server("log")
    version = metrics.for_version("m", "1.0")
    with fake_clock() as clock:
        run_request(clock, version, False, 200, latency_ms)
    summary = version.summary()
    assert summary.distribution == tuple(1 if index == bucket else 0 for index in range(4))
    assert (summary.requests, summary.succeeded, summary.failed) == (1, 1, 0)
    assert summary.total_latency_ms == pytest.approx(latency_ms)


def test_configured_summary_bounds() -> None:
    version = server("log", summary_buckets_ms=(1, 2, 3)).for_version("m", "1.0")
    with fake_clock() as clock:
        for latency_ms in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 700.0):
            run_request(clock, version, False, 200, latency_ms)
    assert version.summary().distribution == (2, 2, 2, 2)


def test_outcomes_are_counted_per_version() -> None:
    metrics = server("prometheus")
    first, second = metrics.for_version("m", "1.0"), metrics.for_version("m", "2.0")
    untouched = metrics.for_version("n", "1")
    with fake_clock() as clock:
        run_request(clock, first, False, 200, 4.0)
        run_request(clock, first, True, 204, 12.0)
        run_request(clock, first, False, 404, 1.0)  # a result with an error status: failed
        run_request(clock, first, False, "error", 0.0)  # no result (refused, worker died): failed
        run_request(clock, first, True, "pending", 0.0)
        run_request(clock, second, False, 503, 2.0)
        metrics.for_version("m", "1.0").finished(job(), 200)  # never admitted (a describe): ignored
        first.failed(job())
    assert metrics.summaries() == [
        ("m", "1.0", Summary(requests=5, succeeded=2, failed=2, total_latency_ms=16.0, distribution=(1, 0, 1, 0))),
        ("m", "2.0", Summary(requests=1, succeeded=0, failed=1, total_latency_ms=0.0, distribution=(0, 0, 0, 0))),
        ("n", "1", Summary(requests=0, succeeded=0, failed=0, total_latency_ms=0.0, distribution=(0, 0, 0, 0))),
    ]
    assert first.summary().pending == 1 and untouched.summary().pending == 0
    assert first.stats.failed == 2 and first.stats.succeeded == 2


def test_prometheus_children_follow_the_statistics() -> None:
    """TorchServe's latency sums count every final result, this server's histograms only successes; a label set
    shows its latency sums once it has a final result."""
    metrics = server("prometheus")
    version = metrics.for_version("m", "1.0")
    with fake_clock() as clock:
        run_request(clock, version, True, "error", 0.0)
        text = metrics.exposition()
        assert sample(text, "ts_inference_requests_total", model_name="m", model_version="1.0", hostname=HOST) == "1.0"
        assert "ts_inference_latency_microseconds{" not in text and "ts_queue_latency_microseconds{" not in text
        run_request(clock, version, True, 404, 2.0)
        run_request(clock, version, True, 200, 4.0)
    text = metrics.exposition()
    labels = {"model_name": "m", "model_version": "1.0", "hostname": HOST}
    assert sample(text, "ts_inference_requests_total", **labels) == "3.0"
    assert sample(text, "ts_inference_latency_microseconds", **labels) == "6000.0"
    assert sample(text, "ts_queue_latency_microseconds", **labels) == "3000.0"
    total = {"model_name": "m", "model_version": "1.0", "stage": "total"}
    assert sample(text, "modelserver_request_latency_seconds_count", **total) == "1.0"
    assert sample(text, "modelserver_request_latency_seconds_sum", **total) == "0.004"
    assert sample(text, "modelserver_request_latency_seconds_bucket", **total, le="0.0025") == "0.0"
    assert sample(text, "modelserver_request_latency_seconds_bucket", **total, le="0.005") == "1.0"
    for stage in ("queue", "worker"):  # the success's 4 ms, dispatched halfway: 2 ms in each stage
        labels = {"model_name": "m", "model_version": "1.0", "stage": stage}
        assert sample(text, "modelserver_request_latency_seconds_count", **labels) == "1.0"
        assert sample(text, "modelserver_request_latency_seconds_sum", **labels) == "0.002"
        assert sample(text, "modelserver_request_latency_seconds_bucket", **labels, le="0.001") == "0.0"
        assert sample(text, "modelserver_request_latency_seconds_bucket", **labels, le="0.0025") == "1.0"


def test_the_default_label_set_is_shared_by_the_versions_of_a_model() -> None:
    """After a default version change both versions answered unversioned requests: one TorchServe child (as
    before), but each version's summary counts its own requests."""
    metrics = server("prometheus")
    first, second = metrics.for_version("m", "1.0"), metrics.for_version("m", "2.0")
    assert first.default.sums is second.default.sums and first.explicit.sums is not second.explicit.sums
    with fake_clock() as clock:
        run_request(clock, first, False, 200, 1.0)
        run_request(clock, second, False, 200, 2.0)
        run_request(clock, second, False, "error", 0.0)
    text = metrics.exposition()
    labels = {"model_name": "m", "model_version": "default", "hostname": HOST}
    assert sample(text, "ts_inference_requests_total", **labels) == "3.0"
    assert sample(text, "ts_inference_latency_microseconds", **labels) == "3000.0"
    assert [(version, summary.requests, summary.succeeded) for _, version, summary in metrics.summaries()] == [
        ("1.0", 1, 1),
        ("2.0", 2, 1),
    ]


def test_a_version_named_default() -> None:
    """Its explicit label set is TorchServe's ``default`` one: one child counting both kinds of request."""
    metrics = server("prometheus")
    version = metrics.for_version("m", "default")
    with fake_clock() as clock:
        run_request(clock, version, False, 200, 1.0)
        run_request(clock, version, True, 200, 1.0)
    text = metrics.exposition()
    assert sample(text, "ts_inference_requests_total", model_name="m", model_version="default", hostname=HOST) == "2.0"
    assert text.count("ts_inference_requests_total{") == 1
    assert version.summary().requests == 2


def test_observe_status_and_the_listener_observer() -> None:
    metrics = server("prometheus")
    for status in (200, 299, 400, 499, 500, 100, 302):
        metrics.observe_status(status)
    metrics.observe_status(201)
    text = metrics.exposition()
    assert sample(text, "Requests2XX", Level="Host", Hostname=HOST) == "3.0"
    assert sample(text, "Requests4XX", Level="Host", Hostname=HOST) == "2.0"
    assert sample(text, "Requests5XX", Level="Host", Hostname=HOST) == "3.0"


outcomes = st.one_of(
    st.sampled_from([200, 201, 299, 399, 400, 404, 500, 503, 507]), st.just("error"), st.just("pending")
)
latencies = st.one_of(
    st.sampled_from([0.0, 5.0, 5.001, 10.0, 15.0, 15.001]), st.floats(min_value=0.0, max_value=40000.0)
)


@dataclass
class Step:
    explicit: bool
    outcome: int | str
    latency_ms: float


steps = st.lists(st.builds(Step, st.booleans(), outcomes, latencies), max_size=40)


@given(steps)
def test_summary_accounts_for_every_request(sequence: list[Step]) -> None:
    summaries = {}
    for mode in ("log", "prometheus", "legacy"):
        metrics = server(mode)
        version = metrics.for_version("m", "1.0")
        with fake_clock() as clock:
            for step in sequence:
                run_request(clock, version, step.explicit, step.outcome, step.latency_ms)
        ((name, number, summary),) = metrics.summaries()
        assert (name, number) == ("m", "1.0")
        summaries[mode] = summary
        if mode == "prometheus":  # the label sets count their own requests
            text = metrics.exposition()
            for label, explicit in (("default", False), ("1.0", True)):
                count = sum(1 for step in sequence if step.explicit == explicit)
                value = sample(text, "ts_inference_requests_total", model_name="m", model_version=label, hostname=HOST)
                assert value == (f"{count}.0" if count else None)
    summary = summaries["log"]
    assert summaries["prometheus"] == summary == summaries["legacy"]  # the same in every mode
    successes = [s.latency_ms for s in sequence if s.outcome not in ("error", "pending") and int(s.outcome) < 400]
    pending = sum(1 for s in sequence if s.outcome == "pending")
    assert summary.requests == len(sequence) == summary.succeeded + summary.failed + pending
    assert summary.succeeded == len(successes) == sum(summary.distribution)
    assert summary.pending == pending
    bounds = DEFAULT_SUMMARY_BUCKETS_MS
    expected = [0, 0, 0, 0]
    for latency_ms in successes:
        expected[sum(1 for bound in bounds if latency_ms / 1000 > bound / 1000)] += 1
    assert summary.distribution == tuple(expected)
    assert summary.total_latency_ms == pytest.approx(sum(successes), rel=1e-9, abs=1e-9)


# -- count_distribution_bucket ------------------------------------------------------------------------------------


def settings_with(tmp_path: Path, value: str | None) -> MetricsSettings:
    config_file = tmp_path / "config.properties"
    config_file.write_text("" if value is None else f"count_distribution_bucket={value}\n")
    return MetricsSettings.from_config(load_config(CliOptions(ts_config=str(config_file)), {}, cwd=str(tmp_path)))


@pytest.mark.parametrize(
    ("value", "bounds"), [(None, (5, 10, 15)), ("5,10,15", (5, 10, 15)), (" 1 , 20,300 ", (1, 20, 300))]
)
def test_count_distribution_bucket(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, value: str | None, bounds: tuple[int, int, int]
) -> None:
    with caplog.at_level(logging.WARNING, logger="modelserver.metrics"):
        assert settings_with(tmp_path, value).summary_buckets_ms == bounds
    assert not [record for record in caplog.records if record.name == "modelserver.metrics"]


@pytest.mark.parametrize(
    "value", ["5,10", "5,10,15,20", "10,5,15", "5,5,10", "0,5,10", "-1,5,10", "5.5,10,15", "garbage", "", "5,,10"]
)
def test_bad_count_distribution_bucket_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture, value: str) -> None:
    with caplog.at_level(logging.WARNING, logger="modelserver.metrics"):
        settings = settings_with(tmp_path, value)
    assert settings.summary_buckets_ms == DEFAULT_SUMMARY_BUCKETS_MS
    (record,) = [record for record in caplog.records if record.name == "modelserver.metrics"]
    assert record.levelno == logging.WARNING
    assert f'"{value}"' in record.getMessage()  # names the value


def test_parse_summary_buckets_directly() -> None:
    assert parse_summary_buckets("2, 4, 8") == (2, 4, 8)
    assert parse_summary_buckets(None) == DEFAULT_SUMMARY_BUCKETS_MS


# -- regression: the same text as before the statistics --------------------------------------------------------


def fixed_events(metrics: ServerMetrics, clock: Clock) -> None:
    """Two versions of ``m`` answering unversioned requests in turn (the shared ``default`` label set), a request
    refused before dispatch, explicit versions, batches, status classes, worker events, a backend line, host
    values."""
    m1 = metrics.for_version("m", "1.0")
    n3 = metrics.for_version("n", "3")
    a, b, c = job(), job(), job()
    clock.at(10.0)
    m1.admit(a, False)
    clock.at(10.0001)
    m1.admit(b, True)
    clock.at(10.0002)
    m1.admit(c, False)
    m1.failed(c)
    clock.at(10.00321)
    m1.dispatched([a, b])
    clock.at(10.0034)
    m1.sent()
    clock.at(10.0123456)
    m1.finished(a, 200)
    clock.at(10.02718)
    m1.finished(b, 200)
    for status in (200, 200, 503, 404, 301):
        metrics.observe_status(status)
    k = job()
    clock.at(20.5)
    n3.admit(k, False)
    clock.at(20.5004)
    n3.dispatched([k])
    clock.at(20.5005)
    n3.sent()
    clock.at(21.75)
    n3.finished(k, 200)
    m2 = metrics.for_version("m", "2.0")
    d, e, f = job(), job(), job()
    clock.at(30.0)
    m2.admit(d, False)
    clock.at(30.000123)
    m2.dispatched([d])
    clock.at(30.0002)
    m2.sent()
    clock.at(30.004)
    m2.finished(d, 200)
    clock.at(31.0)
    m1.admit(e, False)
    clock.at(31.001)
    m1.dispatched([e])
    clock.at(31.0011)
    m1.sent()
    clock.at(31.0077)
    m1.finished(e, 200)
    clock.at(40.0)
    m2.admit(f, True)
    clock.at(40.25)
    m2.dispatched([f])
    clock.at(40.2501)
    m2.sent()
    clock.at(45.0)
    m2.finished(f, 200)
    m1.worker_loaded("W-9000-m_1.0", 0.125)
    m2.worker_loaded("W-9001-m_2.0", 1.5)
    m2.worker_restarted()
    metrics.backend_line("[METRICS]HandlerTime.ms:3.25|#ModelName:m,Level:Model|#hostname:host1,1700000000,req-1")
    metrics.record_system({"CPUUtilization": 12.5, "MemoryUsed": 1234.5678, "DiskAvailable": 3.0e-5})


def test_prometheus_text_is_unchanged() -> None:
    metrics = server("prometheus")
    with fake_clock() as clock:
        fixed_events(metrics, clock)
    assert metrics.exposition() == EXPECTED_PROMETHEUS
    assert [summary for _, _, summary in metrics.summaries()] == [
        Summary(4, 3, 1, 47.125599999999324, (0, 1, 1, 1)),
        Summary(1, 1, 0, 1250.0, (0, 0, 0, 1)),
        Summary(2, 2, 0, 5004.000000000001, (1, 0, 0, 1)),
    ]


def test_legacy_text_is_the_torchserve_request_families_of_prometheus_mode() -> None:
    metrics = server("legacy")
    with fake_clock() as clock:
        fixed_events(metrics, clock)
    start = EXPECTED_PROMETHEUS.index("# HELP ts_inference_requests_total")
    end = EXPECTED_PROMETHEUS.index("# HELP QueueTime")
    assert metrics.exposition() == EXPECTED_PROMETHEUS[start:end]


def test_log_lines_are_unchanged() -> None:
    metrics = server("log")
    with fake_clock() as clock:
        fixed_events(metrics, clock)
    assert metrics.exposition() == ""
    lines = metrics.ts_log.lines() + metrics.model_log.lines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{3} - .*,timestamp:\d+\n$", line) for line in lines)
    stripped = "".join(re.sub(r"timestamp:\d+", "timestamp:T", line.split(" - ", 1)[1]) for line in lines)
    assert stripped == EXPECTED_LOG_LINES


# Produced once by the single-module modelserver/metrics.py of commit a91dc75 (before these statistics) on
# fixed_events, with done(job) for finished(job, 200) and nothing for failed(job), which that code did not have;
# then its times written at TorchServe's precision: latencies in microseconds with at most three decimals (its
# nanoseconds / 1000.0), QueueTime and WorkerThreadTime in whole milliseconds, PredictionTime rounded to 0.01 ms.
EXPECTED_PROMETHEUS = (
    "# HELP Requests2XX Torchserve prometheus counter metric with unit: Count\n"
    "# TYPE Requests2XX counter\n"
    'Requests2XX{Level="Host",Hostname="host1",} 2.0\n'
    "# HELP Requests4XX Torchserve prometheus counter metric with unit: Count\n"
    "# TYPE Requests4XX counter\n"
    'Requests4XX{Level="Host",Hostname="host1",} 1.0\n'
    "# HELP Requests5XX Torchserve prometheus counter metric with unit: Count\n"
    "# TYPE Requests5XX counter\n"
    'Requests5XX{Level="Host",Hostname="host1",} 2.0\n'
    "# HELP ts_inference_requests_total Torchserve prometheus counter metric with unit: Count\n"
    "# TYPE ts_inference_requests_total counter\n"
    'ts_inference_requests_total{model_name="m",model_version="default",hostname="host1",} 4.0\n'
    'ts_inference_requests_total{model_name="m",model_version="1.0",hostname="host1",} 1.0\n'
    'ts_inference_requests_total{model_name="n",model_version="default",hostname="host1",} 1.0\n'
    'ts_inference_requests_total{model_name="m",model_version="2.0",hostname="host1",} 1.0\n'
    "# HELP ts_inference_latency_microseconds Torchserve prometheus counter metric with unit:"
    " Microseconds\n"
    "# TYPE ts_inference_latency_microseconds counter\n"
    'ts_inference_latency_microseconds{model_name="m",model_version="default",hostname="host1",}'
    " 24045.6\n"
    'ts_inference_latency_microseconds{model_name="m",model_version="1.0",hostname="host1",}'
    " 27080.0\n"
    'ts_inference_latency_microseconds{model_name="n",model_version="default",hostname="host1",}'
    " 1250000.0\n"
    'ts_inference_latency_microseconds{model_name="m",model_version="2.0",hostname="host1",} 5000000.0\n'
    "# HELP ts_queue_latency_microseconds Torchserve prometheus counter metric with unit: Microseconds\n"
    "# TYPE ts_queue_latency_microseconds counter\n"
    'ts_queue_latency_microseconds{model_name="m",model_version="default",hostname="host1",}'
    " 4333.0\n"
    'ts_queue_latency_microseconds{model_name="m",model_version="1.0",hostname="host1",}'
    " 3110.0\n"
    'ts_queue_latency_microseconds{model_name="n",model_version="default",hostname="host1",}'
    " 400.0\n"
    'ts_queue_latency_microseconds{model_name="m",model_version="2.0",hostname="host1",} 250000.0\n'
    "# HELP QueueTime Torchserve prometheus gauge metric with unit: Milliseconds\n"
    "# TYPE QueueTime gauge\n"
    'QueueTime{Level="Host",Hostname="host1",} 250.0\n'
    "# HELP WorkerThreadTime Torchserve prometheus gauge metric with unit: Milliseconds\n"
    "# TYPE WorkerThreadTime gauge\n"
    'WorkerThreadTime{Level="Host",Hostname="host1",} 0.0\n'
    "# HELP WorkerLoadTime Torchserve prometheus gauge metric with unit: Milliseconds\n"
    "# TYPE WorkerLoadTime gauge\n"
    'WorkerLoadTime{WorkerName="W-9000-m_1.0",Level="Host",Hostname="host1",} 125.0\n'
    'WorkerLoadTime{WorkerName="W-9001-m_2.0",Level="Host",Hostname="host1",} 1500.0\n'
    "# HELP CPUUtilization Torchserve prometheus gauge metric with unit: Percent\n"
    "# TYPE CPUUtilization gauge\n"
    'CPUUtilization{Level="Host",Hostname="host1",} 12.5\n'
    "# HELP MemoryUsed Torchserve prometheus gauge metric with unit: Megabytes\n"
    "# TYPE MemoryUsed gauge\n"
    'MemoryUsed{Level="Host",Hostname="host1",} 1234.5678\n'
    "# HELP MemoryAvailable Torchserve prometheus gauge metric with unit: Megabytes\n"
    "# TYPE MemoryAvailable gauge\n"
    "# HELP MemoryUtilization Torchserve prometheus gauge metric with unit: Percent\n"
    "# TYPE MemoryUtilization gauge\n"
    "# HELP DiskUsage Torchserve prometheus gauge metric with unit: Gigabytes\n"
    "# TYPE DiskUsage gauge\n"
    "# HELP DiskUtilization Torchserve prometheus gauge metric with unit: Percent\n"
    "# TYPE DiskUtilization gauge\n"
    "# HELP DiskAvailable Torchserve prometheus gauge metric with unit: Gigabytes\n"
    "# TYPE DiskAvailable gauge\n"
    'DiskAvailable{Level="Host",Hostname="host1",} 3.0E-5\n'
    "# HELP HandlerTime Torchserve prometheus gauge metric with unit: ms\n"
    "# TYPE HandlerTime gauge\n"
    'HandlerTime{ModelName="m",Level="Model",Hostname="host1",} 3.25\n'
    "# HELP PredictionTime Torchserve prometheus gauge metric with unit: ms\n"
    "# TYPE PredictionTime gauge\n"
    'PredictionTime{ModelName="m",Level="Model",Hostname="host1",} 4750.0\n'
    'PredictionTime{ModelName="n",Level="Model",Hostname="host1",} 1249.6\n'
    "# HELP modelserver_request_latency_seconds Latency of successful inference requests by stage: queue"
    " (waiting for a worker), worker (sent to the worker until its answer arrived), total (admitted"
    " until answered).\n"
    "# TYPE modelserver_request_latency_seconds histogram\n"
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.00025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.0005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.001",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.0025",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.005",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.01",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.025",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.05",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.1",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.25",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="0.5",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="1.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="2.5",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="5.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="10.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="30.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="queue",'
    'le="+Inf",} 3.0\n'
    'modelserver_request_latency_seconds_count{model_name="m",model_version="1.0",stage="queue",} 3.0\n'
    'modelserver_request_latency_seconds_sum{model_name="m",model_version="1.0",stage="queue",}'
    " 0.007319999999999993\n"
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.00025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.0005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.001",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.0025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.01",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.025",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.05",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.1",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.25",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="0.5",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="1.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="2.5",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="5.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="10.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="30.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="worker",'
    'le="+Inf",} 3.0\n'
    'modelserver_request_latency_seconds_count{model_name="m",model_version="1.0",stage="worker",} 3.0\n'
    'modelserver_request_latency_seconds_sum{model_name="m",model_version="1.0",stage="worker",}'
    " 0.03980559999999933\n"
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.00025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.0005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.001",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.0025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.01",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.025",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.05",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.1",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.25",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="0.5",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="1.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="2.5",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="5.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="10.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="30.0",} 3.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="1.0",stage="total",'
    'le="+Inf",} 3.0\n'
    'modelserver_request_latency_seconds_count{model_name="m",model_version="1.0",stage="total",} 3.0\n'
    'modelserver_request_latency_seconds_sum{model_name="m",model_version="1.0",stage="total",}'
    " 0.047125599999999324\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",'
    'le="0.00025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",'
    'le="0.0005",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",'
    'le="0.001",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",'
    'le="0.0025",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",'
    'le="0.005",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="0.01",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",'
    'le="0.025",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="0.05",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="0.1",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="0.25",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="0.5",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="1.0",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="2.5",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="5.0",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="10.0",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="30.0",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="queue",le="+Inf",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_count{model_name="n",model_version="3",stage="queue",} 1.0\n'
    'modelserver_request_latency_seconds_sum{model_name="n",model_version="3",stage="queue",}'
    " 3.9999999999906777E-4\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="0.00025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="0.0005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="0.001",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="0.0025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="0.005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="0.01",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="0.025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="0.05",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",le="0.1",'
    "} 0.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="0.25",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",le="0.5",'
    "} 0.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",le="1.0",'
    "} 0.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",le="2.5",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",le="5.0",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="10.0",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="30.0",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="worker",'
    'le="+Inf",} 1.0\n'
    'modelserver_request_latency_seconds_count{model_name="n",model_version="3",stage="worker",} 1.0\n'
    'modelserver_request_latency_seconds_sum{model_name="n",model_version="3",stage="worker",}'
    " 1.249600000000001\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",'
    'le="0.00025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",'
    'le="0.0005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",'
    'le="0.001",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",'
    'le="0.0025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",'
    'le="0.005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="0.01",'
    "} 0.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",'
    'le="0.025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="0.05",'
    "} 0.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="0.1",'
    "} 0.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="0.25",'
    "} 0.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="0.5",'
    "} 0.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="1.0",'
    "} 0.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="2.5",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="5.0",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="10.0",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="30.0",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_bucket{model_name="n",model_version="3",stage="total",le="+Inf",'
    "} 1.0\n"
    'modelserver_request_latency_seconds_count{model_name="n",model_version="3",stage="total",} 1.0\n'
    'modelserver_request_latency_seconds_sum{model_name="n",model_version="3",stage="total",} 1.25\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.00025",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.0005",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.001",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.0025",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.005",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.01",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.025",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.05",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.1",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.25",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="0.5",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="1.0",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="2.5",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="5.0",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="10.0",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="30.0",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="queue",'
    'le="+Inf",} 2.0\n'
    'modelserver_request_latency_seconds_count{model_name="m",model_version="2.0",stage="queue",} 2.0\n'
    'modelserver_request_latency_seconds_sum{model_name="m",model_version="2.0",stage="queue",}'
    " 0.25012299999999854\n"
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.00025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.0005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.001",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.0025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.005",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.01",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.025",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.05",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.1",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.25",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="0.5",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="1.0",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="2.5",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="5.0",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="10.0",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="30.0",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="worker",'
    'le="+Inf",} 2.0\n'
    'modelserver_request_latency_seconds_count{model_name="m",model_version="2.0",stage="worker",} 2.0\n'
    'modelserver_request_latency_seconds_sum{model_name="m",model_version="2.0",stage="worker",}'
    " 4.753877000000003\n"
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.00025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.0005",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.001",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.0025",} 0.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.005",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.01",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.025",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.05",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.1",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.25",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="0.5",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="1.0",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="2.5",} 1.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="5.0",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="10.0",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="30.0",} 2.0\n'
    'modelserver_request_latency_seconds_bucket{model_name="m",model_version="2.0",stage="total",'
    'le="+Inf",} 2.0\n'
    'modelserver_request_latency_seconds_count{model_name="m",model_version="2.0",stage="total",} 2.0\n'
    'modelserver_request_latency_seconds_sum{model_name="m",model_version="2.0",stage="total",}'
    " 5.004000000000001\n"
    "# HELP modelserver_batch_size Jobs per batch sent to a worker.\n"
    "# TYPE modelserver_batch_size histogram\n"
    'modelserver_batch_size_bucket{model_name="m",model_version="1.0",le="1.0",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="1.0",le="2.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="1.0",le="4.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="1.0",le="8.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="1.0",le="16.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="1.0",le="32.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="1.0",le="64.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="1.0",le="128.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="1.0",le="256.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="1.0",le="+Inf",} 2.0\n'
    'modelserver_batch_size_count{model_name="m",model_version="1.0",} 2.0\n'
    'modelserver_batch_size_sum{model_name="m",model_version="1.0",} 3.0\n'
    'modelserver_batch_size_bucket{model_name="n",model_version="3",le="1.0",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="n",model_version="3",le="2.0",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="n",model_version="3",le="4.0",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="n",model_version="3",le="8.0",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="n",model_version="3",le="16.0",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="n",model_version="3",le="32.0",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="n",model_version="3",le="64.0",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="n",model_version="3",le="128.0",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="n",model_version="3",le="256.0",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="n",model_version="3",le="+Inf",} 1.0\n'
    'modelserver_batch_size_count{model_name="n",model_version="3",} 1.0\n'
    'modelserver_batch_size_sum{model_name="n",model_version="3",} 1.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="2.0",le="1.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="2.0",le="2.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="2.0",le="4.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="2.0",le="8.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="2.0",le="16.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="2.0",le="32.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="2.0",le="64.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="2.0",le="128.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="2.0",le="256.0",} 2.0\n'
    'modelserver_batch_size_bucket{model_name="m",model_version="2.0",le="+Inf",} 2.0\n'
    'modelserver_batch_size_count{model_name="m",model_version="2.0",} 2.0\n'
    'modelserver_batch_size_sum{model_name="m",model_version="2.0",} 2.0\n'
    "# HELP modelserver_worker_restarts_total Worker processes started again after dying, timing out or"
    " failing to load.\n"
    "# TYPE modelserver_worker_restarts_total counter\n"
    'modelserver_worker_restarts_total{model_name="m",model_version="1.0",} 0.0\n'
    'modelserver_worker_restarts_total{model_name="n",model_version="3",} 0.0\n'
    'modelserver_worker_restarts_total{model_name="m",model_version="2.0",} 1.0\n'
    "# HELP modelserver_queue_depth Jobs waiting for a worker: queued, or taken by a busy worker that"
    " has not started them.\n"
    "# TYPE modelserver_queue_depth gauge\n"
    "# HELP modelserver_inflight_streams Streamed (chunked) inference responses being sent.\n"
    "# TYPE modelserver_inflight_streams gauge\n"
)


# The same run in log mode: ts_metrics.log then model_metrics.log, without the log4j time and with the
# ",timestamp:<seconds>" field as "timestamp:T".
EXPECTED_LOG_LINES = (
    "ts_inference_requests_total.Count:1.0|#model_name:m,model_version:default|#hostname:host1,"
    "timestamp:T\n"
    "ts_inference_requests_total.Count:1.0|#model_name:m,model_version:1.0|#hostname:host1,timestamp:T\n"
    "ts_inference_requests_total.Count:1.0|#model_name:m,model_version:default|#hostname:host1,"
    "timestamp:T\n"
    "WorkerThreadTime.Milliseconds:0.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "ts_inference_latency_microseconds.Microseconds:12345.6|#model_name:m,"
    "model_version:default|#hostname:host1,timestamp:T\n"
    "ts_queue_latency_microseconds.Microseconds:3210.0|#model_name:m,model_version:default"
    "|#hostname:host1,timestamp:T\n"
    "QueueTime.Milliseconds:3.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "ts_inference_latency_microseconds.Microseconds:27080.0|#model_name:m,model_version:1.0"
    "|#hostname:host1,timestamp:T\n"
    "ts_queue_latency_microseconds.Microseconds:3110.0|#model_name:m,model_version:1.0"
    "|#hostname:host1,timestamp:T\n"
    "QueueTime.Milliseconds:3.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "Requests2XX.Count:1.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "Requests2XX.Count:1.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "Requests5XX.Count:1.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "Requests4XX.Count:1.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "Requests5XX.Count:1.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "ts_inference_requests_total.Count:1.0|#model_name:n,model_version:default|#hostname:host1,"
    "timestamp:T\n"
    "WorkerThreadTime.Milliseconds:0.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "ts_inference_latency_microseconds.Microseconds:1250000.0|#model_name:n,model_version:default"
    "|#hostname:host1,timestamp:T\n"
    "ts_queue_latency_microseconds.Microseconds:400.0|#model_name:n,model_version:default"
    "|#hostname:host1,timestamp:T\n"
    "QueueTime.Milliseconds:0.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "ts_inference_requests_total.Count:1.0|#model_name:m,model_version:default|#hostname:host1,"
    "timestamp:T\n"
    "WorkerThreadTime.Milliseconds:0.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "ts_inference_latency_microseconds.Microseconds:4000.0|#model_name:m,"
    "model_version:default|#hostname:host1,timestamp:T\n"
    "ts_queue_latency_microseconds.Microseconds:123.0|#model_name:m,model_version:default"
    "|#hostname:host1,timestamp:T\n"
    "QueueTime.Milliseconds:0.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "ts_inference_requests_total.Count:1.0|#model_name:m,model_version:default|#hostname:host1,"
    "timestamp:T\n"
    "WorkerThreadTime.Milliseconds:0.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "ts_inference_latency_microseconds.Microseconds:7700.0|#model_name:m,"
    "model_version:default|#hostname:host1,timestamp:T\n"
    "ts_queue_latency_microseconds.Microseconds:1000.0|#model_name:m,model_version:default"
    "|#hostname:host1,timestamp:T\n"
    "QueueTime.Milliseconds:1.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "ts_inference_requests_total.Count:1.0|#model_name:m,model_version:2.0|#hostname:host1,timestamp:T\n"
    "WorkerThreadTime.Milliseconds:0.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "ts_inference_latency_microseconds.Microseconds:5000000.0|#model_name:m,model_version:2.0"
    "|#hostname:host1,timestamp:T\n"
    "ts_queue_latency_microseconds.Microseconds:250000.0|#model_name:m,model_version:2.0|#hostname:host1,"
    "timestamp:T\n"
    "QueueTime.Milliseconds:250.0|#Level:Host|#hostname:host1,timestamp:T\n"
    "WorkerLoadTime.Milliseconds:125.0|#WorkerName:W-9000-m_1.0,Level:Host|#hostname:host1,timestamp:T\n"
    "WorkerLoadTime.Milliseconds:1500.0|#WorkerName:W-9001-m_2.0,Level:Host|#hostname:host1,timestamp:T\n"
    "CPUUtilization.Percent:12.5|#Level:Host|#hostname:host1,timestamp:T\n"
    "MemoryUsed.Megabytes:1234.5678|#Level:Host|#hostname:host1,timestamp:T\n"
    "DiskAvailable.Gigabytes:3.0E-5|#Level:Host|#hostname:host1,timestamp:T\n"
    "PredictionTime.ms:9.14|#ModelName:m,Level:Model|#hostname:host1,timestamp:T\n"
    "PredictionTime.ms:1249.6|#ModelName:n,Level:Model|#hostname:host1,timestamp:T\n"
    "PredictionTime.ms:3.88|#ModelName:m,Level:Model|#hostname:host1,timestamp:T\n"
    "PredictionTime.ms:6.7|#ModelName:m,Level:Model|#hostname:host1,timestamp:T\n"
    "PredictionTime.ms:4750.0|#ModelName:m,Level:Model|#hostname:host1,timestamp:T\n"
    "HandlerTime.ms:3.25|#ModelName:m,Level:Model|#hostname:host1,requestID:req-1,timestamp:T\n"
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=20, unique=True).map(lambda b: tuple(sorted(b))),
    st.one_of(st.floats(allow_nan=True), st.sampled_from([0.0, 0.005, 0.01, 100.0])),
)
def test_a_value_falls_in_the_bucket_bisect_left_gives(bounds: tuple[float, ...], value: float) -> None:
    """The request path's bucket search (a scan, cheaper compiled than a call of bisect_left) is bisect_left's."""
    assert bucket_of(bounds, value) == bisect.bisect_left(bounds, value)
    assert bucket_of(bounds, bounds[0]) == 0 and bucket_of(bounds, bounds[-1]) == len(bounds) - 1
