"""The registry: model name -> versions -> :class:`ModelVersion` (spec, batch queue, workers).

Each model name has a default version: the first one registered, until ``set_default`` changes it.
The management API mutates the registry (register, scale, set-default, unregister) only through the
methods here, so the rules (409 on a duplicate version, 403 on removing the default while other
versions exist) hold for every caller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from workers.protocol import DEFAULT_MAX_FRAME_SIZE

from .archive import ModelArtifact, release
from .batcher import BatchQueue, QueueFull
from .errors import (
    CannotRemoveDefault,
    DefaultVersionNotFound,
    ModelNotFound,
    ModelUnregistered,
    ModelVersionNotFound,
    NoWorker,
    ServeError,
    ServerShuttingDown,
    VersionAlreadyRegistered,
)
from .metrics import NULL_VERSION_METRICS, VersionMetrics
from .model_spec import ModelSpec
from .types import Job
from .worker_connection import WorkerConnection, WorkerState

if TYPE_CHECKING:
    from .config import ServerConfig

logger = logging.getLogger("modelserver.registry")

# Worker ids are global and never reused, starting at TorchServe's initial_worker_port.
_worker_ids = itertools.count(9000)
_gpu_round_robin = itertools.count()


class ModelVersion:
    """One served model version: its settings, its queue and its workers."""

    metrics: VersionMetrics = NULL_VERSION_METRICS
    """Set by the server when it registers the version (:meth:`ServerMetrics.for_version`)."""

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
        self.loop = asyncio.get_running_loop()
        """The server's loop, kept: on Python 3.11 every ``asyncio.get_running_loop()`` is a ``getpid()`` system call,
        and the request path would make several per request."""
        self.queue = BatchQueue(spec.job_queue_size, spec.batch_size, spec.max_batch_delay_ms / 1000, self.loop.time)
        self.workers: list[WorkerConnection] = []
        self.downloaded: Path | None = None
        """The archive a registration downloaded into the model store; deleted when the version is unregistered."""
        self._retiring: set[asyncio.Task[None]] = set()
        self._gpu_count = gpu_count
        self._decode_input_request = decode_input_request
        self._max_frame_size = max_frame_size
        self._direct = spec.batch_size == 1
        """With batch size 1 and an empty queue, a job goes straight to a worker with room: the queue, its collector
        and the worker's feeding task are for waiting work, and the batch-forming delay never applies to one job."""

    def submit(self, job: Job, explicit_version: bool = False) -> None:
        """Queue a job; 503 at once when there is no worker or the queue is full."""
        if not self.workers:
            raise NoWorker(self.spec.name, self.spec.version if explicit_version else None)
        if self._direct and not self.queue:
            worker = self._worker_with_room()
            if worker is not None:
                worker.take_now([job])
                return
        if self.spec.client_timeout_ms:
            job.deadline = self.loop.time() + self.spec.client_timeout_ms / 1000
        try:
            self.queue.put(job)
        except QueueFull:
            raise NoWorker(self.spec.name, self.spec.version if explicit_version else None) from None

    def _worker_with_room(self) -> WorkerConnection | None:
        """The worker to take a job now: an idle one first, else the one with the fewest batches outstanding."""
        best, best_load = None, 0
        for worker in self.workers:
            if worker.free_slots <= 0:
                continue
            load = worker.outstanding
            if load == 0:
                return worker
            if best is None or load < best_load:
                best, best_load = worker, load
        return best

    def cancel(self, job: Job) -> None:
        """The client went away: drop the job if queued, or tell its worker if running."""
        job.cancelled = True
        for worker in self.workers:
            worker.cancel_job(job)

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

    def scale(self, count: int, maximum: int | None = None) -> list[WorkerConnection]:
        """Start workers up to ``count``; stop the newest ones above ``maximum`` (default ``count``).

        Returns the workers started, whose :meth:`WorkerConnection.wait_ready` tells when they have loaded.
        """
        maximum = count if maximum is None else maximum
        started = []
        while len(self.workers) < count:
            worker = WorkerConnection(next(_worker_ids), self, self._next_gpu(), self._max_frame_size)
            self.workers.append(worker)
            worker.start()
            started.append(worker)
        while len(self.workers) > maximum:
            task = asyncio.create_task(self.workers.pop().stop())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        return started

    def set_workers(self, minimum: int, maximum: int) -> list[WorkerConnection]:
        """The scale-workers call: record ``minWorkers``/``maxWorkers`` and add or remove workers to fit them."""
        self.spec = dataclasses.replace(self.spec, min_workers=minimum, max_workers=maximum)
        return self.scale(minimum, maximum)

    def healthy(self) -> bool:
        alive = sum(w.healthy(self.spec.max_retry_timeout, self.spec.loaded_at_startup) for w in self.workers)
        return alive >= self.spec.min_workers

    @property
    def ready_workers(self) -> int:
        return sum(w.state is WorkerState.READY for w in self.workers)

    async def stop(self, error: ServeError | None = None) -> None:
        """Stop every worker, answer the queued jobs with ``error`` (default: shutting down), free the archive."""
        workers, self.workers = self.workers, []
        await asyncio.gather(*(w.stop() for w in workers), *self._retiring)
        self.queue.fail_all(error or ServerShuttingDown())
        if self.artifact is not None:  # workers ran inside the unpacked archive: remove it only now
            release(self.artifact)

    async def unload(self) -> None:
        """Unregistered: stop as :meth:`stop` does, then delete the archive the registration downloaded."""
        await self.stop(ModelUnregistered(self.spec.name))
        if self.downloaded is not None:
            self.downloaded.unlink(missing_ok=True)


