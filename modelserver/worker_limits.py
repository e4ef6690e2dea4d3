"""How many workers a model version may ask for: at most ``max_workers_per_model``, and no more new ones than the
machine's available memory holds.

Without this bound ``PUT /models/m?min_worker=100000`` was accepted and the kernel's OOM killer then took the whole
server. A new worker's size is guessed from the largest live worker of the same version (the resident memory of its
processes, every rank of a worker group), or ``DEFAULT_WORKER_BYTES`` before any runs; the new ones must fit in
``MEMORY_SHARE`` of ``MemAvailable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .errors import BadRequest
from .metrics.system import resident_bytes

DEFAULT_WORKER_BYTES = 64 * 1024 * 1024
MEMORY_SHARE = 0.9


class TooManyWorkers(BadRequest):
    """400 in the protocol's error shape: the request would exceed the worker cap or the machine's memory."""


def available_memory() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes; None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_worker_count(
    model: str, wanted: int, current: int, cap: int, live_workers: Iterable[Sequence[int]] = ()
) -> None:
    """Raise :class:`TooManyWorkers` unless ``wanted`` workers fit ``cap`` and the new ones fit in memory."""
    if wanted > cap:
        raise TooManyWorkers(
            f"Cannot run {wanted} workers for model {model}: at most {cap} are allowed (max_workers_per_model)."
        )
    new = wanted - current
    if new <= 0:
        return
    each = max((resident_bytes(pids) for pids in live_workers if pids), default=0) or DEFAULT_WORKER_BYTES
    available = available_memory()
    if available is not None and new * each > available * MEMORY_SHARE:
        raise TooManyWorkers(
            f"Cannot start {new} more workers for model {model}: each needs about {each // (1024 * 1024)} MiB and "
            f"the machine has {available // (1024 * 1024)} MiB available."
        )
