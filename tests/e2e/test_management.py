"""TorchServe's management API against the real CLI: every call, its parameters, messages and status codes.

Archives are built with our model-archiver from the test handlers. Downloads go to a local aiohttp "sink" server
on 127.0.0.1 that records every request, so a refused URL can be shown to cause no request at all.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from aiohttp import web
from openapi_spec_validator import validate

from tests.server import TEST_MODELS, RunningServer, free_port, start_server

pytestmark = pytest.mark.e2e

KIT_HANDLER = TEST_MODELS / "kit" / "kit_handler.py"

DESCRIBER = """
from ts.torch_handler.base_handler import BaseHandler


class Describer(BaseHandler):
    def initialize(self, context):
        self.initialized = True
        self.name = context.model_name

    def describe_handle(self):
        return {"about": self.name, "labels": ["cat", "dog"]}
"""

BROKEN = """
class NeverLoads:
    def initialize(self, context):
        raise RuntimeError("this model never loads")

    def handle(self, data, context):
        return data
"""

HUNGRY = """
class Hungry:
    def initialize(self, context):
        raise MemoryError("no memory for this model")

    def handle(self, data, context):
        return data
"""


# -- archives ------------------------------------------------------------------------------------


def build_mar(export: Path, name: str, handler: Path, version: str = "1.0", file_name: str | None = None) -> Path:
    """``python -m modelserver.model_archiver``: ``<export>/<file_name or name>.mar``."""
    work = export / f".build-{name}-{version}"
    work.mkdir(parents=True)
    command = [sys.executable, "-m", "modelserver.model_archiver", "--model-name", name, "--handler", str(handler)]
    subprocess.run([*command, "-v", version, "--export-path", str(work)], check=True, capture_output=True)
    target = export / f"{file_name or name}.mar"
    (work / f"{name}.mar").rename(target)
    work.rmdir()
    return target


def write_handler(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


# -- the sink ------------------------------------------------------------------------------------


class Sink:
    """An aiohttp server on 127.0.0.1, in its own thread: serves files and redirects, records every request."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.raw_path)
        if request.path in self.redirects:
            return web.Response(status=302, headers={"Location": self.redirects[request.path]})
        if request.path in self.files:
            return web.Response(body=self.files[request.path], content_type="application/octet-stream")
        return web.Response(status=404, text="no such file")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> Sink:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def saw(self, fragment: str) -> bool:
        return any(fragment in path for path in self.requests)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    running = Sink().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Archives kept outside the model store: what the sink serves and file:// URLs point at."""
    directory = tmp_path_factory.mktemp("outside")
    build_mar(directory, "kit", KIT_HANDLER, file_name="kit_dl")
    build_mar(directory, "kit", KIT_HANDLER, file_name="kit_file")
    return directory


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sink: Sink, outside: Path) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("management")
    store = tmp / "model_store"
    store.mkdir()
    handlers = tmp / "handlers"
    build_mar(store, "kit", KIT_HANDLER)
    build_mar(store, "kit", KIT_HANDLER, version="2.0", file_name="kit_v2")
    build_mar(store, "kit", KIT_HANDLER, version="3.0", file_name="kit_v3")
    build_mar(store, "kit", KIT_HANDLER, version="1.11", file_name="kit_v1_11")
    build_mar(store, "kit", KIT_HANDLER, version="1.2.1", file_name="kit_v1_2_1")
    build_mar(store, "describer", write_handler(handlers, "describer.py", DESCRIBER))
    build_mar(store, "broken", write_handler(handlers, "broken.py", BROKEN))
    build_mar(store, "hungry", write_handler(handlers, "hungry.py", HUNGRY))
    sink.files["/models/kit_dl.mar"] = (outside / "kit_dl.mar").read_bytes()
    sink.redirects["/models/hop.mar"] = "/models/kit_dl.mar"
    sink.redirects["/models/escape.mar"] = f"{sink.url}/secret/kit_dl.mar"
    allowed = [
        rf"http://127\.0\.0\.1:{sink.port}/models/.*",
        r"http://169\.254\.169\.254/.*",
        r"http://\[fe80::1\]/.*",
        r"http://0\.0\.0\.0:.*",
        r"file://.*",
    ]
    # A properties file drops a lone backslash: each regex backslash is written twice.
    properties = {"load_models": "", "allowed_urls": ",".join(allowed).replace("\\", "\\\\")}
    running = start_server(tmp, {}, properties=properties, cli=["--enable-model-api"], wait_models=[])
    yield running
    assert running.stop() == 0


