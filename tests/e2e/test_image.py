"""The container image: built from the Dockerfile, started with a mounted model store, one prediction answered,
stopped with SIGTERM (exit 0 after the drain).

Needs a working container engine (``docker info`` must succeed) and is opt-in, because the build downloads torch
and takes minutes: ``MODELSERVER_IMAGE_TEST=1 python -m pytest tests/e2e/test_image.py``. Without either it is
skipped, saying which is missing. The static checks of the Dockerfile (tests/unit/test_dockerfile.py) always run.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.server import EXAMPLE_MODELS, ROOT, free_port

pytestmark = pytest.mark.e2e

IMAGE = "modelserver-test:cpu"
TOKEN = "image-test-token-0123456789"


def engine_problem() -> str | None:
    """Why no image can be built here, or None."""
    docker = shutil.which("docker")
    if docker is None:
        return "no container engine: the docker command is not installed"
    try:
        info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"no container engine: `docker info` failed ({err})"
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no container engine: `docker info` failed: {reason}"
    return None


def docker(*args: str, timeout: float = 60) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"docker {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    problem = engine_problem()
    if problem is not None:
        pytest.skip(f"image test skipped: {problem}")
    if os.environ.get("MODELSERVER_IMAGE_TEST") != "1":
        pytest.skip("image test skipped: opt-in, set MODELSERVER_IMAGE_TEST=1 (the build downloads torch: minutes)")
    docker("build", "--build-arg", "VARIANT=cpu", "-t", IMAGE, str(ROOT), timeout=1800)
    return IMAGE


@pytest.fixture
def container(image: str, tmp_path: Path) -> Iterator[str]:
    store = tmp_path / "model-store"
    shutil.copytree(EXAMPLE_MODELS / "linear", store / "linear", ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(tmp_path, 0o755)
    name = f"modelserver-test-{os.getpid()}"
    docker(
        "run", "-d", "--name", name, "-p", "127.0.0.1::8080", "-e", f"MODELSERVER_TOKEN={TOKEN}",
        "-v", f"{store}:/home/model-server/model-store:ro", image,
    )  # fmt: skip
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def test_the_image_is_cpu_only_and_unprivileged(image: str) -> None:
    assert docker("image", "inspect", "-f", "{{.Config.User}}", image) == "1000:1000"
    script = "import torch, importlib.metadata as m; print(torch.__version__, torch.version.cuda, "
    script += "[d.metadata['Name'] for d in m.distributions() if d.metadata['Name'].lower().startswith('nvidia')])"
    printed = docker("run", "--rm", "--entrypoint", "python", image, "-c", script)
    assert printed == "2.13.0+cpu None []"


def test_the_image_serves_a_mounted_store_and_drains_on_sigterm(container: str) -> None:
    port = docker("port", container, "8080/tcp").splitlines()[0].rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{url}/v2/health/ready", headers=headers, timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, docker("logs", container)
        time.sleep(0.5)
    answer = requests.post(f"{url}/predictions/linear", json=[0, 100, 37], headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == pytest.approx([32.0, 212.0, 98.6])
    ports = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Ports}}", container))
    assert set(ports) == {"8080/tcp", "8081/tcp", "8082/tcp"}  # exposed; only 8080 bound on all interfaces inside
    netstat = docker("exec", container, "cat", "/proc/net/tcp")
    listening = {line.split()[1] for line in netstat.splitlines()[1:] if line.split()[3] == "0A"}
    assert {"00000000:1F90", "0100007F:1F91", "0100007F:1F92"} <= listening  # 0.0.0.0:8080, 127.0.0.1:8081/8082
    docker("stop", "-t", "45", container, timeout=90)
    assert docker("inspect", "-f", "{{.State.ExitCode}}", container) == "0", docker("logs", container)


def _builds_wheels_offline() -> bool:
    """setuptools 70.1+ has ``bdist_wheel`` built in; an older one needs the ``wheel`` package beside it."""
    try:
        version = tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def test_the_images_install_serves_from_its_own_config_without_an_engine(tmp_path: Path) -> None:
    """What the image's build and runtime stages do, minus the engine: the build context (by .dockerignore) built
    into a wheel and installed (not editable), the image's config.properties, the entry point, a prediction and
    SIGTERM; so a packaging mistake (a file the wheel leaves out) fails here too."""
    from tests.unit.test_dockerfile import context_files

    source, site, home = tmp_path / "src", tmp_path / "site", tmp_path / "home"
    for name in context_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # the venv's setuptools builds the wheel when it can (no index needed); else pip fetches the build backend
    isolation = ["--no-build-isolation"] if _builds_wheels_offline() else []
    subprocess.run([*pip, "wheel", "--no-deps", *isolation, "-w", str(tmp_path), str(source)], check=True)
    [wheel] = tmp_path.glob("modelserver-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    shutil.copytree(EXAMPLE_MODELS / "linear", home / "model-store" / "linear")
    ports = [free_port() for _ in range(3)]
    config = (ROOT / "docker" / "config.properties").read_text().replace("/home/model-server", str(home))
    for default, port in zip((8080, 8081, 8082), ports, strict=True):
        config = config.replace(f":{default}", f":{port}").replace(f"0.0.0.0:{port}", f"127.0.0.1:{port}")
    (home / "config.properties").write_text(config)
    env = {**os.environ, "PYTHONPATH": str(site), "TMPDIR": str(tmp_path), "MODELSERVER_TOKEN": TOKEN}
    env["LOG_LOCATION"] = str(home / "logs")
    where = subprocess.run([sys.executable, "-c", "import modelserver; print(modelserver.__file__)"], env=env,
                           cwd=home, capture_output=True, text=True, check=True)  # fmt: skip
    assert where.stdout.startswith(str(site))
    command = [sys.executable, "-m", "modelserver.container", "--start", "--ts-config", str(home / "config.properties")]
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url, headers = f"http://127.0.0.1:{ports[0]}", {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            try:
                if requests.get(f"{url}/v2/health/ready", headers=headers, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        answer = requests.post(f"{url}/predictions/linear", json=[0, 100, 37], headers=headers, timeout=30)
        assert answer.json() == pytest.approx([32.0, 212.0, 98.6])
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(45) == 0
        log.close()
