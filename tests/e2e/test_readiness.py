"""``/v2/health/ready`` as a Kubernetes readiness probe: ready only when every startup model can answer.

A model loaded at startup in two versions: 1.0 (the default, what ``/predictions/{m}`` serves) never finishes
loading, 2.0 (the latest, what KServe's routes serve) loads at once. The pod must not be ready while the default
version cannot answer; ``/ping`` (the liveness probe) stays healthy, since loading is not failing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from tests.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

SLOW = """
import time


def handle(data, context):
    time.sleep(3600)
"""

FAST = """
def handle(data, context):
    return None if data is None else ["2.0" for _ in data]
"""


def write_model(root: Path, folder: str, version: str, source: str) -> Path:
    path = root / folder
    (path / "MAR-INF").mkdir(parents=True)
    (path / "handler.py").write_text(source)
    manifest = {"runtime": "python", "model": {"modelName": "twover", "handler": "handler.py", "modelVersion": version}}
    (path / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("readiness")
    sources = tmp_path_factory.mktemp("readiness_models")
    models = {
        "twover_a": write_model(sources, "a", "1.0", SLOW),
        "twover_b": write_model(sources, "b", "2.0", FAST),
    }
    running = start_server(tmp, models, properties={"load_models": "twover_a,twover_b"}, wait_models=())
    yield running
    assert running.stop() == 0


def status(server: RunningServer, path: str) -> int:
    return requests.get(f"{server.inference}{path}", timeout=10).status_code


def test_not_ready_while_the_default_version_of_a_startup_model_is_loading(server: RunningServer) -> None:
    deadline = time.monotonic() + 60
    while status(server, "/v2/models/twover/versions/2.0/ready") != 200:
        assert time.monotonic() < deadline, server.logs()[-3000:]
        time.sleep(0.1)
    assert status(server, "/v2/models/twover/ready") == 200  # the latest version alone is ready ...
    response = requests.get(f"{server.inference}/v2/health/ready", timeout=10)
    assert (response.status_code, response.json()) == (503, {"error": "Server is not ready."})  # ... the server not
    assert status(server, "/ping") == 200  # alive: a liveness probe must not restart a pod that is loading


def test_ready_once_the_loading_version_is_scaled_to_no_workers_on_purpose(server: RunningServer) -> None:
    scaled = requests.put(f"{server.management}/models/twover/1.0?min_worker=0&max_worker=0", timeout=30)
    assert scaled.status_code == 202, scaled.text  # TorchServe answers a scale without synchronous=true so
    deadline = time.monotonic() + 30
    while status(server, "/v2/health/ready") != 200:
        assert time.monotonic() < deadline, server.logs()[-3000:]
        time.sleep(0.1)
    assert requests.get(f"{server.inference}/v2/health/ready", timeout=10).json() == {"ready": True}