@pytest.fixture(autouse=True)
def clean(server: RunningServer) -> Iterator[None]:
    """Every test starts with no model registered, even after a failed one."""
    yield
    for entry in call(server, "GET", "/models").json()["models"]:
        name = entry["modelName"]
        default = server.describe(name)[0]["modelVersion"]
        versions = [d["modelVersion"] for d in call(server, "GET", f"/models/{name}/all").json()]
        for version in [v for v in versions if v != default] + [default]:
            unregister(server, name, version)


def call(server: RunningServer, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, server.management + path, timeout=60, **kwargs)


def register(server: RunningServer, **params) -> requests.Response:
    return call(server, "POST", "/models", params=params)


def unregister(server: RunningServer, model: str, version: str = "") -> requests.Response:
    return call(server, "DELETE", f"/models/{model}" + (f"/{version}" if version else ""))


def assert_error(response: requests.Response, code: int, message: str, type_name: str | None = None) -> None:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["code"] == code
    assert body["message"] == message
    if type_name is not None:
        assert body["type"] == type_name


def assert_status(response: requests.Response, code: int, message: str) -> None:
    assert response.status_code == code, response.text
    assert response.json() == {"status": message}


def workdirs(server: RunningServer) -> set[str]:
    return {p.name for p in server.workdir.iterdir() if p.name.startswith("modelserver-")}


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


# -- register --------------------------------------------------------------------------------------


def test_register_synchronously_from_the_store(server: RunningServer) -> None:
    before = workdirs(server)
    response = register(server, url="kit.mar", initial_workers=1)
    assert_status(response, 200, 'Model "kit" Version: 1.0 registered with 1 initial workers')
    [description] = server.describe("kit")
    assert description["modelUrl"] == "kit.mar"
    assert description["loadedAtStartup"] is False
    assert [w["status"] for w in description["workers"]] == ["READY"]
    reply = requests.post(f"{server.inference}/predictions/kit", json={"op": "echo"}, timeout=30)
    assert reply.status_code == 200
    assert len(workdirs(server) - before) == 1
    assert_status(unregister(server, "kit"), 200, 'Model "kit" unregistered')
    assert workdirs(server) == before, "unregistering must delete the unpacked archive"
    assert call(server, "GET", "/models/kit").status_code == 404


def test_register_asynchronously(server: RunningServer) -> None:
    response = register(server, url="kit.mar", initial_workers=2, synchronous="false")
    assert_status(response, 202, "Processing worker updates...")
    server.wait_ready(["kit"])
    assert len(server.worker_pids("kit")) == 2
    assert_status(unregister(server, "kit"), 200, 'Model "kit" unregistered')


def test_register_with_zero_workers(server: RunningServer) -> None:
    response = register(server, url="kit.mar", initial_workers=0)
    assert_status(
        response,
        200,
        'Model "kit" Version: 1.0 registered with 0 initial workers. '
        "Use scale workers API to add workers for the model.",
    )
    [description] = server.describe("kit")
    assert description["workers"] == []
    assert (description["minWorkers"], description["maxWorkers"]) == (0, 0)
    assert call(server, "GET", "/v1/models/kit").json() == {"name": "kit", "ready": False}
    unregister(server, "kit")


def test_register_with_a_json_body_and_settings(server: RunningServer) -> None:
    body = {"url": "kit.mar", "model_name": "kitjson", "initial_workers": 1, "batch_size": 4, "max_batch_delay": 30}
    response = call(server, "POST", "/models", json=body)
    assert_status(response, 200, 'Model "kitjson" Version: 1.0 registered with 1 initial workers')
    [description] = server.describe("kitjson")
    assert (description["batchSize"], description["maxBatchDelay"]) == (4, 30)
    assert (description["minWorkers"], description["maxWorkers"]) == (1, 1)
    unregister(server, "kitjson")


