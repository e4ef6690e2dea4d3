"""The KServe ServingRuntime of ``deploy/kserve/`` run as KServe runs it: the container's args and env from the
manifest, the storage-initializer layout (``config/config.properties`` + ``model-store/*.mar``) with the example
config written the way KServe's TorchServe examples write theirs, and one prediction per protocol version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.server import EXAMPLE_MODELS, ROOT, _die_with_test_runner, free_port

pytestmark = pytest.mark.e2e

KSERVE = ROOT / "deploy" / "kserve"
MOUNT = "/mnt/models"
ARCHIVE_COMMAND = (
    "model-archiver --model-name linear --version 1.0 --handler linear_handler.py --extra-files weights.json "
    "--config-file model-config.yaml --export-path <dir>/model-store"
)


def runtime_container() -> dict:
    runtime = yaml.safe_load((KSERVE / "cluster-serving-runtime.yaml").read_text())
    [container] = runtime["spec"]["containers"]
    return container


def storage(tmp: Path) -> Path:
    """What the storage initializer leaves in /mnt/models, under ``tmp``."""
    root = tmp / "mnt" / "models"
    (root / "config").mkdir(parents=True)
    (root / "model-store").mkdir()
    config = (KSERVE / "config.properties").read_text().replace(MOUNT, str(root))
    (root / "config" / "config.properties").write_text(config)
    archive = ARCHIVE_COMMAND.replace("<dir>", str(root)).split()  # docs/deployment.md's command
    subprocess.run([sys.executable, "-m", "modelserver.model_archiver", *archive[1:]], cwd=EXAMPLE_MODELS / "linear",
                   check=True)  # fmt: skip
    return root


def container_args(root: Path, ports: dict[str, int]) -> list[str]:
    """The manifest's args, the mount path and ports moved to this test's (the ports' hosts kept)."""
    args = []
    for arg in runtime_container()["args"]:
        arg = arg.replace(MOUNT, str(root))
        for old, key in ((":8080", "inference"), (":8081", "management"), (":8082", "metrics")):
            if arg.startswith("--") and arg.endswith(old):
                arg = arg[: -len(old)].replace("0.0.0.0", "127.0.0.1") + f":{ports[key]}"
        args.append(arg)
    return args


class Pod:
    def __init__(self, tmp: Path, envelope: str) -> None:
        root = storage(tmp)
        self.ports = {key: free_port() for key in ("inference", "management", "metrics")}
        self.url = f"http://127.0.0.1:{self.ports['inference']}"
        self.log = tmp / "server.log"
        env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
        for item in runtime_container()["env"]:
            env[item["name"]] = item["value"].replace("{{.Labels.serviceEnvelope}}", envelope)
        command = [sys.executable, "-m", "modelserver.container", *container_args(root, self.ports)]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                command, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_test_runner
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()  # in the foreground: a detached start exits
            try:
                if requests.get(f"{self.url}/v2/health/ready", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise TimeoutError(self.log.read_text()[-4000:])

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)  # what the kubelet sends
        return self.process.wait(40)


@pytest.fixture(params=["kserve", "kservev2"])
def pod(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Pod]]:
    running = Pod(tmp_path, request.param)
    try:
        running.wait_ready()
        yield request.param, running
    finally:
        assert running.stop() == 0


def test_the_archive_command_is_the_documented_one() -> None:
    documented = " ".join((ROOT / "docs" / "deployment.md").read_text().split())
    assert f"`{ARCHIVE_COMMAND}`" in documented


def test_every_arg_of_the_runtime_reaches_the_cli() -> None:
    from modelserver.cli import build_parser
    from modelserver.container import server_args

    args = server_args(runtime_container()["args"])
    assert args is not None and "--foreground" in args
    parsed = build_parser().parse_args(args)
    assert (parsed.start, parsed.disable_token_auth, parsed.model_store, parsed.ts_config) == (
        True,
        True,
        "/mnt/models/model-store",
        "/mnt/models/config/config.properties",
    )
    assert (parsed.inference_address, parsed.management_address, parsed.metrics_address) == (
        "http://0.0.0.0:8080",
        "http://127.0.0.1:8081",
        "http://0.0.0.0:8082",
    )


def test_a_mar_store_answers_kserve_v1_or_v2_through_the_runtime(pod: tuple[str, Pod]) -> None:
    envelope, running = pod
    if envelope == "kserve":
        response = requests.post(
            f"{running.url}/v1/models/linear:predict", json={"instances": [{"data": [0, 100]}]}, timeout=30
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [[32.0, 212.0]]}
    else:
        tensor = {"name": "input-0", "shape": [2], "datatype": "FP32", "data": [0, 100]}
        response = requests.post(f"{running.url}/v2/models/linear/infer", json={"inputs": [tensor]}, timeout=30)
        assert response.status_code == 200, response.text
        [output] = response.json()["outputs"]
        assert output["data"] == pytest.approx([32.0, 212.0])
    assert requests.get(f"{running.url}/ping", timeout=10).json() == {"status": "Healthy"}
    metrics = requests.get(f"http://127.0.0.1:{running.ports['metrics']}/metrics", timeout=10)
    assert "ts_inference_requests_total" in metrics.text  # the prometheus.kserve.io/port annotation's port
