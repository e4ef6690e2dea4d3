"""The metrics module: TorchServe's Prometheus text, metric log lines, the ``[METRICS]`` parser, modes and config."""

from __future__ import annotations

import asyncio
import io
import math
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from modelserver.config import CliOptions, load_config
from modelserver.metrics import (
    MetricLog,
    MetricsSettings,
    ServerMetrics,
    SystemSampler,
    java_double,
    load_metrics_config,
    parse_metric_line,
    parse_metrics_yaml,
    render,
)
from modelserver.metrics.families import TorchServeCounter
from modelserver.metrics.metric_log import CHUNK_LINES
from modelserver.metrics.series import LogSeries
from modelserver.types import Job
from modelserver.worker_process import forward_output
from tests.unit.metrics_jobs import new_job
from workers.context import Metrics

HOST = "host1"


def server(mode: str = "prometheus", **settings: Any) -> tuple[ServerMetrics, MetricLog, MetricLog]:
    """ServerMetrics whose metric log lines are kept in memory (``ts_log.lines()``, ``model_log.lines()``)."""
    ts_log, model_log = MetricLog(memory=[]), MetricLog(memory=[])
    metrics = ServerMetrics(MetricsSettings(mode=mode, **settings), hostname=HOST, ts_log=ts_log, model_log=model_log)
    return metrics, ts_log, model_log


def parsed(metrics: ServerMetrics, names: tuple[str, ...] = ()) -> dict[str, Any]:
    """The exposition parsed back with prometheus-client: family name -> Metric."""
    return {family.name: family for family in text_string_to_metric_families(metrics.exposition(names))}


def sample(families: dict[str, Any], family: str, name: str | None = None, **labels: str) -> float | None:
    for s in families[family].samples:
        if (name is None or s.name == name) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def job() -> Job:
    return new_job()