@pytest.mark.parametrize(
    "body",
    [
        "{'url': 'kit.mar', 'model_name': 'lenient', 'initial_workers': 0}",
        "{url: kit.mar, model_name: lenient, initial_workers: 0,}",
        "{url = 'kit.mar'; model_name => 'lenient'; initial_workers = 0 # Gson reads comments too\n}",
    ],
)
def test_register_with_a_lenient_json_body_as_gson_reads_it(server: RunningServer, body: str) -> None:
    response = call(server, "POST", "/models", data=body, headers={"Content-Type": "application/json"})
    assert_status(response, 200, 'Model "lenient" Version: 1.0 registered with 0 initial workers. '
                  "Use scale workers API to add workers for the model.")  # fmt: skip
    unregister(server, "lenient")


def test_broken_json_body_is_a_bad_request(server: RunningServer) -> None:
    response = call(server, "POST", "/models", data="{'url': ", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["message"].startswith("Invalid JSON body")


def test_startup_timeout_zero_fails_the_registration_and_rolls_it_back(server: RunningServer) -> None:
    response = register(server, url="kit.mar", initial_workers=3, startup_timeout=0)
    assert_error(response, 500, "Failed to start workers for model kit version: 1.0", "InternalServerException")
    assert call(server, "GET", "/models/kit").status_code == 404
    logs = server.logs()
    assert "Number or consecutive unsuccessful inference" in logs
    assert "Backend worker error" in logs
    assert "WorkerInitializationException: Backend worker did not respond in given time" in logs
    assert register(server, url="kit.mar", initial_workers=1).status_code == 200, "the name is free again"
    unregister(server, "kit")


def test_all_versions_are_listed_in_version_order(server: RunningServer) -> None:
    for url in ("kit_v1_11.mar", "kit_v1_2_1.mar", "kit_v2.mar"):
        assert register(server, url=url, initial_workers=0).status_code == 200
    versions = [d["modelVersion"] for d in call(server, "GET", "/models/kit/all").json()]
    assert versions == ["1.2.1", "1.11", "2.0"]


def test_register_twice_is_a_conflict(server: RunningServer) -> None:
    assert register(server, url="kit.mar", initial_workers=0).status_code == 200
    before = workdirs(server)
    response = register(server, url="kit.mar", initial_workers=0)
    assert_error(response, 409, "Model version 1.0 is already registered for model kit", "ConflictStatusException")
    assert workdirs(server) == before, "the refused registration must not leave its unpacked archive behind"
    unregister(server, "kit")


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({}, 400, "Parameter url is required."),
        ({"url": "kit.mar", "runtime": "java"}, 400, "Invalid RuntimeType value: java"),
        ({"url": ""}, 404, "empty url"),
        ({"url": "missing.mar"}, 404, "Model not found at: missing.mar"),
        ({"url": "../model_store/kit.mar"}, 404, "Relative path is not allowed in url: ../model_store/kit.mar"),
        ({"url": "https://a.io/k.mar"}, 404, "Given URL https://a.io/k.mar does not match any allowed URL(s)"),
    ],
)  # fmt: skip
def test_register_errors(server: RunningServer, params: dict, code: int, message: str) -> None:
    assert_error(register(server, **params), code, message)


def test_synchronous_load_failure_unregisters_the_model(server: RunningServer) -> None:
    before = workdirs(server)
    response = register(server, url="broken.mar", initial_workers=1)
    assert_error(response, 500, "Failed to start workers for model broken version: 1.0", "InternalServerException")
    assert call(server, "GET", "/models/broken").status_code == 404
    assert workdirs(server) == before


def test_synchronous_memory_error_is_507(server: RunningServer) -> None:
    response = register(server, url="hungry.mar", initial_workers=1)
    assert_error(response, 507, "Failed to start workers for model hungry version: 1.0")
    assert call(server, "GET", "/models/hungry").status_code == 404


# -- versions, default version, unregister ---------------------------------------------------------


