"""What the workers of one model version are told by it: their plan, their metrics, their states.

A model version hands a :class:`WorkerPlan` to each worker connection it starts, so a worker connection never
reaches back into the version.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .batcher import BatchQueue
from .types import Job


class WorkerState(enum.Enum):
    STARTING = "STARTING"
    READY = "READY"
    STOPPED = "STOPPED"


class WorkerMetrics(Protocol):
    """The metrics a worker connection updates (its model version's :class:`~modelserver.metrics.VersionMetrics`)."""

    backend_line: Callable[[str], None] | None

    def dispatched(self, batch: list[Job]) -> None: ...

    def sent(self) -> None: ...

    def worker_loaded(self, worker_name: str, seconds: float) -> None: ...

    def worker_restarted(self) -> None: ...


class FailureCount:
    """TorchServe's per-model count of consecutive unanswered requests (logged as it grows, reset by an answer)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def grow(self) -> int:
        self.count += 1
        return self.count


@dataclass(frozen=True)
class WorkerPlan:
    """Everything the workers of one model version need, and nothing more.

    The model version hands this down when it starts a worker, so a worker connection never reaches back into the
    version: it pulls batches from ``queue``, loads the model with ``load_message(gpu_id)`` and reports to
    ``metrics``."""

    model_name: str
    model_version: str
    model_dir: str
    startup_timeout: float
    response_timeout: float
    prefetch: bool
    """False with ``clientTimeoutInMills``: a job handed to a busy worker could no longer expire in the queue."""
    queue: BatchQueue
    metrics: WorkerMetrics
    load_message: Callable[[int | None], dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    max_frame_size: int
    shared_memory: int = 0
    """Bytes of each shared memory ring between a worker and the frontend (``worker_shared_memory``; 0: none)."""
    depth: int = 0
    """Batches a worker holds at once: 0 adapts it to the measured batch time (2 to 16)."""
    failures: FailureCount = field(default_factory=FailureCount)
    """Shared by the version's workers, as TorchServe counts per model."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Variables a worker process gets on top of the server's environment (TorchServe's ``TS_*`` backend settings)."""
