"""Unchanged TorchServe handlers with the real ``torchserve`` 0.12.0 package importable in the workers (as while
migrating): streaming through its own ``send_intermediate_predict_response``, its ``Context``, ``ts.metrics`` and
``PredictionException``, a ``BaseHandler`` subclass, and its ``kserve``/``kservev2`` request envelopes.

The package comes from the registry once (``pip install --no-deps --target`` into pytest's cache directory); the
test is skipped, saying why, only when pip cannot fetch it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.server import EXAMPLE_MODELS, ROOT, TEST_MODELS, RunningServer, start_server
from workers.ts_compat import SHIM_DIR

pytestmark = pytest.mark.e2e

TORCHSERVE = "torchserve==0.12.0"
V2_REQUEST = {"id": "r1", "inputs": [{"name": "input-0", "shape": [3], "datatype": "FP32", "data": [0, 100, 37]}]}


@pytest.fixture(scope="session")
def real_torchserve(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding TorchServe 0.12.0's ``ts`` package (its dependencies are ours or torch's already)."""
    cache = getattr(request.config, "cache", None)
    target = Path(cache.mkdir("torchserve-0.12.0")) if cache is not None else tmp_path_factory.mktemp("torchserve")
    version = target / "ts" / "version.txt"
    if not (version.is_file() and version.read_text().strip() == "0.12.0"):
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target", str(target)]
        done = subprocess.run([*command, TORCHSERVE], capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"pip could not fetch {TORCHSERVE}: {done.stderr.strip()[-600:]}")
    return target


def with_real_ts(real_torchserve: Path, *front: Path) -> dict[str, str]:
    paths = [*map(str, front), str(real_torchserve), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def write_scaler_weights(model_dir: Path) -> None:
    """``model.pt`` for the BaseHandler subclass: TorchScript of ``y = 2x + 1``."""
    script = (
        "import sys, torch\n"
        "lin = torch.nn.Linear(1, 1)\n"
        "with torch.no_grad():\n"
        "    lin.weight.fill_(2.0); lin.bias.fill_(1.0)\n"
        "torch.jit.save(torch.jit.script(lin), sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(model_dir / "model.pt")], check=True, timeout=300)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, real_torchserve: Path) -> RunningServer:
    tmp = tmp_path_factory.mktemp("real_ts")
    scaler = tmp / "tsbase_source"
    shutil.copytree(TEST_MODELS / "tsbase", scaler)
    write_scaler_weights(scaler)
    sources = {
        "streamer": TEST_MODELS / "streamer",
        "tsreal": TEST_MODELS / "tsreal",
        "tsbase": scaler,
        "linear_v2": EXAMPLE_MODELS / "linear",
        "linear_v1": EXAMPLE_MODELS / "linear",
    }
    plain = {"minWorkers": 1, "serviceEnvelope": ""}
    models = {
        "streamer": {"1.0": plain},
        "tsreal": {"1.0": {**plain, "batchSize": 2, "maxBatchDelay": 50}},
        "tsbase": {"1.0": plain},
        "linear_v2": {"1.0": {"minWorkers": 1, "batchSize": 1}},  # the global service_envelope: kservev2
        "linear_v1": {"1.0": {"minWorkers": 1, "batchSize": 1, "serviceEnvelope": "kserve", "protocol": "kserve"}},
    }
    properties = {
        "service_envelope": "kservev2",
        "load_models": ",".join(f"{name}={name}" for name in sources),
        "models": json.dumps(models),
        "metrics_mode": "prometheus",
        "model_metrics_auto_detect": "true",
    }
    running = start_server(tmp, sources, properties, env=with_real_ts(real_torchserve))
    yield running
    assert running.stop() == 0


def post(server: RunningServer, path: str, **kwargs) -> requests.Response:
    return requests.post(server.inference + path, timeout=60, **kwargs)


def test_a_streaming_handler_streams_through_the_real_send_intermediate_predict_response(server: RunningServer) -> None:
    with post(server, "/predictions/streamer", json={"count": 3}, stream=True) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Transfer-Encoding"] == "chunked"
        pieces = list(response.raw.read_chunked(decode_content=False))
    assert pieces == [b"piece-0;", b"piece-1;", b"piece-2;", b"end"]


def test_the_handler_gets_the_real_context_class_and_its_setters_work(
    server: RunningServer, real_torchserve: Path
) -> None:
    response = post(server, "/predictions/tsreal", json={"op": "hello"}, headers={"x-probe": "p-1"})
    assert (response.status_code, response.reason) == (201, "Made"), response.text
    assert response.headers["x-ts-version"] == "0.12.0"
    answer = response.json()
    assert Path(answer["ts_file"]).resolve() == (real_torchserve / "ts" / "__init__.py").resolve()
    assert answer["context_is_ts_context"] is True
    assert answer["probe"] == "p-1" and answer["request_id"]


def test_the_real_prediction_exception_gives_its_status_and_message(server: RunningServer) -> None:
    response = post(server, "/predictions/tsreal", json={"op": "fail"})
    assert response.status_code == 418
    assert response.json()["message"] == "tsreal refuses"
    assert post(server, "/predictions/tsreal", json={"op": "hello"}).status_code == 201  # still serving


def test_metrics_of_context_metrics_and_of_the_real_caching_metric_reach_the_metrics_api(
    server: RunningServer,
) -> None:
    assert post(server, "/predictions/tsreal", json={"op": "hello"}).status_code == 201
    text = requests.get(f"{server.metrics}/metrics", timeout=10).text
    for name in ("TsRealCalls", "TsRealRows", "TsRealDirect"):
        assert any(line.startswith(name + "{") for line in text.splitlines()), (name, text[-3000:])


def test_a_handler_derived_from_the_real_base_handler_serves(server: RunningServer) -> None:
    response = post(server, "/predictions/tsbase", json=3)
    assert response.status_code == 200, response.text
    assert response.json() == [7.0]


def test_the_real_kservev2_envelope_answers_v2_requests(server: RunningServer) -> None:
    for path in ("/predictions/linear_v2", "/v2/models/linear_v2/infer"):
        response = post(server, path, json=V2_REQUEST)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["id"], body["model_name"], body["model_version"]) == ("r1", "linear", "1.0")
        [output] = body["outputs"]
        assert output["name"] == "input-0"  # TorchServe 0.12's envelope names each output after its input
        assert output["shape"] == [3] and output["data"] == pytest.approx([32.0, 212.0, 98.6])


def test_the_real_kserve_envelope_answers_v1_requests(server: RunningServer) -> None:
    response = post(server, "/v1/models/linear_v1:predict", json={"instances": [{"data": [0, 100]}, {"data": [37]}]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[32.0, 212.0], [98.6]]}


def test_the_shim_first_on_pythonpath_does_not_shadow_the_real_package(real_torchserve: Path) -> None:
    script = "import ts.context, ts.launcher; print(ts.context.__file__); print(ts.launcher.__file__)"
    env = {**os.environ, **with_real_ts(real_torchserve, SHIM_DIR, ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for line in done.stdout.split():
        assert real_torchserve.resolve() in Path(line).resolve().parents