def test_versions_default_and_unregister_rules(server: RunningServer) -> None:
    assert register(server, url="kit.mar", initial_workers=0).status_code == 200
    assert register(server, url="kit_v2.mar", initial_workers=0).status_code == 200
    assert [d["modelVersion"] for d in call(server, "GET", "/models/kit/all").json()] == ["1.0", "2.0"]
    assert server.describe("kit")[0]["modelVersion"] == "1.0"

    assert_error(
        unregister(server, "kit"), 403, "Cannot remove default version for model kit", "InvalidModelVersionException"
    )
    assert_error(unregister(server, "kit", "1.0"), 403, "Cannot remove default version for model kit")
    assert_error(
        unregister(server, "kit", "9.9"),
        404,
        "Model version: 9.9 does not exist for model: kit",
        "ModelVersionNotFoundException",
    )
    assert_error(unregister(server, "nope"), 404, "Model not found: nope")

    response = call(server, "PUT", "/models/kit/2.0/set-default")
    assert_status(response, 200, 'Default version successfully updated for model "kit" to "2.0"')
    assert server.describe("kit")[0]["modelVersion"] == "2.0"
    assert_error(
        call(server, "PUT", "/models/kit/9.9/set-default"), 404, "Model version 9.9 does not exist for model kit"
    )
    assert_error(call(server, "PUT", "/models/nope/1.0/set-default"), 404, "Model not found: nope")

    assert_status(unregister(server, "kit", "1.0"), 200, 'Model "kit" unregistered')
    assert_status(unregister(server, "kit"), 200, 'Model "kit" unregistered')
    assert call(server, "GET", "/models/kit").status_code == 404


def test_list_models_paginates_like_torchserve(server: RunningServer) -> None:
    for name in ("alpha", "beta", "gamma"):
        assert register(server, url="kit.mar", model_name=name, initial_workers=0).status_code == 200
    assert register(server, url="kit_v2.mar", model_name="alpha", initial_workers=0).status_code == 200
    everything = call(server, "GET", "/models").json()
    assert [m["modelName"] for m in everything["models"]] == ["alpha", "beta", "gamma"]
    assert everything["models"][0] == {"modelName": "alpha", "modelUrl": "kit.mar"}
    assert "nextPageToken" not in everything
    first = call(server, "GET", "/models", params={"limit": 2}).json()
    assert first["nextPageToken"] == "2"
    assert [m["modelName"] for m in first["models"]] == ["alpha", "beta"]
    last = call(server, "GET", "/models", params={"limit": 2, "next_page_token": 2}).json()
    assert [m["modelName"] for m in last["models"]] == ["gamma"] and "nextPageToken" not in last
    assert call(server, "GET", "/models", params={"next_page_token": 10}).json() == {"models": []}
    assert len(call(server, "GET", "/models", params={"limit": "x", "next_page_token": -3}).json()["models"]) == 3
    for name in ("beta", "gamma"):
        unregister(server, name)
    unregister(server, "alpha", "2.0")
    unregister(server, "alpha")


# -- scale and describe ----------------------------------------------------------------------------


def test_scale_up_and_down_seen_through_describe(server: RunningServer) -> None:
    assert register(server, url="kit.mar", initial_workers=1).status_code == 200
    [first] = server.worker_pids("kit")
    response = call(server, "PUT", "/models/kit", params={"min_worker": 3, "synchronous": "true"})
    assert_status(response, 200, "Workers scaled to 3 for model: kit")
    [description] = server.describe("kit")
    assert (description["minWorkers"], description["maxWorkers"]) == (3, 3)
    pids = [w["pid"] for w in description["workers"] if w["status"] == "READY"]
    assert len(set(pids)) == 3 and first in pids

    response = call(server, "PUT", "/models/kit/1.0", params={"min_worker": 1, "synchronous": "true"})
    assert_status(response, 200, "Workers scaled to 1 for model: kit, version: 1.0")
    assert server.worker_pids("kit") == [first]
    for pid in set(pids) - {first}:
        wait_for(lambda pid=pid: not pid_alive(pid))

    assert_status(call(server, "PUT", "/models/kit", params={"min_worker": 2}), 202, "Processing worker updates...")
    server.wait_ready(["kit"])
    assert len(server.worker_pids("kit")) == 2
    unregister(server, "kit")


def test_scale_between_min_and_max_keeps_the_workers(server: RunningServer) -> None:
    assert register(server, url="kit.mar", initial_workers=2).status_code == 200
    response = call(server, "PUT", "/models/kit", params={"min_worker": 1, "max_worker": 3, "synchronous": "true"})
    assert response.status_code == 200
    [description] = server.describe("kit")
    assert (description["minWorkers"], description["maxWorkers"], len(description["workers"])) == (1, 3, 2)
    unregister(server, "kit")


