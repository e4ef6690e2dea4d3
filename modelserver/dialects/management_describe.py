"""What ``GET /models/{m}[/{v}]`` answers: TorchServe's description of a model version and its workers, and the
handler's own metadata for ``?customized=true`` (a ``describe`` job)."""

from __future__ import annotations

import json
import time
from typing import Any

from ..errors import NoDescribeWorker, NoWorker
from ..http_messages import Request
from ..metrics import resident_bytes
from ..model_version import ModelVersion
from ..registry import PeerView
from ..types import DESCRIBE, Job, ResultStream
from ..worker_plan import WorkerState
from . import torchserve_http as http


async def customized_metadata(request: Request, model: ModelVersion) -> Any:
    """Run the handler's ``describe_handle`` through the core call: a job of method ``describe`` in a batch of its
    own, not counted as an inference request."""
    job = Job(http.new_request_id(), request.header_dict(), [], DESCRIBE, solo=True)
    try:
        outcome = await model.infer(job, admit=False)
    except NoWorker:
        raise NoDescribeWorker(model.spec.name) from None
    if isinstance(outcome, ResultStream):
        outcome.close()
        return parse_metadata(outcome.first.body)
    return parse_metadata(outcome.body)


def parse_metadata(body: bytes) -> Any:
    """JSON when the handler's answer parses as JSON, else the text; None (omitted) when it is empty."""
    if not body:
        return None
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def start_time(started: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)) + f".{int(started * 1000) % 1000:03d}Z"


def describe_version(model: ModelVersion) -> dict[str, Any]:
    spec = model.spec
    return {
        "modelName": spec.name,
        "modelVersion": spec.version,
        "modelUrl": spec.url,
        "runtime": str(spec.manifest.get("runtime") or "python"),
        "minWorkers": spec.min_workers,
        "maxWorkers": spec.max_workers,
        "batchSize": spec.batch_size,
        "maxBatchDelay": spec.max_batch_delay_ms,
        "responseTimeout": spec.response_timeout,
        "startupTimeout": spec.startup_timeout,
        "maxRetryTimeoutInSec": spec.max_retry_timeout,
        "clientTimeoutInMills": spec.client_timeout_ms,
        "parallelType": spec.parallel.parallel_type,
        "parallelLevel": spec.parallel.level,
        "deviceType": "gpu" if any(w.gpu_id is not None for w in model.workers) else "cpu",
        "continuousBatching": False,
        "useJobTicket": False,
        "useVenv": False,
        "stateful": False,
        "sequenceMaxIdleMSec": 0,
        "sequenceTimeoutMSec": 0,
        "maxNumSequence": 0,
        "maxSequenceJobQueueSize": 0,
        "loadedAtStartup": spec.loaded_at_startup,
        "workers": describe_workers(model),
        "jobQueueStatus": {"remainingCapacity": model.queue.remaining_capacity, "pendingRequests": model.queue.pending},
    }


def describe_workers(model: ModelVersion) -> list[dict[str, Any]]:
    return [
        {
            "id": str(w.worker_id),
            "startTime": start_time(w.start_time),
            "status": "READY" if w.state is WorkerState.READY else "UNLOADING",
            "memoryUsage": resident_bytes(getattr(w, "pids", ())),
            "pid": w.pid if w.pid is not None else -1,
            "gpu": w.gpu_id is not None,
            "gpuUsage": "N/A",
        }
        for w in model.workers
    ]


async def add_other_frontends(peers: PeerView, bodies: list[dict[str, Any]]) -> None:
    """With several frontend processes, a description lists every frontend's workers (each runs its share of
    ``minWorkers``) and adds up their queues: one server's model, whichever frontend answers."""
    if not bodies:
        return
    found = await peers.workers(bodies[0]["modelName"], [body["modelVersion"] for body in bodies])
    for body in bodies:
        queue = body["jobQueueStatus"]
        for frontend in found:
            part = frontend.get(body["modelVersion"])
            if part is None:
                continue
            body["workers"] += part["workers"]
            queue["remainingCapacity"] += part["remainingCapacity"]
            queue["pendingRequests"] += part["pendingRequests"]
        body["workers"].sort(key=lambda worker: int(worker["id"]))
