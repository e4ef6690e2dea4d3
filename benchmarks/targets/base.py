"""What every benchmark target (this server, TorchServe, Mosec, the bare aiohttp echo) provides.

A target is prepared once per run (it may install itself into a virtual environment under the run's cache
directory), then started once per scenario in a fresh work directory, measured, and stopped. Every process it starts
goes into ``started`` as soon as it exists, so the runner stops it by PID even when starting fails half-way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..procs import Managed, Pinning
from ..scenarios import Scenario

Log = Callable[[str], None]
METRICS_MODE_ONLY_OURS = "a scenario in another metrics mode compares this server with itself (beside echo-json)"


class Unavailable(Exception):
    """The target cannot run on this machine (Java missing, an install failed, ...): the runner skips it and records
    the message as the reason."""


@dataclass
class Target:
    """A started target, ready for load."""

    name: str
    url: str
    """Where the scenario's requests go (a POST URL on 127.0.0.1)."""
    pids: dict[str, int]
    """Processes whose CPU time and RSS are reported, by role: ``frontend`` and ``worker`` for a model server (the
    JVM is TorchServe's frontend), ``server`` for the bare echo."""
    log: Path
    start_s: float | None = None
    """Seconds from spawn to the first good answer of the scenario's URL."""
    extra: dict[str, Any] = field(default_factory=dict)


class Peer(Protocol):
    name: str
    """As it appears in tables and plots: ``modelserver``, ``torchserve``, ``mosec``, ``bare aiohttp``."""

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        """Install or check what the target needs, once per run; raise :class:`Unavailable` to be skipped. Returns
        facts for the report (versions, paths)."""
        ...

    def unsupported(self, scenario: Scenario) -> str | None:
        """Why this target does not run ``scenario`` (shown in the table), or None when it does."""
        ...

    def start(self, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed], log: Log) -> Target:
        """Start the target for ``scenario`` with its server processes under ``pinning.server_prefix``, wait until it
        answers the scenario's request correctly, and return where to send the load."""
        ...
