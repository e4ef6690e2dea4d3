"""The ceiling as a benchmark target: ``benchmarks.bare_echo``, an aiohttp low-level server on uvloop that sends
every request body back byte for byte. It has no handler to run, so it only takes part in the echo scenarios."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..bare_echo import READY_LINE
from ..machine import version_of
from ..probes import child_env, wait_for_answer
from ..procs import HOST, Managed, Pinning, free_port, rss_mb, spawn
from ..scenarios import Scenario
from .base import Log, Target

SUPPORTED = frozenset({"echo-json", "echo-binary", "echo-batch8"})
"""Batching does not apply to the bare echo: in ``echo-batch8`` it is the same ceiling as in ``echo-json``."""


class BarePeer:
    name = "bare aiohttp"

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        return {"aiohttp": version_of("aiohttp"), "uvloop": version_of("uvloop"), "python": sys.executable}

    def unsupported(self, scenario: Scenario) -> str | None:
        if scenario.name in SUPPORTED:
            return None
        return "the bare echo only echoes: it has no handler to run"

    def start(self, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed], log: Log) -> Target:
        port = free_port()
        command = [*pinning.server_prefix, sys.executable, "-m", "benchmarks.bare_echo", "--host", HOST]
        managed = spawn("bare_echo", [*command, "--port", str(port)], workdir, child_env(workdir))
        started.append(managed)
        url = f"http://{HOST}:{port}/predictions/{scenario.handler}"
        start_s = wait_for_answer(managed, url, scenario.body(), scenario.content_type, scenario.check)
        if READY_LINE not in managed.log_tail():
            raise RuntimeError(f"the bare echo answered but did not print {READY_LINE!r}")
        extra = {"rss_idle_mb": {"server": rss_mb(managed.pid)}}
        return Target(self.name, url, {"server": managed.pid}, managed.log, start_s=round(start_s, 3), extra=extra)