def test_scale_errors(server: RunningServer) -> None:
    assert register(server, url="kit.mar", initial_workers=0).status_code == 200
    bad = call(server, "PUT", "/models/kit", params={"min_worker": 3, "max_worker": 2})
    assert_error(bad, 400, "max_worker cannot be less than min_worker.", "BadRequestException")
    assert call(server, "PUT", "/models/kit", params={"max_worker": -1}).status_code == 400
    assert call(server, "PUT", "/models/kit", params={"min_worker": -1}).status_code == 500
    assert_error(call(server, "PUT", "/models/nope"), 404, "Model not found: nope")
    assert_error(
        call(server, "PUT", "/models/kit/9.9"),
        404,
        "Model version: 9.9 does not exist for model: kit",
        "ModelVersionNotFoundException",
    )
    assert_error(
        call(server, "GET", "/models/kit/9.9"),
        404,
        "Model version: 9.9 does not exist for model: kit",
        "ModelVersionNotFoundException",
    )
    unregister(server, "kit")


def test_scale_failure_reports_the_worker_status(server: RunningServer) -> None:
    assert register(server, url="broken.mar", initial_workers=0).status_code == 200
    response = call(server, "PUT", "/models/broken", params={"min_worker": 1, "synchronous": "true"})
    assert_error(response, 500, "Failed to start workers for model broken version: null")
    unregister(server, "broken")


def test_customized_describe_runs_describe_handle(server: RunningServer) -> None:
    assert register(server, url="describer.mar", initial_workers=1).status_code == 200
    [plain] = call(server, "GET", "/models/describer").json()
    assert "customizedMetadata" not in plain
    [custom] = call(server, "GET", "/models/describer", params={"customized": "true"}).json()
    assert custom["customizedMetadata"] == {"about": "describer", "labels": ["cat", "dog"]}
    assert custom["modelName"] == "describer"
    [every] = call(server, "GET", "/models/describer/all", params={"customized": "true"}).json()
    assert "customizedMetadata" not in every
    call(server, "PUT", "/models/describer", params={"min_worker": 0, "synchronous": "true"})
    response = call(server, "GET", "/models/describer/1.0", params={"customized": "true"})
    assert_error(
        response,
        503,
        'Model "describer" has no worker to serve describe request. Please use scale workers API to add workers.',
    )
    unregister(server, "describer")


def test_kserve_ready_options_and_wrong_methods(server: RunningServer) -> None:
    assert register(server, url="kit.mar", initial_workers=1).status_code == 200
    assert call(server, "GET", "/v1/models/kit").json() == {"name": "kit", "ready": True}
    assert_error(call(server, "GET", "/v1/models/nope"), 404, "Model not found: nope")
    document = call(server, "OPTIONS", "/models/kit").json()
    assert document["openapi"] == "3.0.1"
    assert document["info"] == {"title": "RESTful Management API for: kit", "version": "0.12.0"}  # as TorchServe's
    assert all(path.startswith("/models/{model_name}") for path in document["paths"])
    validate(document)  # the component schemas its operations refer to come along
    assert document["paths"]["/models/{model_name}"]["get"]["operationId"] == "describeModel"
    assert call(server, "OPTIONS", "/models/nope").status_code == 404
    for method, path in (("PUT", "/models"), ("POST", "/models/kit")):
        response = call(server, method, path)
        assert_error(response, 405, "Requested method is not allowed, please refer to API document.")
    unregister(server, "kit")


# -- downloads -------------------------------------------------------------------------------------


def test_register_by_http_url_downloads_into_the_store(server: RunningServer, sink: Sink) -> None:
    url = f"{sink.url}/models/kit_dl.mar"
    store = server.workdir / "model_store"
    response = register(server, url=url, model_name="downloaded", initial_workers=1)
    assert_status(response, 200, 'Model "downloaded" Version: 1.0 registered with 1 initial workers')
    assert (store / "kit_dl.mar").is_file()
    assert server.describe("downloaded")[0]["modelUrl"] == url
    again = register(server, url=url, model_name="again")
    assert_error(again, 500, "Model file already exists kit_dl.mar", "InternalServerException")
    assert_status(unregister(server, "downloaded"), 200, 'Model "downloaded" unregistered')
    assert not (store / "kit_dl.mar").exists(), "unregistering deletes the downloaded archive"
    assert not [p for p in store.iterdir() if p.name.endswith(".part")]