# -- Java's double formatting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (8, "8.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (0.5, "0.5"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (0.00012345, "1.2345E-4"),
        (9999999.0, "9999999.0"),
        (1e7, "1.0E7"),
        (12345678.9, "1.23456789E7"),
        (-2.5e-9, "-2.5E-9"),
        (1e22, "1.0E22"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_java_double(value: float, text: str) -> None:
    assert java_double(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_java_double_round_trips(value: float) -> None:
    text = java_double(value)
    assert float(text) == value
    assert re.fullmatch(r"-?\d+\.\d+(E-?\d+)?", text)


# -- rendering ----------------------------------------------------------------------------------------------------


def test_render_counter_in_torchserve_form() -> None:
    family = TorchServeCounter(
        "Requests2XX", "Torchserve prometheus counter metric with unit: Count", ["Level", "Hostname"]
    )
    family.add_metric(["Host", "h"], 8)
    assert render([family]) == (
        "# HELP Requests2XX Torchserve prometheus counter metric with unit: Count\n"
        "# TYPE Requests2XX counter\n"
        'Requests2XX{Level="Host",Hostname="h",} 8.0\n'
    )


def test_render_keeps_a_total_suffix_that_is_part_of_the_name() -> None:
    family = TorchServeCounter("ts_inference_requests_total", "help", ["model_name"])
    family.add_metric(["m"], 3)
    plain = TorchServeCounter("own_restarts_total", "help", ["m"], torchserve=False)
    plain.add_metric(["m"], 1)
    text = render([family, plain])
    assert "# TYPE ts_inference_requests_total counter\n" in text
    assert 'ts_inference_requests_total{model_name="m",} 3.0\n' in text
    assert '# TYPE own_restarts_total counter\nown_restarts_total{m="m",} 1.0\n' in text


def test_render_family_without_samples_and_without_labels() -> None:
    empty = GaugeMetricFamily("HandlerTime", "Torchserve prometheus gauge metric with unit: ms", labels=["ModelName"])
    bare = GaugeMetricFamily("up", "help", value=1)
    assert render([empty, bare]) == (
        "# HELP HandlerTime Torchserve prometheus gauge metric with unit: ms\n# TYPE HandlerTime gauge\n"
        "# HELP up help\n# TYPE up gauge\nup 1.0\n"
    )


def test_render_histogram() -> None:
    family = HistogramMetricFamily("h", "help", labels=["m"])
    family.add_metric(["x"], [("0.5", 1.0), ("+Inf", 2.0)], 3.5)
    assert render([family]).splitlines()[2:] == [
        'h_bucket{m="x",le="0.5",} 1.0',
        'h_bucket{m="x",le="+Inf",} 2.0',
        'h_count{m="x",} 2.0',
        'h_sum{m="x",} 3.5',
    ]


def test_render_filters_by_sample_name_and_drops_empty_families() -> None:
    a = TorchServeCounter("A", "a", ["l"])
    a.add_metric(["1"], 1)
    b = GaugeMetricFamily("B", "b", labels=["l"])
    b.add_metric(["1"], 2)
    empty = GaugeMetricFamily("C", "c", labels=["l"])
    hist = HistogramMetricFamily("H", "h", labels=["l"])
    hist.add_metric(["1"], [("+Inf", 1.0)], 1.0)
    assert render([a, b, empty], ["B"]) == '# HELP B b\n# TYPE B gauge\nB{l="1",} 2.0\n'
    assert render([a, b, empty], ["C", "nothing"]) == ""
    assert render([hist], ["H_sum"]).splitlines()[2:] == ['H_sum{l="1",} 1.0']
    assert len(render([hist], ["H"]).splitlines()) == 5  # a family's own name keeps all of its samples


label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@given(st.lists(label_values, min_size=1, max_size=4, unique=True), st.floats(allow_nan=False))
def test_rendered_text_parses_back(values: list[str], value: float) -> None:
    family = GaugeMetricFamily("g", 'help with "quotes" and \\ and \n newline', labels=["v"])
    for item in values:
        family.add_metric([item], value)
    (back,) = text_string_to_metric_families(render([family]))
    assert back.documentation == family.documentation
    assert [(s.labels["v"], s.value) for s in back.samples] == [(v, value) for v in values]


# -- [METRICS] lines ----------------------------------------------------------------------------------------------


def emitted(emit: Any) -> str:
    out = io.StringIO()
    metrics = Metrics("mnist", stream=out)
    metrics.set_request_ids({0: "req-a", 1: "req-b"})
    emit(metrics)
    line = out.getvalue().strip()
    assert line.startswith("[METRICS]")
    return line[len("[METRICS]") :]


def test_parse_lines_our_workers_print() -> None:
    metric = parse_metric_line(emitted(lambda m: m.add_time("HandlerTime", 12.5, None, "ms")))
    assert metric is not None
    assert (metric.name, metric.unit, metric.value, metric.kind) == ("HandlerTime", "ms", 12.5, "gauge")
    assert metric.dimensions == (("ModelName", "mnist"), ("Level", "Model"))
    assert metric.request_ids == "req-a,req-b"
    counter = parse_metric_line(emitted(lambda m: m.add_counter("Loops", 2, idx=1)))
    assert counter is not None and (counter.kind, counter.request_ids) == ("counter", "req-b")


def test_parse_torchserve_line_without_type_and_request_id() -> None:
    metric = parse_metric_line("DiskAvailable.Gigabytes:311|#Level:Host|#hostname:localhost,1700000000")
    assert metric is not None
    assert (metric.kind, metric.hostname, metric.timestamp, metric.request_ids) == (None, "localhost", "1700000000", "")


@pytest.mark.parametrize(
    "line",
    [
        "no dot:1|#|#hostname:h,1",
        "Name.ms:abc|#|#hostname:h,1",
        "Name.ms:1,2|#|#hostname:h,1",  # matches TorchServe's pattern, but is no number
        "Name.:1|#|#hostname:h,1",
        "Name.ms:1|#A:b",
    ],
)
def test_parse_rejects(line: str) -> None:
    assert parse_metric_line(line) is None


def test_parse_dimensions_as_java_splits_them() -> None:
    metric = parse_metric_line("N.u:1|#A:1,B:,:c,D:1:2,E|#hostname:h,1")
    assert metric is not None and metric.dimensions == (("A", "1"), ("", "c"))


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)


@given(
    names,
    st.sampled_from(["ms", "count", "percent", "MB"]),
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
    st.lists(st.tuples(names, names), max_size=3),
)
def test_parse_round_trips_context_metrics(name: str, unit: str, value: float, dims: list[tuple[str, str]]) -> None:
    dimensions = [f"{k}:{v}" for k, v in dims]
    metric = parse_metric_line(emitted(lambda m: m.add_metric(name, value, unit, 0, dimensions, "GAUGE")))
    assert metric is not None
    assert (metric.name, metric.unit, metric.value) == (name, unit, value)
    assert metric.dimensions[: len(dims)] == tuple(dims)
    assert metric.request_ids == "req-a"


# -- modes --------------------------------------------------------------------------------------------------------


def test_prometheus_mode_counts_requests_by_status_class() -> None:
    metrics, ts_log, _ = server()
    for status in (200, 204, 404, 400, 500, 503, 301):
        metrics.observe_status(status)
    families = parsed(metrics)
    assert sample(families, "Requests2XX", Level="Host", Hostname=HOST) == 2
    assert sample(families, "Requests4XX") == 2
    assert sample(families, "Requests5XX") == 3  # TorchServe counts everything else (a 3xx too) as 5XX
    assert ts_log.lines() == []


def test_prometheus_mode_request_series_and_latencies() -> None:
    metrics, _, _ = server()
    version = metrics.for_version("m", "2.0")
    assert metrics.for_version("m", "2.0") is version
    jobs = [job() for _ in range(3)]
    version.admit(jobs[0], explicit_version=False)
    version.admit(jobs[1], explicit_version=True)
    version.admit(jobs[2], explicit_version=False)  # a 503: admitted, never answered
    version.dispatched(jobs[:2])
    version.sent()
    for item in jobs[:2]:
        version.done(item)
    version.done(job())  # not an inference request: ignored
    version.worker_loaded("W-9000-m_2.0", 0.25)
    version.worker_restarted()
    families = parsed(metrics)
    assert sample(families, "ts_inference_requests", model_name="m", model_version="default", hostname=HOST) == 2
    assert sample(families, "ts_inference_requests", model_version="2.0") == 1
    latency = sample(families, "ts_inference_latency_microseconds", model_version="default")
    queue = sample(families, "ts_queue_latency_microseconds", model_version="default")
    assert latency is not None and queue is not None and 0 < queue < latency
    assert sample(families, "WorkerLoadTime", WorkerName="W-9000-m_2.0", Level="Host") == 250.0
    assert sample(families, "QueueTime") is not None and sample(families, "WorkerThreadTime") is not None
    assert sample(families, "PredictionTime", ModelName="m", Level="Model", Hostname=HOST) is not None
    stage = "modelserver_request_latency_seconds"
    assert sample(families, stage, f"{stage}_count", model_name="m", model_version="2.0", stage="total") == 2
    assert sample(families, "modelserver_batch_size", "modelserver_batch_size_sum", model_version="2.0") == 2
    assert sample(families, "modelserver_worker_restarts", model_name="m", model_version="2.0") == 1


def test_torchserve_children_appear_when_first_updated() -> None:
    metrics, _, _ = server()
    metrics.for_version("m", "1.0")
    text = metrics.exposition()
    assert "# TYPE Requests2XX counter\n# HELP" in text  # declared, no sample yet
    assert "ts_inference_requests_total{" not in text
    assert 'modelserver_worker_restarts_total{model_name="m",model_version="1.0",} 0.0\n' in text
    metrics.observe_status(200)
    assert 'Requests2XX{Level="Host",Hostname="host1",} 1.0\n' in metrics.exposition()


def test_log_mode_writes_torchserve_lines_and_exposes_nothing() -> None:
    metrics, ts_log, model_log = server("log")
    version = metrics.for_version("m", "1.0")
    metrics.observe_status(200)
    item = job()
    version.admit(item, explicit_version=False)
    version.dispatched([item])
    version.done(item)
    version.worker_loaded("W-9001-m_1.0", 1.5)
    assert metrics.exposition() == ""
    ts_lines, model_lines = ts_log.lines(), model_log.lines()
    prefix = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{3} - "
    stamp = r",timestamp:\d+"
    assert re.fullmatch(f"{prefix}Requests2XX.Count:1.0\\|#Level:Host\\|#hostname:{HOST}{stamp}\n", ts_lines[0])
    assert re.fullmatch(
        f"{prefix}ts_inference_requests_total.Count:1.0\\|#model_name:m,model_version:default\\|#hostname:{HOST}{stamp}\n",
        ts_lines[1],
    )
    names = [re.match(prefix + r"(\w+)\.", line).group(1) for line in ts_lines]  # type: ignore[union-attr]
    assert names == [
        "Requests2XX",
        "ts_inference_requests_total",
        "ts_inference_latency_microseconds",
        "ts_queue_latency_microseconds",
        "QueueTime",
        "WorkerLoadTime",
    ]
    assert "WorkerLoadTime.Milliseconds:1500.0|#WorkerName:W-9001-m_1.0,Level:Host|#hostname:" in ts_lines[-1]
    assert len(model_lines) == 1 and "PredictionTime.ms:" in model_lines[0]
    assert "|#ModelName:m,Level:Model|#hostname:" in model_lines[0]


def test_legacy_mode_exposes_only_the_ts_counters() -> None:
    metrics, ts_log, _ = server("legacy")
    version = metrics.for_version("m", "1.0")
    item = job()
    version.admit(item, explicit_version=False)
    version.dispatched([item])
    version.done(item)
    metrics.observe_status(200)
    assert set(parsed(metrics)) == {
        "ts_inference_requests",
        "ts_inference_latency_microseconds",
        "ts_queue_latency_microseconds",
    }
    logged = {line.split(" - ", 1)[1].split(".", 1)[0] for line in ts_log.lines()}
    assert logged == {"QueueTime", "Requests2XX"}


@pytest.mark.parametrize(
    ("value", "mode"), [(None, "log"), ("Prometheus", "prometheus"), (" legacy ", "legacy"), ("statsd", "log")]
)
def test_mode_from_config(tmp_path: Path, value: str | None, mode: str) -> None:
    config_file = tmp_path / "config.properties"
    config_file.write_text("" if value is None else f"metrics_mode={value}\n")
    config = load_config(CliOptions(ts_config=str(config_file)), {}, cwd=str(tmp_path))
    settings = MetricsSettings.from_config(config)
    assert settings.mode == mode
    assert settings.api_enabled and not settings.auto_detect
    assert settings.location == str(tmp_path / "logs")


# -- backend metrics ----------------------------------------------------------------------------------------------


def test_declared_backend_metrics_are_recorded_and_others_dropped() -> None:
    metrics, _, model_log = server()
    metrics.backend_line("[METRICS]" + emitted(lambda m: m.add_time("HandlerTime", 3.5, None, "ms")))
    metrics.backend_line("[METRICS]" + emitted(lambda m: m.add_counter("Undeclared", 1)))
    families = parsed(metrics)
    assert sample(families, "HandlerTime", ModelName="mnist", Level="Model", Hostname=socket.gethostname()) == 3.5
    assert "Undeclared" not in families
    assert model_log.lines() == []


def test_auto_detected_backend_metrics_take_the_type_of_the_line() -> None:
    metrics, _, _ = server(auto_detect=True)
    line = "[METRICS]Loops.count:2|#ModelName:m|#type:COUNTER|#hostname:h,1,req"
    metrics.backend_line(line)
    metrics.backend_line(line)
    metrics.backend_line("[METRICS]Temp.C:20|#ModelName:m|#type:GAUGE|#hostname:h,1")
    metrics.backend_line("[METRICS]Temp.C:21|#ModelName:m|#type:GAUGE|#hostname:h,1")
    metrics.backend_line("[METRICS]Pct.percent:40|#ModelName:m|#type:HISTOGRAM|#hostname:h,1")
    metrics.backend_line("[METRICS]NoType.count:1|#|#hostname:h,1")
    metrics.backend_line("[METRICS]Loops.count:2|#ModelName:m,Extra:x|#type:COUNTER|#hostname:h,1")  # wrong dims
    metrics.backend_line("[METRICS]Requests2XX.count:2|#|#type:COUNTER|#hostname:h,1")  # a frontend name
    metrics.backend_line("[METRICS]Bad Name.count:2|#|#hostname:h,1")
    text = metrics.exposition()
    assert "# TYPE Loops counter\n" in text and 'Loops{ModelName="m",Hostname="h",} 4.0\n' in text
    assert 'Temp{ModelName="m",Hostname="h",} 21.0\n' in text
    assert "# TYPE Pct histogram\n" in text and 'Pct_sum{ModelName="m",Hostname="h",} 40.0\n' in text
    assert 'NoType{Hostname="h",} 1.0\n' in text
    assert "Bad Name" not in text
    assert sample(parsed(metrics), "Requests2XX") is None


def test_backend_lines_in_log_mode_follow_torchserve_logmetric() -> None:
    metrics, _, model_log = server("log", auto_detect=True)
    metrics.backend_line("INFO > [METRICS]HandlerTime.Milliseconds:2|#ModelName:m,Level:Model|#hostname:h,1,r1,r2")
    metrics.backend_line("[METRICS]Custom.items:1|#Kind:a|#type:GAUGE|#hostname:h,1")
    metrics.backend_line("[METRICS]garbage")
    model_lines = model_log.lines()
    assert [line.split(" - ", 1)[1] for line in model_lines] == [
        f"HandlerTime.ms:2.0|#ModelName:m,Level:Model|#hostname:h,requestID:r1,r2,timestamp:{stamp(model_lines[0])}\n",
        f"Custom.items:1.0|#Kind:a|#hostname:h,timestamp:{stamp(model_lines[1])}\n",
    ]


def stamp(line: str) -> str:
    return line.rsplit("timestamp:", 1)[1].strip()


def test_metrics_yaml_declares_what_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text(
        "dimensions:\n  - &level Level\n"
        "ts_metrics:\n  counter:\n    - name: Requests2XX\n      unit: Count\n      dimensions: [*level, Hostname]\n"
        "model_metrics:\n  counter:\n    - name: InferenceRequestCount\n      unit: count\n      dimensions: []\n"
    )
    config = load_metrics_config(str(path))
    assert list(config.frontend) == ["Requests2XX"]
    assert config.model["InferenceRequestCount"].kind == "counter"
    metrics, _, _ = server(config=config)
    metrics.observe_status(404)
    metrics.backend_line("[METRICS]InferenceRequestCount.count:1|#|#type:COUNTER|#hostname:h,1")
    metrics.backend_line("[METRICS]HandlerTime.ms:1|#ModelName:m,Level:Model|#hostname:h,1")
    families = parsed(metrics)
    assert {"Requests2XX", "InferenceRequestCount"} <= set(families)
    assert "Requests4XX" not in families and "HandlerTime" not in families
    assert sample(families, "InferenceRequestCount", Hostname="h") == 1


def test_unreadable_metrics_yaml_falls_back_to_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("ts_metrics: [1, 2]\n")
    assert load_metrics_config(str(tmp_path / "bad.yaml")) == load_metrics_config(None)
    assert load_metrics_config(str(tmp_path / "missing.yaml")) == load_metrics_config(None)
    with pytest.raises(ValueError):
        parse_metrics_yaml("model_metrics:\n  gauge:\n    - unit: ms\n")


def test_forward_output_hands_metric_lines_over(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    async def run() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"hello\n[METRICS]A.ms:1|#|#hostname:h,1\nINFO > [METRICS]B.ms:1|#|#hostname:h,1\nbye\n")
        reader.feed_eof()
        await forward_output(reader, "W-1-m_1.0-stdout", seen.append)

    with caplog.at_level("INFO", logger="MODEL_LOG"):
        asyncio.run(run())
    assert seen == ["[METRICS]A.ms:1|#|#hostname:h,1", "INFO > [METRICS]B.ms:1|#|#hostname:h,1"]
    assert [r.getMessage() for r in caplog.records] == [
        "W-1-m_1.0-stdout MODEL_LOG - hello",
        "W-1-m_1.0-stdout MODEL_LOG - bye",
    ]


# -- metric log files ---------------------------------------------------------------------------------------------


def test_metric_log_file_is_written_by_its_task_and_rolls(tmp_path: Path) -> None:
    log = MetricLog(flush_seconds=0.05)
    path = tmp_path / "metrics" / "ts_metrics.log"
    log.open(path)

    async def queued() -> None:
        log.start()
        log.write("Requests2XX.Count:1.0|#Level:Host|#hostname:h")
        assert path.read_text() == ""  # queued until the task flushes it
        await asyncio.sleep(0.2)

    asyncio.run(queued())
    assert re.fullmatch(r"\S+ - Requests2XX.Count:1.0\|#Level:Host\|#hostname:h,timestamp:\d+\n", path.read_text())
    log.roll_bytes = 10
    log.write("second")
    log.flush()
    assert path.read_text() == ""
    assert "second" in (tmp_path / "metrics" / "ts_metrics.log.1").read_text()
    log.write("third")
    log.close()  # flushes, and rolls again
    assert "third" in (tmp_path / "metrics" / "ts_metrics.log.1").read_text()
    assert "second" in (tmp_path / "metrics" / "ts_metrics.log.2").read_text()


# -- host metrics -------------------------------------------------------------------------------------------------


def test_system_sampler_reads_proc(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n")
    (tmp_path / "meminfo").write_text(
        "MemTotal: 4194304 kB\nMemFree: 1048576 kB\nMemAvailable: 2097152 kB\nBuffers: 0 kB\n"
        "Cached: 524288 kB\nSReclaimable: 524288 kB\nHugePages_Total: 0\n"
    )
    sampler = SystemSampler(proc=tmp_path, disk=str(tmp_path))
    first = sampler.sample()
    assert first["CPUUtilization"] == 20.0  # since boot: 200 busy of 1000
    assert (first["MemoryUsed"], first["MemoryAvailable"], first["MemoryUtilization"]) == (2048.0, 2048.0, 50.0)
    assert 0 <= first["DiskUtilization"] <= 100 and first["DiskAvailable"] > 0
    (tmp_path / "stat").write_text("cpu  400 0 100 900 100 0 0 0 0 0\n")
    assert sampler.sample()["CPUUtilization"] == 60.0  # since the last sample: 300 busy of 500
    assert SystemSampler(proc=tmp_path / "missing", disk=str(tmp_path / "missing")).sample() == {}


def test_system_metrics_follow_the_mode() -> None:
    values = {"CPUUtilization": 12.5, "DiskAvailable": 3.0}
    metrics, _, _ = server("prometheus")
    metrics.record_system(values)
    assert sample(parsed(metrics), "CPUUtilization", Level="Host", Hostname=HOST) == 12.5
    metrics, ts_log, _ = server("legacy")
    metrics.record_system(values)
    assert "CPUUtilization" not in metrics.exposition()
    assert [line.split(" - ", 1)[1].rsplit(",timestamp:", 1)[0] for line in ts_log.lines()] == [
        f"CPUUtilization.Percent:12.5|#Level:Host|#hostname:{HOST}",
        f"DiskAvailable.Gigabytes:3.0|#Level:Host|#hostname:{HOST}",
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([0.0, 1.0, 2.0, 3.0, 1e7, 1e-3]), st.floats(0, 1e12)), min_size=1))
def test_log_lines_spell_values_as_java_does(values: list[float]) -> None:
    log = MetricLog(memory=[])
    series = LogSeries(log, "QueueTime", "Milliseconds", [("Level", "Host")], "h")
    for value in values:
        series.update(value)
    lines = log.lines()
    assert [line.split(" - ", 1)[1].split("|")[0] for line in lines] == [
        f"QueueTime.Milliseconds:{java_double(value)}" for value in values
    ]


