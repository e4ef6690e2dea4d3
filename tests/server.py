"""Start the real ``modelserver`` CLI on free ports, wait until it answers, stop it by PID.

Token authorization is off (``--disable-token-auth``) unless a test asks for it with ``auth=True``; then the
harness's own management calls carry the management key from the server's ``key_file.json``.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
TEST_MODELS = ROOT / "tests" / "models"
EXAMPLE_MODELS = ROOT / "examples" / "model_store"


def _die_with_test_runner() -> None:
    """In the child before exec: a server outlives no killed pytest (Linux ``PR_SET_PDEATHSIG``)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait until process ``pid`` no longer exists (or ``timeout`` passes; the caller asserts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    workdir: Path
    inference: str
    management: str
    metrics: str
    log: Path
    extra: dict[str, str] = field(default_factory=dict)
    auth: bool = False

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def keys(self) -> dict:
        """The server's ``key_file.json`` (token authorization on)."""
        return json.loads((self.workdir / "key_file.json").read_text())

    def headers(self, scope: str) -> dict[str, str]:
        """``Authorization: Bearer <key>`` for ``management``, ``inference`` or ``API``; none with auth off."""
        return {"Authorization": f"Bearer {self.keys()[scope]['key']}"} if self.auth else {}

    def describe(self, model: str, version: str = "") -> list[dict]:
        url = f"{self.management}/models/{model}" + (f"/{version}" if version else "")
        return requests.get(url, headers=self.headers("management"), timeout=10).json()

    def worker_pids(self, model: str) -> list[int]:
        return [w["pid"] for w in self.describe(model)[0]["workers"] if w["status"] == "READY"]

    def wait_ready(self, models: Iterable[str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = set(models)
        while pending and time.monotonic() < deadline:
            for model in list(pending):
                try:
                    workers = self.describe(model)[0]["workers"]
                except (requests.RequestException, ValueError, KeyError, IndexError):
                    continue
                if workers and all(w["status"] == "READY" for w in workers):
                    pending.discard(model)
            time.sleep(0.05)
        if pending:
            raise TimeoutError(f"models not ready: {pending}\n{self.logs()[-4000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(
    tmp: Path,
    models: Mapping[str, Path],
    properties: Mapping[str, str] | None = None,
    cli: Iterable[str] = (),
    wait_models: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
    auth: bool = False,
    snapshots: bool = False,
) -> RunningServer:
    """Copy ``models`` into a fresh model store and start the CLI with a generated config.properties.

    ``auth=False`` (the default) starts with ``--disable-token-auth``; ``snapshots=False`` with ``--ncs``.
    """
    store = tmp / "model_store"
    store.mkdir(parents=True, exist_ok=True)
    for name, source in models.items():
        shutil.copytree(source, store / name, ignore=shutil.ignore_patterns("__pycache__"))
    ports = {key: free_port() for key in ("inference", "management", "metrics")}
    props = {
        "inference_address": f"http://127.0.0.1:{ports['inference']}",
        "management_address": f"http://127.0.0.1:{ports['management']}",
        "metrics_address": f"http://127.0.0.1:{ports['metrics']}",
        "model_store": str(store),
        "load_models": "all",
        "default_workers_per_model": "1",
    }
    props.update(properties or {})
    config = tmp / "config.properties"
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    run_env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1", **(env or {})}
    log = tmp / "server.log"
    command = [sys.executable, "-m", "modelserver", "--start", "--foreground", "--ts-config", str(config)]
    command += [] if snapshots else ["--ncs"]
    command += [*cli] if auth else ["--disable-token-auth", *cli]
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=tmp,
            env=run_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_test_runner,
            text=True,
        )
    server = RunningServer(
        process=process,
        workdir=tmp,
        inference=props["inference_address"],
        management=props["management_address"],
        metrics=props["metrics_address"],
        log=log,
        auth=auth,
    )
    _wait_started(server)
    server.wait_ready(models.keys() if wait_models is None else wait_models)
    return server


def _wait_started(server: RunningServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.logs()}")
        if "Model server started." in server.logs():
            return
        time.sleep(0.02)
    server.stop()
    raise TimeoutError(f"server did not start:\n{server.logs()}")