def test_redirects_are_followed_and_rechecked(server: RunningServer, sink: Sink) -> None:
    store = server.workdir / "model_store"
    response = register(server, url=f"{sink.url}/models/hop.mar", model_name="hopped", initial_workers=0)
    assert response.status_code == 200, response.text
    assert (store / "hop.mar").is_file()
    unregister(server, "hopped")

    sink.requests.clear()
    escape = register(server, url=f"{sink.url}/models/escape.mar", model_name="escaped")
    assert_error(escape, 404, f"Given URL {sink.url}/secret/kit_dl.mar does not match any allowed URL(s)")
    assert sink.saw("/models/escape.mar") and not sink.saw("/secret")
    assert not (store / "escape.mar").exists()


def test_refused_urls_cause_no_request(server: RunningServer, sink: Sink) -> None:
    sink.requests.clear()
    store_before = sorted(p.name for p in (server.workdir / "model_store").iterdir())
    cases = [
        (f"{sink.url}/secret/kit_dl.mar", 404, "does not match any allowed URL(s)"),
        (f"{sink.url}/models/%2e%2e/secret/kit_dl.mar", 404, "Relative path is not allowed in url"),
        (f"{sink.url}/models/%252e%252e/kit_dl.mar", 404, "Relative path is not allowed in url"),
        (f"{sink.url}/models/../secret/kit_dl.mar", 404, "Relative path is not allowed in url"),
        ("http://169.254.169.254/latest/meta-data/imds.mar", 400, "link-local, metadata"),
        ("http://[fe80::1]/ll.mar", 400, "link-local, metadata"),
        (f"http://0.0.0.0:{sink.port}/models/kit_dl.mar", 400, "link-local, metadata"),
    ]
    for url, code, fragment in cases:
        response = register(server, url=url, model_name="refused")
        assert response.status_code == code, (url, response.text)
        assert fragment in response.json()["message"]
    assert sink.requests == []
    assert sorted(p.name for p in (server.workdir / "model_store").iterdir()) == store_before


def test_failed_download_leaves_nothing(server: RunningServer, sink: Sink) -> None:
    store = server.workdir / "model_store"
    url = f"{sink.url}/models/absent.mar"
    assert_error(register(server, url=url), 400, f"Failed to download archive from: {url}")  # TorchServe's text
    assert f"Failed to download archive from: {url}: HTTP 404" in server.logs()  # the reason goes to the log
    assert not (store / "absent.mar").exists()
    assert not [p for p in store.iterdir() if p.name.startswith(".")]


def test_register_by_file_url_copies_into_the_store(server: RunningServer, outside: Path) -> None:
    store = server.workdir / "model_store"
    url = (outside / "kit_file.mar").as_uri()
    response = register(server, url=url, model_name="filed", initial_workers=0)
    assert response.status_code == 200, response.text
    assert (store / "kit_file.mar").is_file()
    unregister(server, "filed")
    assert not (store / "kit_file.mar").exists()
    assert (outside / "kit_file.mar").is_file(), "the source of a file:// URL is never touched"


def test_file_url_to_a_non_archive_is_refused_and_cleaned(server: RunningServer, tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0::/root:/bin/sh\n")
    response = register(server, url=secret.as_uri())
    assert response.status_code == 400, response.text
    assert not (server.workdir / "model_store" / "passwd").exists()


# -- model API disabled ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("locked")
    running = start_server(tmp, {"kit": TEST_MODELS / "kit"})
    yield running
    assert running.stop() == 0


def test_register_and_unregister_need_the_model_api(locked: RunningServer) -> None:
    message = "Requested method is not allowed, please refer to API document."
    assert_error(register(locked, url="kit"), 405, message, "MethodNotAllowedException")
    assert_error(unregister(locked, "kit"), 405, message)
    assert_error(unregister(locked, "kit", "1.0"), 405, message)
    assert call(locked, "GET", "/models/kit").status_code == 200
    response = call(locked, "PUT", "/models/kit", params={"min_worker": 2, "synchronous": "true"})
    assert_status(response, 200, "Workers scaled to 2 for model: kit")
