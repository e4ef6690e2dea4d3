"""The metrics port against the real server: counters move by the right amounts, TorchServe's text format, modes."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from modelserver.metrics import SYSTEM_METRICS
from tests.server import TEST_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e

METERED_HANDLER = '''
def handle(data, context):
    """Echoes, and reports a declared counter, TorchServe's HandlerTime and an undeclared percentage."""
    if data is None:
        return None
    context.metrics.add_counter("DeclaredCount", len(data))
    context.metrics.add_time("HandlerTime", 1.5, None, "ms")
    context.metrics.add_percent("UndeclaredPercent", 50)
    return [row.get("body", row.get("data")) for row in data]
'''

METRICS_YAML = """
dimensions:
  - &model_name "ModelName"
  - &level "Level"
  - &hostname "Hostname"
ts_metrics:
  counter:
    - {name: Requests2XX, unit: Count, dimensions: [*level, *hostname]}
    - {name: Requests4XX, unit: Count, dimensions: [*level, *hostname]}
    - {name: Requests5XX, unit: Count, dimensions: [*level, *hostname]}
    - {name: ts_inference_requests_total, unit: Count, dimensions: [model_name, model_version, hostname]}
    - {name: ts_inference_latency_microseconds, unit: Microseconds, dimensions: [model_name, model_version, hostname]}
    - {name: ts_queue_latency_microseconds, unit: Microseconds, dimensions: [model_name, model_version, hostname]}
  gauge:
    - {name: QueueTime, unit: Milliseconds, dimensions: [*level, *hostname]}
    - {name: WorkerThreadTime, unit: Milliseconds, dimensions: [*level, *hostname]}
    - {name: WorkerLoadTime, unit: Milliseconds, dimensions: [WorkerName, *level, *hostname]}
    - {name: CPUUtilization, unit: Percent, dimensions: [*level, *hostname]}
    - {name: MemoryUsed, unit: Megabytes, dimensions: [*level, *hostname]}
    - {name: MemoryAvailable, unit: Megabytes, dimensions: [*level, *hostname]}
    - {name: MemoryUtilization, unit: Percent, dimensions: [*level, *hostname]}
    - {name: DiskUsage, unit: Gigabytes, dimensions: [*level, *hostname]}
    - {name: DiskUtilization, unit: Percent, dimensions: [*level, *hostname]}
    - {name: DiskAvailable, unit: Gigabytes, dimensions: [*level, *hostname]}
model_metrics:
  counter:
    - {name: DeclaredCount, unit: count, dimensions: [*model_name, *level]}
  gauge:
    - {name: HandlerTime, unit: ms, dimensions: [*model_name, *level]}
    - {name: PredictionTime, unit: ms, dimensions: [*model_name, *level]}
"""


def metered_model(root: Path) -> Path:
    model = root / "metered"
    (model / "MAR-INF").mkdir(parents=True)
    (model / "metered_handler.py").write_text(METERED_HANDLER)
    manifest = {
        "runtime": "python",
        "model": {"modelName": "metered", "handler": "metered_handler.py", "modelVersion": "1.0"},
    }
    (model / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))
    return model


def launch(tmp: Path, properties: dict[str, str]) -> RunningServer:
    models = {"kit": TEST_MODELS / "kit", "metered": metered_model(tmp / "src")}
    return start_server(tmp / "run", models, properties=properties)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("metrics")
    (tmp / "metrics.yaml").write_text(METRICS_YAML)
    properties = {"metrics_mode": "prometheus", "metrics_config": str(tmp / "metrics.yaml"), "job_queue_size": "1"}
    running = launch(tmp, properties)
    yield running
    assert running.stop() == 0


def predict(server: RunningServer, path: str, body: Any) -> requests.Response:
    return requests.post(f"{server.inference}/predictions/{path}", json=body, timeout=30)


def scrape(server: RunningServer, *names: str) -> str:
    response = requests.get(f"{server.metrics}/metrics", params={"name[]": list(names)}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text


class Scrape:
    """One ``/metrics`` answer parsed with prometheus-client's parser; ``value`` sums the matching samples."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float:
        return sum(
            s.value
            for family in self.families.values()
            for s in family.samples
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )


def read(server: RunningServer) -> Scrape:
    return Scrape(scrape(server))


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_counters_move_by_the_right_amounts(server: RunningServer) -> None:
    before = read(server)
    for _ in range(3):
        assert predict(server, "kit", {"op": "echo"}).status_code == 200
    assert predict(server, "kit/1.0", {"op": "echo"}).status_code == 200
    assert predict(server, "nope", {"op": "echo"}).status_code == 404
    assert predict(server, "kit", {"op": "raise"}).status_code == 503
    after = read(server)

    def delta(sample: str, **labels: str) -> float:
        return after.value(sample, **labels) - before.value(sample, **labels)

    assert delta("Requests2XX_total", Level="Host") == 4 + 1  # and the first scrape itself
    assert delta("Requests4XX_total") == 1
    assert delta("Requests5XX_total") == 1
    kit_default = {"model_name": "kit", "model_version": "default"}
    assert delta("ts_inference_requests_total", **kit_default) == 4  # the failed request counts, the 404 not
    assert delta("ts_inference_requests_total", model_name="kit", model_version="1.0") == 1
    latency = delta("ts_inference_latency_microseconds_total", **kit_default)
    queued = delta("ts_queue_latency_microseconds_total", **kit_default)
    assert 0 < queued < latency < 30e6
    total = {"model_name": "kit", "model_version": "1.0", "stage": "total"}
    assert delta("modelserver_request_latency_seconds_count", **total) == 4  # successes only
    assert delta("modelserver_request_latency_seconds_sum", **total) == pytest.approx(
        (latency + delta("ts_inference_latency_microseconds_total", model_name="kit", model_version="1.0")) / 1e6
    )
    assert delta("modelserver_batch_size_count", model_name="kit", model_version="1.0") == 5
    assert after.value("QueueTime", Level="Host") >= 0
    load_times = [s for s in after.families["WorkerLoadTime"].samples if s.labels["WorkerName"].endswith("-kit_1.0")]
    assert load_times and all(s.value > 0 for s in load_times)


def test_a_full_queue_503_is_counted(server: RunningServer) -> None:
    """job_queue_size=1: one request running, one waiting, the third is refused with 503 before it is queued."""
    before = read(server)
    results: list[int] = []

    def send(body: dict[str, Any]) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.append(predict(server, "kit", body).status_code))
        thread.start()
        return thread

    admitted = before.value("ts_inference_requests_total", model_name="kit")
    slow = send({"op": "sleep", "seconds": 2})
    wait_for(lambda: read(server).value("ts_inference_requests_total", model_name="kit") > admitted)
    time.sleep(0.2)  # the slow request is on the worker now
    waiting = send({"op": "echo"})
    wait_for(lambda: read(server).value("modelserver_queue_depth", model_name="kit") == 1)
    refused = predict(server, "kit", {"op": "echo"})
    assert refused.status_code == 503
    slow.join(30)
    waiting.join(30)
    assert sorted(results) == [200, 200]
    after = read(server)
    kit = {"model_name": "kit", "model_version": "default"}
    assert after.value("ts_inference_requests_total", **kit) - before.value("ts_inference_requests_total", **kit) == 3
    assert after.value("Requests5XX_total") - before.value("Requests5XX_total") == 1
    assert after.value("modelserver_queue_depth", model_name="kit") == 0


def test_worker_death_is_a_5xx_and_a_restart(server: RunningServer) -> None:
    before = read(server)
    assert predict(server, "kit", {"op": "exit"}).status_code == 500
    wait_for(lambda: read(server).value("modelserver_worker_restarts_total", model_name="kit") == 1, timeout=20)
    server.wait_ready(["kit"])
    after = read(server)
    assert after.value("Requests5XX_total") - before.value("Requests5XX_total") == 1
    assert before.value("modelserver_worker_restarts_total", model_name="kit") == 0
    assert predict(server, "kit", {"op": "echo"}).status_code == 200


def test_inflight_streams(server: RunningServer) -> None:
    with requests.post(
        f"{server.inference}/predictions/kit", json={"op": "stream", "pause": 0.5}, stream=True, timeout=30
    ) as response:
        chunks = response.iter_content(chunk_size=None)
        assert next(chunks) == b"hello"
        assert read(server).value("modelserver_inflight_streams", model_name="kit") == 1
        assert b"".join(chunks) == b"hellohellohello world "
    wait_for(lambda: read(server).value("modelserver_inflight_streams", model_name="kit") == 0)


def test_backend_metrics_declared_in_the_metrics_config(server: RunningServer) -> None:
    metered = {"ModelName": "metered", "Level": "Model"}
    before = read(server).value("DeclaredCount_total", **metered)
    for _ in range(2):
        assert predict(server, "metered", {"x": 1}).status_code == 200
    wait_for(lambda: read(server).value("DeclaredCount_total", **metered) == before + 2)
    current = read(server)
    assert current.value("HandlerTime", **metered) == 1.5
    assert current.value("PredictionTime", **metered) > 0
    assert "UndeclaredPercent" not in current.text  # undeclared, and model_metrics_auto_detect is off


def test_torchserve_text_format(server: RunningServer) -> None:
    assert predict(server, "kit", {"op": "echo"}).status_code == 200
    assert predict(server, "metered", {"x": 1}).status_code == 200
    wait_for(lambda: "HandlerTime{" in scrape(server))
    text = requests.post(f"{server.metrics}/metrics", timeout=10).text  # any method
    patterns = [  # TorchServe's test_metrics.py (prometheus mode), for our models
        r"TYPE Requests2XX counter",
        r'Requests2XX\{Level="Host",Hostname=".+",\} \d+\.\d+',
        r"TYPE ts_inference_requests_total counter",
        r'ts_inference_requests_total\{model_name="kit",model_version="default",hostname=".+",\} \d+\.\d+',
        r"TYPE ts_inference_latency_microseconds counter",
        r'ts_inference_latency_microseconds\{model_name="kit",model_version="default",hostname=".+",\} \d+\.\d+',
        r"TYPE ts_queue_latency_microseconds counter",
        r'ts_queue_latency_microseconds\{model_name="kit",model_version="default",hostname=".+",\} \d+\.\d+',
        r"TYPE QueueTime gauge",
        r'QueueTime\{Level="Host",Hostname=".+",\} \d+\.\d+',
        r"TYPE WorkerThreadTime gauge",
        r'WorkerThreadTime\{Level="Host",Hostname=".+",\} \d+\.\d+',
        r"TYPE WorkerLoadTime gauge",
        r'WorkerLoadTime\{WorkerName="W-\d+-kit_1.0",Level="Host",Hostname=".+",\} \d+\.\d+',
        r"TYPE HandlerTime gauge",
        r'HandlerTime\{ModelName="metered",Level="Model",Hostname=".+",\} \d+\.\d+',
        r"TYPE PredictionTime gauge",
        r'PredictionTime\{ModelName="metered",Level="Model",Hostname=".+",\} \d+\.\d+',
        r"TYPE DeclaredCount counter",
        r'DeclaredCount\{ModelName="metered",Level="Model",Hostname=".+",\} \d+\.\d+',
    ]
    for name in SYSTEM_METRICS:  # collected at startup, then every metric_time_interval
        patterns += [f"TYPE {name} gauge", name + r'\{Level="Host",Hostname=".+",\} \d+\.\d+']
    for pattern in patterns:
        assert len(re.findall(pattern, text)) == 1, pattern
    assert re.search(r"^# HELP Requests2XX Torchserve prometheus counter metric with unit: Count$", text, re.M)
    assert "Requests2XX_total" not in text and "DeclaredCount_total" not in text  # no suffix added to counters


def test_name_filter(server: RunningServer) -> None:
    text = scrape(server, "Requests2XX", "ts_inference_requests_total")
    assert {family.name for family in text_string_to_metric_families(text)} == {"Requests2XX", "ts_inference_requests"}
    assert scrape(server, "no_such_metric") == ""
    assert set(Scrape(scrape(server, "modelserver_batch_size")).families) == {"modelserver_batch_size"}


def test_no_metric_lines_in_prometheus_mode(server: RunningServer) -> None:
    logs = server.workdir / "logs"
    assert (logs / "ts_metrics.log").exists() and (logs / "model_metrics.log").exists()
    time.sleep(1.1)
    assert "Requests2XX" not in (logs / "ts_metrics.log").read_text()
    assert "HandlerTime" not in (logs / "model_metrics.log").read_text()


def test_legacy_mode(tmp_path: Path) -> None:
    running = launch(tmp_path, {"metrics_mode": "legacy", "model_metrics_auto_detect": "true"})
    try:
        assert predict(running, "kit", {"op": "echo"}).status_code == 200
        assert predict(running, "metered", {"x": 1}).status_code == 200
        current = read(running)
        assert set(current.families) == {
            "ts_inference_requests",
            "ts_inference_latency_microseconds",
            "ts_queue_latency_microseconds",
        }
        assert current.value("ts_inference_requests_total", model_name="metered", model_version="default") == 1
        ts_log = running.workdir / "logs" / "ts_metrics.log"
        model_log = running.workdir / "logs" / "model_metrics.log"
        wait_for(lambda: "UndeclaredPercent" in model_log.read_text())
        assert "Requests2XX.Count:1.0|#Level:Host|#hostname:" in ts_log.read_text()
        assert "ts_inference" not in ts_log.read_text()
    finally:
        assert running.stop() == 0


def test_log_mode(tmp_path: Path) -> None:
    running = launch(tmp_path, {})  # TorchServe's default
    try:
        assert predict(running, "metered", {"x": 1}).status_code == 200
        response = requests.get(f"{running.metrics}/metrics", timeout=10)
        assert response.status_code == 200 and response.content == b""
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        ts_log = running.workdir / "logs" / "ts_metrics.log"
        model_log = running.workdir / "logs" / "model_metrics.log"
        wait_for(lambda: "ts_queue_latency_microseconds" in ts_log.read_text())
        wait_for(lambda: "HandlerTime" in model_log.read_text())
        prefix = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{3} - "
        line = prefix + r"ts_inference_requests_total\.Count:1\.0\|#model_name:metered,model_version:default"
        assert re.search(line + r"\|#hostname:.+,timestamp:\d+$", ts_log.read_text(), re.M)
        handler = prefix + r"HandlerTime\.ms:1\.5\|#ModelName:metered,Level:Model\|#hostname:.+,requestID:.+"
        assert re.search(handler + r",timestamp:\d+$", model_log.read_text(), re.M)
        assert "DeclaredCount" not in model_log.read_text()  # not in the default metrics config
        assert "[METRICS]" not in running.logs()  # taken out of the worker's output
    finally:
        assert running.stop() == 0


def test_metrics_api_disabled(tmp_path: Path) -> None:
    running = launch(tmp_path, {"metrics_mode": "prometheus", "enable_metrics_api": "false"})
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{running.metrics}/metrics", timeout=5)
        assert predict(running, "kit", {"op": "echo"}).status_code == 200
    finally:
        assert running.stop() == 0
