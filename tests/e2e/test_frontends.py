"""``frontend_processes=2``: two frontend processes share the ports, and a user still sees one server.

The model answers with its worker's parent, the frontend process that served the request, so each test can tell the
frontends apart. Every request goes on a new connection: the kernel picks a frontend per connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from tests.e2e.test_grpc_oip import run_client
from tests.server import TEST_MODELS, RunningServer, free_port, start_server

pytestmark = pytest.mark.e2e

HANDLER = """
import os
import time


def handle(data, context):
    if data is None:
        return None
    answers = []
    for row in data:
        body = row.get("body") or row.get("data")
        if isinstance(body, dict) and body.get("sleep"):
            time.sleep(float(body["sleep"]))
        answers.append({"frontend": os.getppid(), "worker": os.getpid()})
    return answers
"""


def write_model(root: Path, name: str) -> Path:
    path = root / name
    (path / "MAR-INF").mkdir(parents=True)
    (path / "handler.py").write_text(HANDLER)
    manifest = {"runtime": "python", "model": {"modelName": name, "handler": "handler.py", "modelVersion": "1.0"}}
    (path / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))
    return path


def frontends_of(server: RunningServer) -> set[int]:
    """The supervisor's children: the frontend processes."""
    pid = server.process.pid
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def until(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what or check}")


def ready(server: RunningServer) -> bool:
    try:
        return requests.get(f"{server.inference}/v2/health/ready", timeout=10).status_code == 200
    except requests.RequestException:
        return False


def ping_status(server: RunningServer) -> int | None:
    """``/ping``'s status; None for a connection the dying frontend's socket took and reset (SO_REUSEPORT hands a
    connection to one socket; one closed before accepting it resets it)."""
    try:
        return requests.get(f"{server.inference}/ping", timeout=10).status_code
    except requests.ConnectionError:
        return None


