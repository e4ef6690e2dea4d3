"""A KServe model script started as a process: ``ModelServer().start([model])`` with one worker (the model in the
server's process, never blocking it) and with several (worker processes, each building its own model)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.server import ROOT, TEST_MODELS, free_port

pytestmark = pytest.mark.e2e
SCRIPT = TEST_MODELS / "kscript" / "serve.py"


def start_script(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[str], str, Path]:
    port = free_port()
    log = tmp_path / "script.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--http_port", str(port), "--grpc_port", str(free_port())]
            + ["--model_name", "multiplier", *flags],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(f"{url}/v1/models/multiplier", timeout=1).status_code == 200:
                return process, url, log
        except requests.RequestException:
            pass
        time.sleep(0.05)
    process.kill()
    raise TimeoutError(log.read_text())


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(30)


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    process, url, log = start_script(tmp_path)
    yield url, log, process
    if process.poll() is None:
        process.kill()


def test_the_script_serves_kserve_v1_and_v2_routes(one_worker) -> None:
    url, log, process = one_worker
    assert requests.get(f"{url}/", timeout=10).json() == {"status": "alive"}
    answer = requests.post(f"{url}/v1/models/multiplier:predict", json={"instances": [1, 2]}, timeout=10).json()
    assert answer["predictions"] == [3, 6] and answer["pid"] == process.pid  # the script's own object
    assert requests.get(f"{url}/v2/health/ready", timeout=10).json() == {"ready": True}
    missing = requests.post(f"{url}/v1/models/nope:predict", json={}, timeout=10)
    assert (missing.status_code, missing.json()) == (404, {"error": "Model with name nope does not exist."})
    v2 = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]}
    refused = requests.post(f"{url}/v2/models/multiplier/infer", json=v2, timeout=10)
    assert (refused.status_code, refused.json()) == (501, {"error": "this model speaks V1 only"})
    assert requests.get(f"{url}/metrics", timeout=10).status_code == 200
    assert stop(process) == 0
    assert f"model multiplier stopped in {process.pid}" in log.read_text()


def test_a_registered_model_that_is_not_ready_is_answered_503(one_worker) -> None:
    """KServe's ``TestTFHttpServerModelNotReady``: a model registered with ``register_model`` while not ready is
    listed, has metadata, and every readiness or inference route answers 503 for it."""
    url, _, process = one_worker
    assert "resting" in requests.get(f"{url}/v1/models", timeout=10).json()["models"]
    assert requests.get(f"{url}/v2/models/resting", timeout=10).status_code == 200
    v2 = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]}
    for method, path, body in [
        ("GET", "/v1/models/resting", None),
        ("GET", "/v2/models/resting/ready", None),
        ("POST", "/v1/models/resting:predict", {"instances": [1]}),
        ("POST", "/v1/models/resting:explain", {"instances": [1]}),
        ("POST", "/v2/models/resting/infer", v2),
    ]:
        answer = requests.request(method, f"{url}{path}", json=body, timeout=10)
        assert (answer.status_code, answer.json()) == (503, {"error": "Model with name resting is not ready."}), path
    assert stop(process) == 0


def test_the_repository_extension_loads_through_the_scripts_model_repository(one_worker) -> None:
    url, log, process = one_worker
    load = requests.post(f"{url}/v2/repository/models/extra/load", timeout=10)
    assert (load.status_code, load.json()) == (200, {"name": "extra", "load": True})
    answer = requests.post(f"{url}/v1/models/extra:predict", json={"instances": [2]}, timeout=10).json()
    assert answer["predictions"] == [20]
    unload = requests.post(f"{url}/v2/repository/models/extra/unload", timeout=10)
    assert (unload.status_code, unload.json()) == (200, {"name": "extra", "unload": True})
    assert requests.get(f"{url}/v1/models/extra", timeout=10).status_code == 404
    assert f"model extra stopped in {process.pid}" in log.read_text()
    assert stop(process) == 0


def test_a_synchronous_model_never_blocks_the_server(one_worker) -> None:
    url, _, process = one_worker
    slow = threading.Thread(
        target=requests.post,
        args=(f"{url}/v1/models/multiplier:predict",),
        kwargs={"json": {"instances": [1], "sleep": 1.5}, "timeout": 10},
    )
    slow.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert requests.get(f"{url}/v2/health/live", timeout=10).json() == {"live": True}
    assert requests.get(f"{url}/v1/models/multiplier", timeout=10).json() == {"name": "multiplier", "ready": True}
    assert time.monotonic() - started < 0.5  # answered while the model sleeps
    slow.join()
    assert stop(process) == 0


def test_several_workers_are_processes_that_build_the_model_as_the_script_did(tmp_path: Path) -> None:
    process, url, log = start_script(tmp_path, "--workers", "2")
    try:
        pids = set()
        answers = []

        def call() -> None:
            body = {"instances": [5], "sleep": 0.3}
            answers.append(requests.post(f"{url}/v1/models/multiplier:predict", json=body, timeout=30).json())

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pids = {answer["pid"] for answer in answers}
        assert all(answer["predictions"] == [15] for answer in answers)  # factor=3, as the script built it
        assert len(pids) == 2 and process.pid not in pids
    finally:
        assert stop(process) == 0


def test_the_script_serves_the_open_inference_protocol_over_grpc(tmp_path: Path) -> None:
    """``ModelServer(enable_grpc=True, grpc_port=...)``: Triton's and KServe's gRPC clients on the script's port."""
    http_port, grpc_port = free_port(), free_port()
    log = tmp_path / "script.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    script = TEST_MODELS / "kscript" / "grpc_serve.py"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(script), "--http_port", str(http_port), "--grpc_port", str(grpc_port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "OIP gRPC API bound to" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        for kind in ("script-triton", "script-kserve"):
            done = subprocess.run(
                [sys.executable, "-m", "tests.grpc_clients", kind, f"127.0.0.1:{grpc_port}"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr
    finally:
        assert stop(process) == 0, log.read_text()
