"""The registry: model name -> versions -> :class:`ModelVersion` (spec, batch queue, workers)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from typing import Any

from workers.protocol import DEFAULT_MAX_FRAME_SIZE

from .archive import ModelArtifact, release
from .batcher import BatchQueue, QueueFull
from .errors import ModelNotFound, ModelVersionNotFound, NoWorker, ServerShuttingDown
from .model_spec import ModelSpec
from .types import Job
from .worker_connection import WorkerConnection, WorkerState

logger = logging.getLogger("modelserver.registry")

# Worker ids are global and never reused, starting at TorchServe's initial_worker_port.
_worker_ids = itertools.count(9000)
_gpu_round_robin = itertools.count()


class ModelVersion:
    """One served model version: its settings, its queue and its workers."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        artifact: ModelArtifact | None = None,
        gpu_count: int = 0,
        decode_input_request: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.spec = spec
        self.artifact = artifact
        self.queue = BatchQueue(spec.job_queue_size, spec.batch_size, spec.max_batch_delay_ms / 1000)
        self.workers: list[WorkerConnection] = []
        self._gpu_count = gpu_count
        self._decode_input_request = decode_input_request
        self._max_frame_size = max_frame_size

    def submit(self, job: Job, explicit_version: bool = False) -> None:
        """Queue a job; 503 at once when there is no worker or the queue is full."""
        if not self.workers:
            raise NoWorker(self.spec.name, self.spec.version if explicit_version else None)
        if self.spec.client_timeout_ms:
            job.deadline = asyncio.get_running_loop().time() + self.spec.client_timeout_ms / 1000
        try:
            self.queue.put(job)
        except QueueFull:
            raise NoWorker(self.spec.name, self.spec.version if explicit_version else None) from None

    def cancel(self, job: Job) -> None:
        """The client went away: drop the job if queued, or tell its worker if running."""
        job.cancelled = True
        for worker in self.workers:
            worker.cancel_job(job)

    def note_dispatch(self, batch: list[Job]) -> None:
        """Hook for metrics: a batch left the queue for a worker."""

    def note_done(self, job: Job) -> None:
        """Hook for metrics: a job got its final answer."""

    def load_message(self, gpu_id: int | None) -> dict[str, Any]:
        spec = self.spec
        return {
            "kind": "load",
            "model_name": spec.name,
            "model_version": spec.version,
            "model_dir": spec.model_dir,
            "handler": spec.handler,
            "batch_size": spec.batch_size,
            "gpu_id": gpu_id,
            "envelope": "",
            "limit_max_image_pixels": True,
            "decode_input_request": self._decode_input_request,
            "manifest": dict(spec.manifest),
            "model_yaml_config": dict(spec.yaml_config),
        }

    def _next_gpu(self) -> int | None:
        if self._gpu_count <= 0 or self.spec.device_type == "cpu" and "deviceType" in self.spec.yaml_config:
            return None
        ids = [i for i in self.spec.device_ids if i < self._gpu_count] or list(range(self._gpu_count))
        return ids[next(_gpu_round_robin) % len(ids)]

    def scale(self, count: int) -> None:
        """Start workers up to ``count``; stop the newest ones above it."""
        while len(self.workers) < count:
            worker = WorkerConnection(next(_worker_ids), self, self._next_gpu(), self._max_frame_size)
            self.workers.append(worker)
            worker.start()
        while len(self.workers) > count:
            asyncio.create_task(self.workers.pop().stop())

    def healthy(self) -> bool:
        alive = sum(w.healthy(self.spec.max_retry_timeout, self.spec.loaded_at_startup) for w in self.workers)
        return alive >= self.spec.min_workers

    @property
    def ready_workers(self) -> int:
        return sum(w.state is WorkerState.READY for w in self.workers)

    async def stop(self) -> None:
        workers, self.workers = self.workers, []
        await asyncio.gather(*(w.stop() for w in workers))
        self.queue.fail_all(ServerShuttingDown())
        if self.artifact is not None:  # workers ran inside the unpacked archive: remove it only now
            release(self.artifact)


class ModelRegistry:
    def __init__(self) -> None:
        self._models: dict[str, dict[str, ModelVersion]] = {}
        self._defaults: dict[str, str] = {}

    def add(self, version: ModelVersion) -> None:
        spec = version.spec
        versions = self._models.setdefault(spec.name, {})
        versions[spec.version] = version
        self._defaults.setdefault(spec.name, spec.version)

    def resolve(self, name: str, version: str | None = None) -> ModelVersion:
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name)
        if not version:
            return versions[self._defaults[name]]
        found = versions.get(version)
        if found is None:
            raise ModelVersionNotFound(name, version)
        return found

    def __iter__(self) -> Iterator[ModelVersion]:
        for versions in self._models.values():
            yield from versions.values()

    def defaults(self) -> Iterator[ModelVersion]:
        for name, version in self._defaults.items():
            yield self._models[name][version]

    def names(self) -> list[str]:
        return sorted(self._models)

    def healthy(self) -> bool:
        """``/ping``: every model's default version has at least ``minWorkers`` healthy workers."""
        return all(version.healthy() for version in self.defaults())

    async def stop(self) -> None:
        await asyncio.gather(*(version.stop() for version in self))
