"""More ceilings beside the bare aiohttp echo. For the echo scenarios:

- ``raw httptools``: ``benchmarks.raw_echo``, an echo on a uvloop protocol with the httptools parser and no
  framework: what the parser and the socket cost (one process, ``server``);
- ``aiohttp hop``: ``benchmarks.hop_echo``, an aiohttp echo that sends each body to a worker process as msgpack over a
  Unix socket and answers with what comes back, batch 1: what a process hop costs (``frontend`` and ``worker``);
- ``raw hop``: ``benchmarks.raw_hop``, the raw httptools echo with the same hop, callbacks only: the floor of a Python
  frontend with a worker process (``frontend`` and ``worker``). Ours minus this row is what our own machinery costs.

For the ``grpc-*`` scenarios: ``grpc.aio echo``, ``benchmarks.grpc_echo``, a grpc.aio server of the same ``.proto``
that answers ``ModelInfer`` with its inputs as outputs: what grpc.aio and protobuf cost (one process, ``server``);
``native h2 echo``, the same echo served by this server's own HTTP/2 (``grpc_transport=native``, :mod:`modelserver.h2`)
instead of grpc.aio: what that transport and protobuf cost.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from .. import grpc_echo, hop_echo, raw_echo, raw_hop
from ..machine import version_of
from ..probes import child_env, wait_for_answer, wait_for_scenario
from ..procs import HOST, Managed, Pinning, free_port, proc_start_ticks, rss_mb, spawn
from ..scenarios import Scenario
from .bare import SUPPORTED
from .base import Log, Target

WORKER_PID = re.compile(rf"{hop_echo.WORKER_LINE} (\d+)")


def _unsupported(scenario: Scenario) -> str | None:
    return None if scenario.name in SUPPORTED else "a ceiling only echoes: it has no handler to run"


def _start(
    name: str, module: str, ready: str, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed]
) -> tuple[Managed, str, float]:
    port = free_port()
    command = [*pinning.server_prefix, sys.executable, "-m", module, "--host", HOST, "--port", str(port)]
    managed = spawn(module.rsplit(".", 1)[-1], command, workdir, child_env(workdir))
    started.append(managed)
    url = f"http://{HOST}:{port}/predictions/{scenario.handler}"
    start_s = wait_for_answer(managed, url, scenario.body(), scenario.content_type, scenario.check)
    if ready not in managed.log_tail():
        raise RuntimeError(f"{name} answered but did not print {ready!r}")
    return managed, url, start_s


class RawEchoPeer:
    name = "raw httptools"

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        return {"httptools": version_of("httptools"), "uvloop": version_of("uvloop"), "python": sys.executable}

    def unsupported(self, scenario: Scenario) -> str | None:
        return _unsupported(scenario)

    def start(self, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed], log: Log) -> Target:
        managed, url, start_s = _start(
            self.name, "benchmarks.raw_echo", raw_echo.READY_LINE, scenario, workdir, pinning, started
        )
        extra = {"rss_idle_mb": {"server": rss_mb(managed.pid)}}
        return Target(self.name, url, {"server": managed.pid}, managed.log, start_s=round(start_s, 3), extra=extra)


class HopEchoPeer:
    name = "aiohttp hop"
    module, ready_line = "benchmarks.hop_echo", hop_echo.READY_LINE

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        return {"aiohttp": version_of("aiohttp"), "msgpack": version_of("msgpack"), "python": sys.executable}

    def unsupported(self, scenario: Scenario) -> str | None:
        return _unsupported(scenario)

    def start(self, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed], log: Log) -> Target:
        managed, url, start_s = _start(self.name, self.module, self.ready_line, scenario, workdir, pinning, started)
        found = WORKER_PID.search(managed.log_tail())
        if found is None:
            raise RuntimeError(f"{self.name} did not print its worker's pid")
        worker = int(found.group(1))
        managed.known_children.append((worker, proc_start_ticks(worker) or 0))
        pids = {"frontend": managed.pid, "worker": worker}
        extra = {"rss_idle_mb": {role: rss_mb(pid) for role, pid in pids.items()}}
        return Target(self.name, url, pids, managed.log, start_s=round(start_s, 3), extra=extra)


class RawHopPeer(HopEchoPeer):
    name = "raw hop"
    module, ready_line = "benchmarks.raw_hop", raw_hop.READY_LINE

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        return {"httptools": version_of("httptools"), "msgpack": version_of("msgpack"), "python": sys.executable}


class GrpcEchoPeer:
    name = "grpc.aio echo"
    transport = "grpcio"

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        return {"grpcio": version_of("grpcio"), "protobuf": version_of("protobuf"), "python": sys.executable}

    def unsupported(self, scenario: Scenario) -> str | None:
        return None if scenario.is_grpc else "the gRPC ceiling runs the grpc-* scenarios only"

    def start(self, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed], log: Log) -> Target:
        port = free_port()
        command = [*pinning.server_prefix, sys.executable, "-m", "benchmarks.grpc_echo", "--host", HOST]
        command += ["--transport", self.transport]
        managed = spawn("grpc_echo", [*command, "--port", str(port)], workdir, child_env(workdir))
        started.append(managed)
        url = f"http://{HOST}:{port}{scenario.grpc_method}"
        start_s = wait_for_scenario(managed, url, scenario)
        if grpc_echo.READY_LINE not in managed.log_tail():
            raise RuntimeError(f"{self.name} answered but did not print {grpc_echo.READY_LINE!r}")
        extra = {"rss_idle_mb": {"server": rss_mb(managed.pid)}}
        return Target(self.name, url, {"server": managed.pid}, managed.log, start_s=round(start_s, 3), extra=extra)


class NativeEchoPeer(GrpcEchoPeer):
    name = "native h2 echo"
    transport = "native"

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        return {"hpack": version_of("hpack"), "protobuf": version_of("protobuf"), "python": sys.executable}