def predict(server: RunningServer, model: str, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(f"{server.inference}/predictions/{model}", json=body or {"x": 1}, timeout=30)


def served_by(server: RunningServer, model: str, count: int = 40) -> list[int]:
    """The frontend of each of ``count`` requests, each on a connection of its own."""
    answers = [predict(server, model) for _ in range(count)]
    assert [answer.status_code for answer in answers] == [200] * count
    return [answer.json()["frontend"] for answer in answers]


def worker_parents(server: RunningServer, model: str) -> dict[int, int]:
    """Frontend pid -> how many READY workers of ``model`` it runs, from one describe call (which lists every
    frontend's workers, whichever frontend answers it)."""
    parents: dict[int, int] = {}
    for worker in server.describe(model)[0]["workers"]:
        assert worker["status"] == "READY"
        parent = int(Path(f"/proc/{worker['pid']}/stat").read_text().rsplit(")", 1)[1].split()[1])
        parents[parent] = parents.get(parent, 0) + 1
    return parents


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("frontends")
    sources = tmp_path_factory.mktemp("frontends_models")
    models = {"pid": write_model(sources, "pid")}
    (tmp / "model_store").mkdir()
    for name in ("pid2", "pid3"):  # registered through the management API later
        write_model(tmp / "model_store", name)
    shared = f"http://127.0.0.1:{free_port()}"  # management on the inference port: any frontend gets those calls
    properties = {
        "inference_address": shared,
        "management_address": shared,
        "frontend_processes": "2",
        "default_workers_per_model": "2",
        "enable_model_api": "true",
        "metrics_mode": "prometheus",
        "load_models": "pid",
    }
    running = start_server(tmp, models, properties=properties, wait_models=())
    until(lambda: ready(running), what="readiness")
    yield running
    running.stop()


def test_two_frontends_serve_and_the_kernel_spreads_the_connections(server: RunningServer) -> None:
    frontends = frontends_of(server)
    assert len(frontends) == 2
    assert set(served_by(server, "pid")) == frontends
    assert server.logs().count("Model server started.") == 1


def test_ping_and_readiness(server: RunningServer) -> None:
    for _ in range(10):
        assert requests.get(f"{server.inference}/ping", timeout=10).json() == {"status": "Healthy"}
        assert requests.get(f"{server.inference}/v2/health/ready", timeout=10).json() == {"ready": True}


def test_a_model_registered_through_one_frontend_is_served_by_both(server: RunningServer) -> None:
    url = f"{server.management}/models?url=pid2&initial_workers=2&synchronous=true"
    response = requests.post(url, timeout=60)
    assert response.status_code == 200, response.text
    assert set(served_by(server, "pid2")) == frontends_of(server)  # no 404 from the other frontend, no 503 either
    for _ in range(10):  # 2 workers, 1 per frontend, whichever frontend describes them
        assert worker_parents(server, "pid2") == dict.fromkeys(frontends_of(server), 1)


def test_scale_reaches_both_frontends(server: RunningServer) -> None:
    response = requests.put(f"{server.management}/models/pid2?min_worker=4&synchronous=true", timeout=60)
    assert response.status_code == 200, response.text
    for _ in range(10):
        assert worker_parents(server, "pid2") == dict.fromkeys(frontends_of(server), 2)
        assert server.describe("pid2")[0]["minWorkers"] == 4


def test_metrics_and_the_angel_summary_count_both_frontends(server: RunningServer) -> None:
    frontends = served_by(server, "pid2", 30)
    assert len(set(frontends)) == 2
    expected = 30 + 40  # the requests of the registration test too
    for _ in range(6):  # whichever frontend answers the scrape
        text = requests.get(f"{server.metrics}/metrics", timeout=10).text
        line = next(
            line for line in text.splitlines() if line.startswith('ts_inference_requests_total{model_name="pid2"')
        )
        assert float(line.rsplit(" ", 1)[1]) == expected
        summary = requests.get(f"{server.inference}/monitoring/prometheus/metrics", timeout=10).json()
        assert summary["models"]["pid2"]["versions"]["1.0"]["prediction_count_total"] == str(expected)


def test_unregister_reaches_both_frontends(server: RunningServer) -> None:
    assert requests.delete(f"{server.management}/models/pid2", timeout=60).status_code == 200
    statuses = {predict(server, "pid2").status_code for _ in range(30)}
    assert statuses == {404}
    assert all("pid2" not in str(requests.get(f"{server.management}/models", timeout=10).json()) for _ in range(10))


def test_a_dead_frontend_is_started_again_with_the_registered_models(server: RunningServer) -> None:
    url = f"{server.management}/models?url=pid3&initial_workers=2&synchronous=false"
    assert requests.post(url, timeout=60).status_code == 202
    until(lambda: ready(server), what="pid3 ready")
    victim = max(frontends_of(server))
    os.kill(victim, signal.SIGKILL)
    until(lambda: ping_status(server) == 500, 5, "an unhealthy ping")
    until(lambda: len(frontends_of(server) - {victim}) == 2 and ready(server), what="the restart")
    newcomer = (frontends_of(server) - {victim}).pop()
    assert newcomer in set(served_by(server, "pid3"))
    assert requests.get(f"{server.inference}/ping", timeout=10).json() == {"status": "Healthy"}
    assert "Frontend 1 exited with signal 9; starting it again" in server.logs()


def test_stop_drains_in_flight_requests_in_both_frontends(server: RunningServer) -> None:
    results: list[requests.Response | BaseException] = []

    def slow() -> None:
        try:
            results.append(predict(server, "pid", {"sleep": 0.5}))
        except requests.RequestException as err:
            results.append(err)

    threads = [threading.Thread(target=slow) for _ in range(16)]  # one worker per frontend: 8 queue behind it
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # every request reached its frontend by now
    env = {**os.environ, "TMPDIR": str(server.workdir)}
    stop = subprocess.Popen([sys.executable, "-m", "modelserver", "--stop"], env=env, stdout=subprocess.PIPE, text=True)
    assert server.process.wait(60) == 0  # reaped here: --stop waits until the pid is gone
    out, _ = stop.communicate(timeout=30)
    for thread in threads:
        thread.join(30)
    assert out.strip() == "TorchServe has stopped."
    assert [getattr(result, "status_code", result) for result in results] == [200] * 16
    assert len({result.json()["frontend"] for result in results}) == 2  # type: ignore[union-attr]
    assert not any(Path(f"/proc/{pid}").exists() for pid in {r.json()["frontend"] for r in results})  # type: ignore[union-attr]


def test_grpc_apis_on_both_frontends(tmp_path: Path) -> None:
    """TorchServe's gRPC APIs on ports both frontends bind: the generated clients' whole checks pass (a scale to 2
    workers is described with 2 workers, one in each frontend)."""
    pytest.importorskip("grpc_tools")
    inference, management = free_port(), free_port()
    properties = {
        "frontend_processes": "2",
        "load_models": "tsgrpc=tsgrpc",
        "enable_model_api": "true",
        "grpc_inference_port": str(inference),
        "grpc_management_port": str(management),
    }
    models = {"tsgrpc": TEST_MODELS / "tsgrpc", "mirror": TEST_MODELS / "mirror"}
    running = start_server(tmp_path, models, properties=properties, wait_models=())
    try:
        until(lambda: ready(running), what="readiness")
        run_client("torchserve", f"127.0.0.1:{inference}")
        run_client("torchserve-management", f"127.0.0.1:{management}")
    finally:
        assert running.stop() == 0


def test_a_frontend_that_cannot_start_stops_the_start(tmp_path: Path) -> None:
    """A port another process holds (without SO_REUSEPORT): the frontends cannot bind it, and the start fails as a
    single process's would, instead of running a server with missing frontends."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = f"http://127.0.0.1:{blocker.getsockname()[1]}"
        with pytest.raises(RuntimeError, match="server exited with 1") as failed:
            start_server(tmp_path, {}, {"frontend_processes": "2", "inference_address": taken}, wait_models=())
    assert "before the server started: stopping" in str(failed.value)


def test_a_unix_socket_address_is_served_by_frontend_0(tmp_path: Path) -> None:
    path = tmp_path / "inference.sock"
    properties = {"frontend_processes": "2", "inference_address": f"unix:{path}", "load_models": "pid"}
    running = start_server(tmp_path, {"pid": write_model(tmp_path / "sources", "pid")}, properties, wait_models=())
    try:

        async def call() -> tuple[int, Any]:
            connector = aiohttp.UnixConnector(path=str(path))
            async with aiohttp.ClientSession(connector=connector) as session:
                for _ in range(100):
                    async with session.get("http://localhost/v2/health/ready") as response:
                        if response.status == 200:
                            break
                    await asyncio.sleep(0.1)
                async with session.post("http://localhost/predictions/pid", json={"x": 1}) as response:
                    return response.status, json.loads(await response.read())

        status, answer = asyncio.run(call())
        assert status == 200
        found = re.search(r"Frontend 0 of 2, pid (\d+)", running.logs())
        assert found is not None and answer["frontend"] == int(found[1])
        assert "Inference API on unix:" in running.logs() and "served by frontend 0" in running.logs()
    finally:
        assert running.stop() == 0


def test_snapshots_are_written_once(tmp_path: Path) -> None:
    store = tmp_path / "model_store"
    store.mkdir()
    write_model(store, "late")
    sources = tmp_path / "sources"
    properties = {"frontend_processes": "2", "enable_model_api": "true", "load_models": "early"}
    running = start_server(
        tmp_path, {"early": write_model(sources, "early")}, properties, wait_models=(), snapshots=True
    )
    try:
        until(lambda: ready(running), what="readiness")
        assert requests.post(f"{running.management}/models?url=late&synchronous=true", timeout=60).status_code == 200
    finally:
        assert running.stop() == 0
    names = sorted(path.name.split("-", 1)[1] for path in (tmp_path / "logs" / "config").glob("*.cfg"))
    assert names == ["shutdown.cfg", "snapshot.cfg", "startup.cfg"]
    last = max((tmp_path / "logs" / "config").glob("*-snapshot.cfg")).read_text()
    assert '\\"late\\"' in last or '"late"' in last


def test_one_set_of_keys_for_both_frontends(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    running = start_server(
        tmp_path / "server",
        {"pid": write_model(sources, "pid")},
        {"frontend_processes": "2"},
        wait_models=(),
        auth=True,
    )
    try:
        ping = f"{running.inference}/ping"
        until(lambda: requests.get(ping, headers=running.headers("inference"), timeout=10).status_code == 200)
        old = running.headers("inference")
        assert {requests.get(ping, headers=old, timeout=10).status_code for _ in range(20)} == {200}
        token = f"{running.management}/token?type=inference"
        assert requests.get(token, headers=running.headers("API"), timeout=10).status_code == 200
        new = running.headers("inference")
        assert new != old
        assert {requests.get(ping, headers=new, timeout=10).status_code for _ in range(20)} == {200}
        assert {requests.get(ping, headers=old, timeout=10).status_code for _ in range(20)} == {400}
    finally:
        assert running.stop() == 0
    assert not (tmp_path / "server" / "key_file.json").exists()
