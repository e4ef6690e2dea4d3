"""How many frontend processes to run, and each one's share of a model's workers (docs/scaling.md).

``frontend_processes`` (our key, ``--frontend-processes``) runs that many frontend processes; each binds the TCP
listening addresses with ``SO_REUSEPORT`` and the kernel spreads new connections over them. When it is not set,
TorchServe's ``number_of_netty_threads`` (its frontend's event-loop threads) stands for it: both say how many cores
the frontend may keep busy. Either is clamped to the CPUs this process may use (its affinity mask and its cgroup's
CPU quota): a second frontend on the same core only adds a hop through the scheduler. The default is one frontend,
today's single process.

Every frontend owns worker processes of its own (no hop between frontends on the request path). A model's
``minWorkers``/``maxWorkers`` stay the numbers of the whole server: each frontend runs its :func:`worker_share`,
at least one while the model has any, so a request never waits on another process's workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import devices
from .config_values import get_int

KEY = "frontend_processes"
NETTY_KEY = "number_of_netty_threads"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


@dataclass(frozen=True)
class FrontendRole:
    """Which frontend process this is: its index among ``count``, and whether the supervisor started it again after
    it died (it then takes the models from a running frontend). The default is the only frontend."""

    index: int = 0
    count: int = 1
    restarted: bool = False


class Peers(Protocol):
    """The other frontend processes, as the server of one of them sees them (:class:`modelserver.cluster.Cluster`)."""

    async def join(self, load_startup_models: Callable[[], None]) -> None:
        """Have the models: the startup ones, or a running frontend's when this one was started again."""

    async def publish(self, wait: bool) -> None:
        """Apply this process's model changes in every other frontend (``wait``: until their workers loaded)."""

    def started(self) -> None:
        """Listeners bound: tell the supervisor."""


@dataclass(frozen=True)
class FrontendCount:
    """The resolved count and how it came about, for the start-up log line."""

    count: int
    source: str
    """``default``, ``frontend_processes`` or ``number_of_netty_threads``."""
    asked: int
    cpus: int

    def describe(self) -> str:
        if self.source == "default":
            return "1 frontend process (frontend_processes not set)"
        text = f"{self.count} frontend processes ({self.source}={self.asked}"
        if self.source == NETTY_KEY:
            text += ", TorchServe's frontend threads, mapped onto frontend_processes"
        if self.count < self.asked:
            text += f"; clamped to the {self.cpus} CPU(s) this process may use"
        return text + ")"


def cpu_limit(cgroup_cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may keep busy: its affinity mask, and its cgroup v2 quota when one is set (a
    container's CPU limit), rounded up."""
    cpus = devices.cpu_count()
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max" and int(period) > 0:
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def frontend_count(properties: Mapping[str, str], cpus: int | None = None) -> FrontendCount:
    """``frontend_processes`` if set (>= 1), else ``number_of_netty_threads`` if > 0, else 1; clamped to ``cpus``
    (default :func:`cpu_limit`). A malformed value of either key is a ConfigError naming it."""
    asked = get_int(properties, KEY, 0, minimum=1) if KEY in properties else 0
    source = KEY
    if not asked:
        asked = get_int(properties, NETTY_KEY, 0, minimum=-(2**31))
        source = NETTY_KEY
        if asked <= 0:  # 0 is TorchServe's "one per core" default: it does not turn several processes on
            return FrontendCount(1, "default", 1, cpus or 0)
    limit = cpu_limit() if cpus is None else cpus
    return FrontendCount(max(1, min(asked, limit)), source, asked, limit)


def worker_share(count: int, index: int, frontends: int) -> int:
    """Frontend ``index``'s part of ``count`` workers spread over ``frontends``: the remainder goes to the lowest
    indexes, and every frontend gets at least one while ``count`` is positive."""
    if frontends <= 1 or count <= 0:
        return count
    base, extra = divmod(count, frontends)
    return max(1, base + (1 if index < extra else 0))
