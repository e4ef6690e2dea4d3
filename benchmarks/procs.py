"""Processes a benchmark starts: spawning with a log, CPU and memory readings from /proc, pinning to cores, and
stopping by PID (children included, guarded against PID reuse)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
STOP_GRACE_S = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- processes ------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def proc_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def cpu_times(pid: int) -> tuple[float, float] | None:
    """User and system CPU seconds of a process (fields 14 and 15 of /proc/PID/stat), or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def rss_mb(pid: int) -> float | None:
    """VmRSS of a process in MB (MiB), from /proc/PID/status."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start ticks) of every live descendant of ``pid``, found through the PPid lines in /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parents.setdefault(int(stat.rpartition(")")[2].split()[1]), []).append(int(entry.name))
    found: list[tuple[int, int]] = []
    pending = [pid]
    while pending:
        for child in parents.get(pending.pop(), []):
            ticks = proc_start_ticks(child)
            if ticks is not None:
                found.append((child, ticks))
                pending.append(child)
    return found


def signal_if_same(pid: int, ticks: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to ``pid`` only if it is still the process that started at ``ticks`` (no PID reuse accident)."""
    if proc_start_ticks(pid) != ticks:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
        return True
    return False


def wait_gone(pid: int, ticks: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while proc_start_ticks(pid) == ticks:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


@dataclass
class Managed:
    """A process started by this benchmark, with its log; :meth:`stop` ends it and any children it left."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    spawned_at: float
    known_children: list[tuple[int, int]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        children = dict([*self.known_children, *descendants(self.pid)])
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid, ticks in children.items():
            if signal_if_same(pid, ticks, signal.SIGTERM) and not wait_gone(pid, ticks, 5.0):
                signal_if_same(pid, ticks, signal.SIGKILL)
                wait_gone(pid, ticks, 5.0)


def spawn(name: str, command: Sequence[str], workdir: Path, env: dict[str, str]) -> Managed:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        spawned_at = time.perf_counter()
        process = subprocess.Popen(
            list(command), cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    return Managed(name, process, log, spawned_at)


# -- pinning and machine information --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    server_prefix: tuple[str, ...]
    client_cpus: frozenset[int] | None
    note: str


def choose_pinning() -> Pinning:
    """Servers on core 0 and the load generator on core 1, when taskset exists and there are two cores to use."""
    taskset = shutil.which("taskset")
    cores = sorted(os.sched_getaffinity(0))
    if taskset is None or len(cores) < 2:
        reason = "taskset not found" if taskset is None else f"only {len(cores)} core(s) available"
        return Pinning((), None, f"not pinned ({reason}): servers and load generator share the cores")
    server, client = cores[0], cores[1]
    note = f"servers (frontend + worker, or the bare echo) pinned to core {server}; load generator to core {client}"
    return Pinning((taskset, "-c", str(server)), frozenset({client}), note)


@contextlib.contextmanager
def client_affinity(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run the load generator (this process) on ``cpus``, and restore the previous affinity afterwards."""
    if cpus is None:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)
