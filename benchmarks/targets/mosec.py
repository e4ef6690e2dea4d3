"""Mosec as a benchmark target: a Rust HTTP frontend with Python workers and dynamic batching, installed into its
own virtual environment under the run's cache, serving ``mosec_service.py`` (services equivalent to our TorchServe
handlers) with one stage of one worker process and the scenario's batching.

Mosec's processes: the Python script (the launcher, which supervises), the Rust ``mosec`` binary (the HTTP
frontend), the worker (a ``multiprocessing`` spawn child of the launcher), and multiprocessing's resource tracker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..probes import wait_for_answer
from ..procs import HOST, Managed, Pinning, descendants, free_port, rss_mb, spawn
from ..scenarios import FRONTENDS_ONLY_OURS, Scenario
from .base import METRICS_MODE_ONLY_OURS, Log, Target
from .venv import pinned_venv

MOSEC_VERSION = "0.9.8"
SERVICE = Path(__file__).resolve().parent / "mosec_service.py"
PIP_TIMEOUT_S = 900.0
MAX_IPC_DIR_CHARS = 64
"""Mosec puts its Unix sockets (``ipc_<Worker>_<n>.socket``) in this directory; a socket path has at most 107 bytes."""

UNSUPPORTED = {
    "stream": "Mosec streams only as Server-Sent Events (each piece framed as `data: ...` lines), "
    "not as the handler's raw lines in HTTP chunks that the stream probe reads",
    "digits": "needs torch in Mosec's venv and a port of the archive's handler; not the same handler code",
    "kserve-echo": "the kserve-* and grpc-* scenarios compare with KServe only",
    "mindspore-add": "MindSpore's API: compared with this server's echo-json of the same body size",
    "angel-lr": "Angel's API: compared with this server's echo-json of the same body size",
}


def service_args(scenario: Scenario) -> list[str]:
    """``mosec_service.py``'s own arguments for ``scenario``: the service and its batching."""
    if scenario.handler == "echo":
        service = "echo-bytes" if scenario.content_type == "application/octet-stream" else "echo-json"
    elif scenario.handler == "cost":
        service = "cost"
    else:
        raise ValueError(f"no Mosec service for handler {scenario.handler!r}")
    batching = ["--max-batch-size", str(scenario.batch_size), "--max-wait-ms", str(scenario.max_batch_delay_ms)]
    return ["--service", service, *batching]


def role_of(cmdline: list[str]) -> str | None:
    """What a process of Mosec's tree is, from its command line."""
    if cmdline and Path(cmdline[0]).name == "mosec":
        return "frontend"
    text = " ".join(cmdline)
    if "multiprocessing.spawn" in text:
        return "worker"
    if "multiprocessing.resource_tracker" in text:
        return "tracker"
    return None


def cmdline_of(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def ipc_dir(workdir: Path) -> Path:
    """Where Mosec's sockets go: in the work directory when its path is short enough, else a new one in /tmp."""
    inside = workdir / "ipc"
    if len(str(inside)) <= MAX_IPC_DIR_CHARS:
        return inside
    return Path(tempfile.mkdtemp(prefix="mosec-", dir="/tmp"))


class MosecPeer:
    name = "mosec"

    def __init__(self) -> None:
        self.python: Path | None = None

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        venv = cache / "mosec-venv"
        python = pinned_venv(venv, "mosec", MOSEC_VERSION, PIP_TIMEOUT_S, log)
        self.python = python
        return {"mosec": MOSEC_VERSION, "venv": str(venv)}

    def unsupported(self, scenario: Scenario) -> str | None:
        if scenario.metrics_mode != "prometheus":
            return METRICS_MODE_ONLY_OURS
        if scenario.frontend_processes:
            return FRONTENDS_ONLY_OURS
        return UNSUPPORTED.get(scenario.handler)

    def start(self, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed], log: Log) -> Target:
        if self.python is None:
            raise RuntimeError("MosecPeer.start before prepare")
        script = workdir / SERVICE.name  # a copy: SERVICE's own directory has this file, which shadows mosec
        shutil.copy2(SERVICE, script)
        port, ipc = free_port(), ipc_dir(workdir)
        command = [*pinning.server_prefix, str(self.python), str(script), *service_args(scenario)]
        command += ["--port", str(port), "--address", HOST, "--path", str(ipc)]
        env = {**os.environ, "TMPDIR": str(workdir), "PYTHONUNBUFFERED": "1"}
        managed = spawn("mosec", command, workdir, env)
        started.append(managed)
        url = f"http://{HOST}:{port}/inference"
        start_s = wait_for_answer(managed, url, scenario.body(), scenario.content_type, scenario.check)
        children = descendants(managed.pid)
        managed.known_children.extend(children)
        roles: dict[str, list[int]] = {}
        for pid, _ in children:
            roles.setdefault(role_of(cmdline_of(pid)) or "other", []).append(pid)
        if len(roles.get("frontend", [])) != 1 or len(roles.get("worker", [])) != 1:
            raise RuntimeError(f"expected one mosec frontend and one worker under {managed.pid}, found {roles}")
        pids = {"frontend": roles["frontend"][0], "worker": roles["worker"][0], "launcher": managed.pid}
        helpers = {role: found for role, found in roles.items() if role not in ("frontend", "worker")}
        extra = {
            "rss_idle_mb": {role: rss_mb(pid) for role, pid in pids.items()},
            "helper_pids": helpers,
            "helper_rss_idle_mb": {str(pid): rss_mb(pid) for found in helpers.values() for pid in found},
            "ipc": str(ipc),
            "command": command,
        }
        return Target(self.name, url, pids, managed.log, start_s=round(start_s, 3), extra=extra)
