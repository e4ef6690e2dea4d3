"""KServe 0.21 as a benchmark target: KServe's own ``ModelServer`` (FastAPI on uvicorn) running the model file
``handlers/kserve_echo.py``, installed into its own virtual environment under the run's cache (``pip install
kserve==0.21.0``; torch is not needed), only for the ``kserve-*`` scenarios.

    python kserve_echo.py --http_port <port> --model_name echo --workers 1 --enable_grpc false
    python kserve_echo.py --http_port <port> --model_name echo --workers 1 --enable_grpc true --grpc_port <port>

KServe's defaults otherwise (latency logging and uvicorn's access log on, as a KServe user gets them), except gRPC,
which is on only for the ``grpc-*`` scenarios (KServe's own grpc.aio server, in the same process): a gRPC server
beside a REST comparison would only add noise. With one worker KServe serves in the script's own process: that one
process is the frontend, and there is no worker process.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from ..probes import wait_for_scenario
from ..procs import HOST, Managed, Pinning, descendants, free_port, rss_mb, spawn
from ..scenarios import HANDLERS, KSERVE_MODEL, Scenario
from .base import Log, Target
from .venv import pinned_venv

KSERVE_VERSION = "0.21.0"
MODEL_FILE = HANDLERS / "kserve_echo.py"
PIP_TIMEOUT_S = 1800.0
SCRIPT_FLAGS = ("--model_name", KSERVE_MODEL, "--workers", "1")
"""KServe's flags for both script targets (KServe's and ours); ``--http_port`` and the gRPC flags are added per
start."""
NOT_KSERVE = "runs only the kserve-* and grpc-* scenarios: it serves KServe's APIs, not TorchServe's /predictions"


def unsupported_unless_kserve(scenario: Scenario) -> str | None:
    return None if scenario.is_kserve or scenario.is_grpc else NOT_KSERVE


def grpc_flags(scenario: Scenario, port: int) -> list[str]:
    """gRPC on ``port`` for a gRPC scenario, off otherwise."""
    return ["--enable_grpc", "true", "--grpc_port", str(port)] if scenario.is_grpc else ["--enable_grpc", "false"]


def start_script(
    name: str,
    python: str,
    script: Path,
    scenario: Scenario,
    workdir: Path,
    pinning: Pinning,
    started: list[Managed],
    env: dict[str, str],
) -> Target:
    """Start a KServe model script (``python script --http_port P``, :data:`SCRIPT_FLAGS` and :func:`grpc_flags`)
    pinned like every server, wait until it answers the scenario's request correctly (over gRPC for a gRPC
    scenario), and return it as a one-process target (its ``frontend``); any process it started is recorded (and
    stopped with it)."""
    port, grpc_port = free_port(), free_port()
    command = [*pinning.server_prefix, python, str(script), "--http_port", str(port), *SCRIPT_FLAGS]
    command += grpc_flags(scenario, grpc_port)
    managed = spawn(name, command, workdir, env)
    started.append(managed)
    if scenario.grpc_method is not None:
        url = f"http://{HOST}:{grpc_port}{scenario.grpc_method}"
    else:
        assert scenario.kserve_path is not None
        url = f"http://{HOST}:{port}{scenario.kserve_path}"
    start_s = wait_for_scenario(managed, url, scenario)
    children = descendants(managed.pid)
    managed.known_children.extend(children)
    pids = {"frontend": managed.pid}
    extra = {
        "rss_idle_mb": {role: rss_mb(pid) for role, pid in pids.items()},
        "child_pids": [pid for pid, _ in children],
        "command": command,
    }
    return Target(name, url, pids, managed.log, start_s=round(start_s, 3), extra=extra)


class KServePeer:
    name = "kserve"

    def __init__(self) -> None:
        self.python: Path | None = None

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        venv = cache / "kserve-venv"
        python = pinned_venv(venv, "kserve", KSERVE_VERSION, PIP_TIMEOUT_S, log)
        self.python = python
        return {"kserve": KSERVE_VERSION, "venv": str(venv), **self._stack(python)}

    @staticmethod
    def _stack(python: Path) -> dict[str, str]:
        """The versions of what serves KServe's requests: uvicorn, uvloop, httptools, FastAPI."""
        names = ("fastapi", "uvicorn", "uvloop", "httptools")
        code = f"import importlib.metadata as m; print(' '.join(m.version(n) for n in {names!r}))"
        try:
            done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        versions = done.stdout.split()
        return dict(zip(names, versions, strict=True)) if len(versions) == len(names) else {}

    def unsupported(self, scenario: Scenario) -> str | None:
        return unsupported_unless_kserve(scenario)

    def start(self, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed], log: Log) -> Target:
        if self.python is None:
            raise RuntimeError("KServePeer.start before prepare")
        # KServe's venv only: none of this checkout on its path
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env |= {"TMPDIR": str(workdir), "PYTHONUNBUFFERED": "1"}
        return start_script(self.name, str(self.python), MODEL_FILE, scenario, workdir, pinning, started, env)