def test_log_lines_spell_an_int_value_as_the_double_java_writes() -> None:
    log = MetricLog(memory=[])
    series = LogSeries(log, "QueueTime", "Milliseconds", [("Level", "Host")], "h")
    for value in (5, 0, 12345678):
        series.update(value)  # type: ignore[arg-type]  # a handler's or a plugin's int
    assert [line.split(" - ", 1)[1].split("|")[0] for line in log.lines()] == [
        "QueueTime.Milliseconds:5.0",
        "QueueTime.Milliseconds:0.0",
        "QueueTime.Milliseconds:1.2345678E7",
    ]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**10), st.sampled_from([1, 10, 100, 1000]))
def test_whole_thousandths_are_spelled_with_the_shortest_digits(count: int, per: int) -> None:
    """Latencies to 0.001 us, PredictionTime to 0.01 ms, whole milliseconds: spelled from integers, as repr would."""
    value = count / per
    log = MetricLog(memory=[])
    LogSeries(log, "Latency", "Microseconds", [], "h").update(value)
    assert log.lines()[0].split(" - ", 1)[1].split("|")[0] == f"Latency.Microseconds:{java_double(value)}"


def test_lines_piling_up_are_formatted_at_the_next_turn_not_the_next_tick(tmp_path: Path) -> None:
    """Under load the lines of a whole tick formatted at once held every answer ready meanwhile: a chunk of
    CHUNK_LINES is formatted as soon as the loop turns, and the timer alone hands the file to the OS."""
    log = MetricLog(flush_seconds=30.0)
    path = tmp_path / "ts_metrics.log"
    log.open(path)
    series = LogSeries(log, "Requests2XX", "Count", [("Level", "Host")], "h")

    async def run() -> tuple[int, int, int]:
        log.start()
        for _ in range(CHUNK_LINES - 1):
            series.update(1.0)
        await asyncio.sleep(0)
        waiting_below = len(log.pending()[2])  # fewer than a chunk: they wait for the tick
        series.update(1.0)
        await asyncio.sleep(0)
        waiting_after = len(log.pending()[2])
        on_disk = len(path.read_text().splitlines())  # formatted into the file object, not yet handed over
        return waiting_below, waiting_after, on_disk

    assert asyncio.run(run()) == (CHUNK_LINES - 1, 0, 0)
    log.close()  # the last flush hands everything over
    lines = path.read_text().splitlines()
    assert len(lines) == CHUNK_LINES and all("Requests2XX.Count:1.0|#Level:Host|#hostname:h," in x for x in lines)