async def wait_started(workers: Iterable[WorkerConnection]) -> int:
    """200 once every worker has loaded its model; the first failure's status (500, 507) as soon as one fails."""
    pending = {asyncio.ensure_future(worker.wait_ready()) for worker in workers}
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            failed = [task.result() for task in done if task.result() != 200]
            if failed:
                return failed[0]
        return 200
    finally:
        for task in pending:
            task.cancel()


class ModelRegistry:
    def __init__(self) -> None:
        self._models: dict[str, dict[str, ModelVersion]] = {}
        self._defaults: dict[str, str] = {}

    def add(self, version: ModelVersion) -> None:
        """Register a version; the first version of a name becomes its default. 409 if it is already there."""
        spec = version.spec
        versions = self._models.setdefault(spec.name, {})
        if spec.version in versions:
            raise VersionAlreadyRegistered(spec.name, spec.version)
        versions[spec.version] = version
        self._defaults.setdefault(spec.name, spec.version)

    def remove(self, name: str, version: str | None = None, force: bool = False) -> ModelVersion:
        """Take a version (default: the default version) out of the registry; the caller unloads it.

        403 when it is the default version and other versions remain, as TorchServe refuses; with ``force``
        (undoing a failed registration) the oldest remaining version becomes the default instead.
        """
        found = self.resolve(name, version)
        versions = self._models[name]
        is_default = found.spec.version == self._defaults[name]
        if is_default and len(versions) > 1 and not force:
            raise CannotRemoveDefault(name)
        del versions[found.spec.version]
        if not versions:
            del self._models[name], self._defaults[name]
        elif is_default:
            self._defaults[name] = next(iter(versions))
        return found

    def set_default(self, name: str, version: str) -> None:
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name)
        if version not in versions:
            raise DefaultVersionNotFound(name, version)
        self._defaults[name] = version

    def holds(self, version: ModelVersion) -> bool:
        """Whether this very version object is registered (not merely one with its name and version)."""
        return self._models.get(version.spec.name, {}).get(version.spec.version) is version

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name`` in registration order; 404 if the name is unknown."""
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name)
        return list(versions.values())

    def default_version(self, name: str) -> str:
        self.resolve(name)
        return self._defaults[name]

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


class ModelHost(Protocol):
    """What the management API and snapshot restore need from the server: its config, registry and model factory."""

    config: ServerConfig
    registry: ModelRegistry

    def create_version(
        self,
        artifact: ModelArtifact,
        *,
        url: str,
        api: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        loaded_at_startup: bool = False,
    ) -> ModelVersion:
        """Build a version from an opened artifact and add it to the registry (409 if it is there already).

        ``api`` holds a registration's settings, merged by TorchServe's precedence (:func:`build_spec`);
        ``overrides`` are ModelSpec fields set last, whatever the archive says. The artifact is released on failure.
        """
        ...

    def save_snapshot(self, kind: str = "snapshot") -> None:
        """Write a config snapshot, unless snapshots are off."""
        ...
