"""Host metrics (TorchServe's ``system_metrics.py``): CPU, memory and disk gauges read in-process.

TorchServe starts a Python process running psutil every ``metric_time_interval``; :class:`SystemSampler` reads the
same numbers from ``/proc`` and ``statvfs`` instead, with psutil's formulas. It only measures: the server decides
where the values go (:meth:`modelserver.metrics.ServerMetrics.record_system`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# The host gauges, in TorchServe's order (each is labelled Level="Host" and the hostname).
SYSTEM_METRICS = (
    "CPUUtilization",
    "MemoryUsed",
    "MemoryAvailable",
    "MemoryUtilization",
    "DiskUsage",
    "DiskUtilization",
    "DiskAvailable",
)


class SystemSampler:
    """TorchServe's host gauges (its ``system_metrics.py`` uses psutil), from ``/proc`` and ``statvfs``.

    ``CPUUtilization`` is the busy share of all CPUs since the previous sample (since boot for the first one).
    What the host does not provide (no ``/proc``) is left out. GPU metrics are not collected.
    """

    def __init__(self, proc: Path = Path("/proc"), disk: str = "/") -> None:
        self._proc = proc
        self._disk = disk
        self._cpu: tuple[int, int] | None = None

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        self._add_cpu(values)
        self._add_memory(values)
        self._add_disk(values)
        return values

    def _add_cpu(self, values: dict[str, float]) -> None:
        try:
            fields = [int(x) for x in (self._proc / "stat").read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return
        total, idle = sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)
        previous_total, previous_idle = self._cpu or (0, 0)
        self._cpu = (total, idle)
        elapsed = total - previous_total
        values["CPUUtilization"] = 100.0 * (elapsed - (idle - previous_idle)) / elapsed if elapsed > 0 else 0.0

    def _add_memory(self, values: dict[str, float]) -> None:
        try:
            info = {
                key: int(rest.split()[0]) * 1024
                for key, _, rest in (line.partition(":") for line in (self._proc / "meminfo").read_text().splitlines())
                if rest.strip()
            }
            total, available = info["MemTotal"], info["MemAvailable"]
            cached = info.get("Cached", 0) + info.get("SReclaimable", 0)
            used = total - info["MemFree"] - info.get("Buffers", 0) - cached
            if used < 0:  # as psutil: some kernels count shared memory twice
                used = total - info["MemFree"]
        except (OSError, ValueError, KeyError):
            return
        values["MemoryUsed"] = used / 2**20
        values["MemoryAvailable"] = available / 2**20
        values["MemoryUtilization"] = 100.0 * (total - available) / total if total else 0.0

    def _add_disk(self, values: dict[str, float]) -> None:
        try:
            stat = os.statvfs(self._disk)
        except OSError:
            return
        used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
        free = stat.f_bavail * stat.f_frsize
        values["DiskUsage"] = used / 2**30
        values["DiskAvailable"] = free / 2**30
        values["DiskUtilization"] = 100.0 * used / (used + free) if used + free else 0.0


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pids: Iterable[int], proc: Path = Path("/proc")) -> int:
    """Resident memory of ``pids`` together, in bytes (psutil's ``rss``, which TorchServe reports as a worker's
    ``memoryUsage``); a process that is gone, or a host without ``/proc``, counts 0."""
    total = 0
    for pid in pids:
        try:
            total += int((proc / str(pid) / "statm").read_text().split()[1]) * _PAGE_SIZE
        except (OSError, ValueError, IndexError):
            continue
    return total