def test_the_tick_hands_written_chunks_to_the_os(tmp_path: Path) -> None:
    log = MetricLog(flush_seconds=0.05)
    path = tmp_path / "ts_metrics.log"
    log.open(path)
    series = LogSeries(log, "Requests2XX", "Count", [("Level", "Host")], "h")

    async def run() -> int:
        log.start()
        for _ in range(CHUNK_LINES):
            series.update(1.0)
        await asyncio.sleep(0.3)
        return len(path.read_text().splitlines())

    assert asyncio.run(run()) == CHUNK_LINES
    log.close()


def test_a_roll_that_fails_leaves_the_log_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename refused (a full disk, a read-only directory) is reported; later lines still reach the file instead of
    a closed one (which failed every later write, and ended the timer task)."""
    log = MetricLog(memory=None, roll_bytes=10)
    path = tmp_path / "ts_metrics.log"
    log.open(path)
    log.write("first")

    def refuse(source: object, target: object) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        log.flush()
    monkeypatch.undo()
    log.write("second")
    log.flush()  # rolls now
    log.close()
    assert "second" in (tmp_path / "ts_metrics.log.1").read_text() + path.read_text()


def test_lines_piling_up_after_the_loop_closed_wait_for_a_flush(tmp_path: Path) -> None:
    """A log started on a loop that ended without close(): the chunk is not scheduled on the closed loop (which
    raised out of the series' update), the lines wait for a flush."""
    log = MetricLog(memory=[])

    async def started() -> None:
        log.start()

    asyncio.run(started())
    series = LogSeries(log, "Requests2XX", "Count", [("Level", "Host")], "h")
    for _ in range(CHUNK_LINES + 1):
        series.update(1.0)
    assert len(log.lines()) == CHUNK_LINES + 1
