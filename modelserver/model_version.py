"""One served model version, and the core inference call every protocol goes through.

:meth:`ModelVersion.infer` is the whole round trip of one request, whatever protocol it came in
by: count it, queue it (or hand it straight to a free worker), wait for its answer, cancel it in its
worker if the client goes away, and keep the stream bookkeeping of a streamed answer. A dialect
only decodes an HTTP request into a :class:`~modelserver.types.Job` and encodes what ``infer``
returns (or raises) in its own shape.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Final

from workers.protocol import DEFAULT_MAX_FRAME_SIZE

from .archive import ModelArtifact, release
from .batcher import BatchQueue, QueueFull
from .errors import ModelUnregistered, NoWorker, ServeError, ServerShuttingDown
from .metrics import NULL_VERSION_METRICS, VersionMetrics
from .model_spec import ModelSpec
from .types import InferenceResult, Job, ResultStream
from .worker_connection import WorkerConnection
from .worker_group import WorkerGroup
from .worker_limits import check_worker_count
from .worker_plan import WorkerPlan
from .worker_pool import WorkerFactory, WorkerPool

logger = logging.getLogger("modelserver")

DEFAULT_WORKER_CAP: Final = 128


class ModelVersion:
    """One served model version: its settings, its queue and its workers."""

    def __init__(
        self,
        spec: ModelSpec,
        metrics: VersionMetrics = NULL_VERSION_METRICS,
        *,
        artifact: ModelArtifact | None = None,
        gpu_count: int = 0,
        decode_input_request: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        shared_memory: int = 0,
        make_worker: WorkerFactory | None = None,
        depth: int = 0,
        worker_environment: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.metrics = metrics
        self.artifact = artifact
        self.loop = asyncio.get_running_loop()
        """The server's loop, kept: on Python 3.11 every ``asyncio.get_running_loop()`` is a ``getpid()`` system call,
        and the request path would make several per request."""
        self.queue = BatchQueue(spec.job_queue_size, spec.batch_size, spec.max_batch_delay_ms / 1000, self.loop.time)
        self.downloaded: Path | None = None
        """The archive a registration downloaded into the model store; deleted when the version is unregistered."""
        self._decode_input_request = decode_input_request
        plan = WorkerPlan(
            model_name=spec.name,
            model_version=spec.version,
            model_dir=spec.model_dir,
            startup_timeout=spec.startup_timeout,
            response_timeout=spec.response_timeout,
            prefetch=not spec.client_timeout_ms,
            queue=self.queue,
            metrics=metrics,
            load_message=self.load_message,
            loop=self.loop,
            max_frame_size=max_frame_size,
            shared_memory=shared_memory,
            depth=depth,
            environment=dict(worker_environment or {}),
        )
        if make_worker is None and spec.parallel.is_group:
            make_worker = partial(WorkerGroup, parallel=spec.parallel, device_ids=spec.device_ids)
        self.pool = WorkerPool(plan, _gpu_ids(spec, gpu_count), make_worker)
        self._direct = spec.batch_size == 1
        """With batch size 1 and an empty queue, a job goes straight to a worker with room: the queue, its collector
        and the worker's feeding task are for waiting work, and the batch-forming delay never applies to one job."""
        self.worker_cap = DEFAULT_WORKER_CAP
        """``max_workers_per_model``: :meth:`set_workers` refuses more (400)."""
        self.declared_types: dict[str, Any] | None = None
        """The model's ``{"inputs": [...], "outputs": [...]}`` (KServe's ``get_input_types``/``get_output_types``),
        once a worker has been asked (:meth:`~modelserver.dialects.kserve_v2.KServeV2.types_of`)."""
        self.recipe: dict[str, Any] | None = None
        """How another frontend process builds this version again (:mod:`modelserver.model_sync`); None when it
        cannot (a model object living in this process)."""
        self.derived: dict[str, Any] = {}
        """What a dialect reads once from this version's declarations (Angel's input types, MindSpore's methods), by
        the dialect's key: it goes with the version, and the request path finds it with one dict access."""
        self.workflow: str | None = None
        """The workflow this version serves a node of (``<workflow>__<node>``): it lives and dies with the workflow,
        and config snapshots leave it out."""
        self.health: Callable[[], Awaitable[bool]] | None = None
        """The model's own readiness, asked on KServe's readiness and inference routes besides :attr:`ready`: a
        model object living in this process (a KServe script's) answers it with its ``healthy()``, as in KServe."""

    @property
    def workers(self) -> list[WorkerConnection]:
        return self.pool.workers

    # -- the core inference call -----------------------------------------------------------------

    async def infer(
        self, job: Job, explicit_version: bool = False, admit: bool = True
    ) -> InferenceResult | ResultStream:
        """Run ``job`` to its answer: a result, or a stream the caller iterates and must ``aclose``.

        ``admit``: count the job as an inference request in the metrics (a management describe call is not one);
        it is counted before queueing, so a 503 counts too. ``explicit_version``: the URL named the version (its
        metrics label and error message say so). Raises the :class:`~modelserver.errors.ServeError` the job failed
        with; a cancelled caller (its client went away) cancels the job in the queue or its worker.
        """
        metrics = self.metrics
        if admit:
            metrics.admit(job, explicit_version)
        try:
            self.submit(job, explicit_version)
            outcome = await job.future
        except asyncio.CancelledError:
            self.cancel(job)
            metrics.failed(job)
            logger.info("Request %s to model %s cancelled: the client went away", job.request_id, self.spec.name)
            raise
        except ServeError:
            metrics.failed(job)
            raise
        if isinstance(outcome, ResultStream):
            metrics.streams += 1
            outcome.on_close(partial(self._stream_closed, job))
            return outcome
        metrics.finished(job, outcome.status)
        return outcome

    def _stream_closed(self, job: Job, stream: ResultStream) -> None:
        """The consumer of a stream is done with it: record how it ended, and cancel it if it had not."""
        metrics = self.metrics
        metrics.streams -= 1
        if not stream.ended:
            self.cancel(job)
            metrics.failed(job)
            logger.info("Stream %s of model %s cancelled: the client went away", job.request_id, self.spec.name)
        elif stream.error is not None:
            metrics.failed(job)
        else:
            metrics.finished(job, stream.first.status)

    def submit(self, job: Job, explicit_version: bool = False) -> None:
        """Queue a job; 503 at once when there is no worker or the queue is full."""
        pool = self.pool
        if not pool.workers:
            raise NoWorker(self.spec.name, self.spec.version if explicit_version else None)
        queue = self.queue
        if self._direct and not queue:
            feed = pool.with_room()
            # A job sent ahead to a busy worker waits like a queued one: it needs room in job_queue_size.
            if feed is not None and (not feed.outstanding or queue.pending < queue.capacity):
                feed.take_now([job])
                return
        if self.spec.client_timeout_ms:
            job.deadline = self.loop.time() + self.spec.client_timeout_ms / 1000
        try:
            queue.put(job)
        except QueueFull:
            refused = NoWorker(self.spec.name, self.spec.version if explicit_version else None)
            refused.__suppress_context__ = True  # mypyc compiles `from None` without it
            raise refused from None

    def cancel(self, job: Job) -> None:
        """The client went away: drop the job if queued, or tell its worker if running."""
        job.cancelled = True
        self.pool.cancel(job)

    # -- workers ---------------------------------------------------------------------------------

    def load_message(self, gpu_id: int | None) -> dict[str, Any]:
        spec = self.spec
        return {
            "kind": "load",
            "model_name": spec.name,
            "model_version": spec.version,
            "model_dir": spec.model_dir,
            "handler": spec.handler,
            "runtime": spec.runtime,
            "batch_size": spec.batch_size,
            "gpu_id": gpu_id,
            "envelope": spec.envelope,
            "limit_max_image_pixels": True,
            "decode_input_request": self._decode_input_request,
            "manifest": dict(spec.manifest),
            "model_yaml_config": dict(spec.yaml_config),
            **spec.extra,  # what a runtime kind needs besides (a KServe ModelServer: the model's constructor arguments)
        }

    def scale(self, count: int, maximum: int | None = None) -> list[WorkerConnection]:
        """Start workers up to ``count``; stop the newest ones above ``maximum`` (default ``count``)."""
        return self.pool.scale(count, maximum)

    def check_workers(self, count: int, maximum: int = 0) -> None:
        """400 (:class:`~modelserver.worker_limits.TooManyWorkers`) unless ``count`` workers fit the cap and memory,
        and ``maximum`` the cap."""
        live = [getattr(worker, "pids", ()) for worker in self.pool.workers]  # in-process workers have none
        check_worker_count(self.spec.name, max(count, maximum), len(live), self.worker_cap)
        check_worker_count(self.spec.name, count, len(live), self.worker_cap, live)

    def set_workers(self, minimum: int, maximum: int) -> list[WorkerConnection]:
        """The scale-workers call: record ``minWorkers``/``maxWorkers`` and add or remove workers to fit them; refused
        (400) above ``max_workers_per_model`` or the machine's memory."""
        self.check_workers(minimum, maximum)
        self.spec = dataclasses.replace(self.spec, min_workers=minimum, max_workers=maximum)
        return self.pool.scale(minimum, maximum)

    def healthy(self) -> bool:
        spec = self.spec
        healthy = self.pool.healthy_count(spec.max_retry_timeout, spec.loaded_at_startup)
        return healthy >= self.pool.share(spec.min_workers)

    @property
    def ready_workers(self) -> int:
        return self.pool.ready_count

    @property
    def ready(self) -> bool:
        """A worker has loaded the model: it can serve now."""
        return self.pool.any_ready

    async def stop(self, error: ServeError | None = None) -> None:
        """Stop every worker, answer the queued jobs with ``error`` (default: shutting down), free the archive."""
        await self.pool.stop()
        self.queue.fail_all(error or ServerShuttingDown())
        if self.artifact is not None:  # workers ran inside the unpacked archive: remove it only now
            release(self.artifact)

    async def unload(self) -> None:
        """Unregistered: stop as :meth:`stop` does, then delete the archive the registration downloaded."""
        await self.stop(ModelUnregistered(self.spec.name))
        if self.downloaded is not None:
            self.downloaded.unlink(missing_ok=True)


def _gpu_ids(spec: ModelSpec, gpu_count: int) -> tuple[int, ...]:
    """The GPU ids the version's workers take round-robin; none (CPU) without GPUs or with ``deviceType: cpu``."""
    if gpu_count <= 0 or spec.device_type == "cpu" and "deviceType" in spec.yaml_config:
        return ()
    return tuple(i for i in spec.device_ids if i < gpu_count) or tuple(range(gpu_count))
