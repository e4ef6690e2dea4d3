"""Config snapshots with the real CLI: written at startup, after management calls and at shutdown; restored on restart.

The harness in tests/server.py always passes ``--ncs``, so these tests launch the CLI themselves, the way an
operator does: ``./config.properties`` in the working directory, no ``--ts-config``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from modelserver.properties import parse_properties
from tests.e2e.test_management import KIT_HANDLER, build_mar
from tests.server import RunningServer, _wait_started, free_port

pytestmark = pytest.mark.e2e

SNAPSHOT_NAME = re.compile(r"\d{17}-(startup|snapshot|shutdown)\.cfg")


def prepare(tmp: Path) -> dict[str, str]:
    """A working directory with ./config.properties and a model store holding kit 1.0 and 2.0."""
    store = tmp / "model_store"
    store.mkdir()
    build_mar(store, "kit", KIT_HANDLER)
    build_mar(store, "kit", KIT_HANDLER, version="2.0", file_name="kit_v2")
    ports = {key: free_port() for key in ("inference", "management", "metrics")}
    addresses = {f"{key}_address": f"http://127.0.0.1:{port}" for key, port in ports.items()}
    (tmp / "config.properties").write_text(
        "".join(f"{k}={v}\n" for k, v in addresses.items()) + "model_store=model_store\n"
    )
    return addresses


def launch(tmp: Path, addresses: dict[str, str], *args: str, log_name: str = "server.log") -> RunningServer:
    log = tmp / log_name
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelserver", "--start", "--foreground", "--disable-token-auth", *args],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = RunningServer(
        process=process,
        workdir=tmp,
        inference=addresses["inference_address"],
        management=addresses["management_address"],
        metrics=addresses["metrics_address"],
        log=log,
    )
    _wait_started(server)
    return server


def snapshots(tmp: Path) -> list[Path]:
    directory = tmp / "logs" / "config"
    return sorted(directory.glob("*.cfg")) if directory.is_dir() else []


def model_snapshot(path: Path) -> dict:
    return json.loads(parse_properties(path.read_text(encoding="utf-8"))["model_snapshot"])


def test_restart_restores_models_versions_workers_and_defaults(tmp_path: Path) -> None:
    addresses = prepare(tmp_path)
    first = launch(tmp_path, addresses, "--enable-model-api")
    management = first.management
    params = {"url": "kit.mar", "initial_workers": 2, "batch_size": 4, "max_batch_delay": 30}
    assert requests.post(f"{management}/models", params=params, timeout=60).status_code == 200
    assert requests.post(f"{management}/models", params={"url": "kit_v2.mar"}, timeout=60).status_code == 200
    assert requests.put(f"{management}/models/kit/2.0/set-default", timeout=10).status_code == 200
    assert first.stop() == 0

    written = snapshots(tmp_path)
    assert all(SNAPSHOT_NAME.fullmatch(path.name) for path in written)
    kinds = [SNAPSHOT_NAME.fullmatch(path.name)[1] for path in written]  # type: ignore[index]
    assert kinds[0] == "startup" and kinds[-1] == "shutdown" and kinds.count("snapshot") >= 3
    saved = model_snapshot(written[-1])
    assert saved["name"] == written[-1].name and saved["modelCount"] == 2
    assert saved["models"]["kit"]["1.0"] == {
        "defaultVersion": False,
        "marName": "kit.mar",
        "minWorkers": 2,
        "maxWorkers": 2,
        "batchSize": 4,
        "maxBatchDelay": 30,
        "responseTimeout": 120,
        "startupTimeout": 120,
        "runtimeType": "python",
    }
    assert saved["models"]["kit"]["2.0"]["defaultVersion"] is True
    properties = parse_properties(written[-1].read_text(encoding="utf-8"))
    assert properties["management_address"] == management and properties["enable_model_api"] == "true"

    second = launch(tmp_path, addresses, log_name="restart.log")
    try:
        assert "Restored 2 model version(s)" in second.logs()
        assert second.describe("kit")[0]["modelVersion"] == "2.0", "the default version is restored"
        restored = {d["modelVersion"]: d for d in second.describe("kit", "all")}
        one = restored["1.0"]
        assert (one["batchSize"], one["maxBatchDelay"], one["minWorkers"], one["maxWorkers"]) == (4, 30, 2, 2)
        assert one["loadedAtStartup"] is True
        assert (restored["2.0"]["minWorkers"], restored["2.0"]["workers"]) == (0, [])
        _wait_version_ready(second, "kit", "1.0", workers=2)
        reply = requests.post(f"{second.inference}/predictions/kit/1.0", json={"op": "echo"}, timeout=30)
        assert reply.status_code == 200 and reply.json()["batch"] == 1
    finally:
        assert second.stop() == 0


def _wait_version_ready(server: RunningServer, model: str, version: str, workers: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [w["status"] for w in server.describe(model, version)[0]["workers"]]
        if len(states) == workers and set(states) == {"READY"}:
            return
        time.sleep(0.05)
    raise TimeoutError(server.logs()[-3000:])


def test_no_snapshots_with_ncs(tmp_path: Path) -> None:
    addresses = prepare(tmp_path)
    server = launch(tmp_path, addresses, "--ncs", "--enable-model-api")
    response = requests.post(f"{server.management}/models", params={"url": "kit.mar"}, timeout=60)
    assert response.status_code == 200
    assert server.stop() == 0
    assert snapshots(tmp_path) == []


def test_a_snapshot_whose_archive_is_gone_stops_the_start(tmp_path: Path) -> None:
    addresses = prepare(tmp_path)
    server = launch(tmp_path, addresses, "--enable-model-api")
    response = requests.post(f"{server.management}/models", params={"url": "kit_v2.mar"}, timeout=60)
    assert response.status_code == 200
    assert server.stop() == 0
    (tmp_path / "model_store" / "kit_v2.mar").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "modelserver", "--start", "--foreground", "--disable-token-auth"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Model archive file for model :kit, version :2.0 not found in model store" in result.stderr


def test_ts_config_wins_over_snapshots(tmp_path: Path) -> None:
    addresses = prepare(tmp_path)
    server = launch(tmp_path, addresses, "--enable-model-api")
    assert requests.post(f"{server.management}/models", params={"url": "kit.mar"}, timeout=60).status_code == 200
    assert server.stop() == 0
    again = launch(tmp_path, addresses, "--ts-config", "config.properties", log_name="explicit.log")
    try:
        assert requests.get(f"{again.management}/models", timeout=10).json() == {"models": []}
    finally:
        assert again.stop() == 0
