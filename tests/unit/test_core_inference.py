"""The core inference call (``ModelVersion.infer``) without HTTP: admission, queueing, awaiting, cancelling, streams
and the metrics every protocol shares (a scripted worker stands where a worker connection stands)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from modelserver.errors import BackendError, NoWorker, WorkerDied
from modelserver.metrics import MetricsSettings, ServerMetrics
from modelserver.model_spec import ModelSpec
from modelserver.model_version import ModelVersion
from modelserver.types import DESCRIBE, InferenceResult, Job, ResultStream
from modelserver.worker_feed import BatchFeed
from modelserver.worker_plan import WorkerState

from .scripted_worker import Answer, ScriptedWorker


def result(body: bytes = b"ok", status: int = 200) -> InferenceResult:
    return InferenceResult(status, "", {}, "text/plain", body)


def make_version(queue_size: int = 100, depth: int = 0) -> tuple[ModelVersion, ServerMetrics]:
    metrics = ServerMetrics(MetricsSettings(mode="prometheus"), hostname="host")
    spec = ModelSpec("m", "1.0", "/nonexistent", "h.py", {}, {}, job_queue_size=queue_size)
    return ModelVersion(spec, metrics.for_version("m", "1.0"), depth=depth), metrics


def summary(metrics: ServerMetrics) -> Any:
    [(name, version, numbers)] = metrics.summaries()
    assert (name, version) == ("m", "1.0")
    return numbers


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_result_comes_back_and_is_counted() -> None:
    async def test() -> None:
        version, metrics = make_version()

        async def answer(job: Job) -> None:
            job.succeed(result(b"hello"))

        version.pool.workers.append(ScriptedWorker(version, answer))  # type: ignore[arg-type]
        outcome = await version.infer(Job("r1", {}, [("body", "", b"x")], loop=version.loop))
        assert isinstance(outcome, InferenceResult) and outcome.body == b"hello"
        numbers = summary(metrics)
        assert (numbers.requests, numbers.succeeded, numbers.failed) == (1, 1, 0)

    run(test)


def test_a_handler_status_of_400_or_more_counts_as_failed() -> None:
    async def test() -> None:
        version, metrics = make_version()

        async def answer(job: Job) -> None:
            job.succeed(result(b"bad", 422))

        version.pool.workers.append(ScriptedWorker(version, answer))  # type: ignore[arg-type]
        outcome = await version.infer(Job("r1", {}, [], loop=version.loop))
        assert isinstance(outcome, InferenceResult) and outcome.status == 422
        assert (summary(metrics).succeeded, summary(metrics).failed) == (0, 1)

    run(test)


def test_a_backend_error_is_raised_and_counted() -> None:
    async def test() -> None:
        version, metrics = make_version()

        async def answer(job: Job) -> None:
            job.fail(BackendError("Prediction failed", 503))

        version.pool.workers.append(ScriptedWorker(version, answer))  # type: ignore[arg-type]
        with pytest.raises(BackendError, match="Prediction failed"):
            await version.infer(Job("r1", {}, [], loop=version.loop))
        assert (summary(metrics).requests, summary(metrics).failed) == (1, 1)

    run(test)


def test_no_worker_is_503_and_still_counted() -> None:
    async def test() -> None:
        version, metrics = make_version()
        with pytest.raises(NoWorker) as raised:
            await version.infer(Job("r1", {}, [], loop=version.loop), explicit_version=True)
        assert raised.value.status == 503 and 'Version 1.0"' in raised.value.message
        assert (summary(metrics).requests, summary(metrics).failed) == (1, 1)

    run(test)


def test_a_full_queue_refuses_at_once() -> None:
    async def test() -> None:
        version, metrics = make_version(queue_size=1)
        never: asyncio.Future[None] = version.loop.create_future()

        async def hold(job: Job) -> None:
            await never

        worker = ScriptedWorker(version, hold)
        worker.task.cancel()  # it never takes anything: the queue fills
        version.pool.workers.append(worker)  # type: ignore[arg-type]
        first = asyncio.create_task(version.infer(Job("r1", {}, [], loop=version.loop)))
        await settle()
        with pytest.raises(NoWorker):
            await version.infer(Job("r2", {}, [], loop=version.loop))
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert (summary(metrics).requests, summary(metrics).failed) == (2, 2)

    run(test)


def test_a_cancelled_caller_cancels_its_job_in_the_worker() -> None:
    async def test() -> None:
        version, metrics = make_version()
        never: asyncio.Future[None] = version.loop.create_future()

        async def hold(job: Job) -> None:
            await never

        worker = ScriptedWorker(version, hold)
        version.pool.workers.append(worker)  # type: ignore[arg-type]
        job = Job("r1", {}, [], loop=version.loop)
        caller = asyncio.create_task(version.infer(job))
        await settle()
        assert worker.taken == [job]
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert job.cancelled and worker.cancelled == [job.id]
        assert summary(metrics).failed == 1

    run(test)


def test_a_job_cancelled_while_queued_never_reaches_a_worker() -> None:
    async def test() -> None:
        version, _ = make_version()

        async def answer(job: Job) -> None:
            job.succeed(result())

        worker = ScriptedWorker(version, answer)
        worker.task.cancel()
        version.pool.workers.append(worker)  # type: ignore[arg-type]
        job = Job("r1", {}, [], loop=version.loop)
        caller = asyncio.create_task(version.infer(job))
        await settle()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert job.cancelled and version.queue.take_ready() == []  # the queue skips it

    run(test)


def stream_of(pieces: list[bytes], then: str = "end") -> Answer:
    """An answer that streams ``pieces`` (the last one final), or stops after them (``then="hang"``) or fails."""

    async def answer(job: Job) -> None:
        for index, body in enumerate(pieces):
            last = then == "end" and index == len(pieces) - 1
            job.succeed(result(body), last=last)
            await asyncio.sleep(0)
        if then == "fail":
            job.fail(WorkerDied())

    return answer


def test_a_stream_yields_every_piece_and_is_counted_once_closed() -> None:
    async def test() -> None:
        version, metrics = make_version()
        version.pool.workers.append(ScriptedWorker(version, stream_of([b"a", b"b", b"c"])))  # type: ignore[arg-type]
        outcome = await version.infer(Job("r1", {}, [], loop=version.loop))
        assert isinstance(outcome, ResultStream)
        assert version.metrics.streams == 1
        assert [piece.body async for piece in outcome] == [b"a", b"b", b"c"]
        await outcome.aclose()
        assert version.metrics.streams == 0
        assert (summary(metrics).succeeded, summary(metrics).failed) == (1, 0)

    run(test)


def test_a_stream_left_early_cancels_its_job() -> None:
    async def test() -> None:
        version, metrics = make_version()
        worker = ScriptedWorker(version, stream_of([b"a"], then="hang"))
        version.pool.workers.append(worker)  # type: ignore[arg-type]
        job = Job("r1", {}, [], loop=version.loop)
        outcome = await version.infer(job)
        assert isinstance(outcome, ResultStream)
        assert (await outcome.__anext__()).body == b"a"
        await outcome.aclose()
        await outcome.aclose()  # closing twice is harmless
        assert worker.cancelled == [job.id] and version.metrics.streams == 0
        assert summary(metrics).failed == 1

    run(test)


def test_a_stream_whose_worker_dies_raises_and_counts_as_failed() -> None:
    async def test() -> None:
        version, metrics = make_version()
        version.pool.workers.append(ScriptedWorker(version, stream_of([b"a", b"b"], then="fail")))  # type: ignore[arg-type]
        outcome = await version.infer(Job("r1", {}, [], loop=version.loop))
        assert isinstance(outcome, ResultStream)
        received = []
        with pytest.raises(WorkerDied):
            async for piece in outcome:
                received.append(piece.body)
        await outcome.aclose()
        assert received == [b"a", b"b"]
        assert (summary(metrics).succeeded, summary(metrics).failed) == (0, 1)

    run(test)


def test_a_describe_call_runs_alone_and_is_not_an_inference_request() -> None:
    async def test() -> None:
        version, metrics = make_version()
        version.queue.batch_size = 4
        version.queue.max_batch_delay = 0.05

        async def answer(job: Job) -> None:
            job.succeed(result(job.method.encode()))

        worker = ScriptedWorker(version, answer)
        version.pool.workers.append(worker)  # type: ignore[arg-type]
        predicts = [Job(f"p{n}", {}, [], loop=version.loop) for n in range(3)]
        describe = Job("d", {}, [], DESCRIBE, solo=True, loop=version.loop)
        outcomes = await asyncio.gather(
            version.infer(predicts[0]), version.infer(describe, admit=False), *map(version.infer, predicts[1:])
        )
        assert [o.body for o in outcomes] == [b"predict", b"describe", b"predict", b"predict"]  # type: ignore[union-attr]
        assert worker.batches == [["predict"], ["describe"], ["predict", "predict"]]  # describe never joins a batch
        assert summary(metrics).requests == 3

    run(test)


class RecordingChannel:
    """A worker's socket that keeps the frames sent to it (no worker process answers them)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.closed: asyncio.Future[BaseException | None] = loop.create_future()
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], checked: bool = True) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass


class DirectWorker:
    """A ready worker with a real feed on a recording socket: it takes jobs straight from ``submit`` (batch size
    1, empty queue), and a job sent while another is outstanding is held against the queue's capacity."""

    state = WorkerState.READY

    def __init__(self, version: ModelVersion) -> None:
        self.channel = RecordingChannel(version.loop)
        self.feed = BatchFeed("W-direct", version.pool.plan, lambda: None)
        self.feed.open(self.channel)

    @property
    def taken(self) -> list[int]:
        # the frames' job arrays: [id, request_id, headers, inputs, method, optional]
        return [job[0] for frame in self.channel.sent if frame["kind"] == "infer" for job in frame["jobs"]]


def test_jobs_sent_ahead_to_a_busy_worker_respect_the_queue_size() -> None:
    async def test() -> None:
        version, metrics = make_version(queue_size=1, depth=16)  # room for 16 batches on the worker's socket
        worker = DirectWorker(version)
        version.pool.workers.append(worker)  # type: ignore[arg-type]
        running = asyncio.create_task(version.infer(Job("r1", {}, [], loop=version.loop)))
        waiting = asyncio.create_task(version.infer(Job("r2", {}, [], loop=version.loop)))
        await settle()
        assert len(worker.taken) == 2 and version.queue.pending == 1  # one running, one waiting
        with pytest.raises(NoWorker):  # job_queue_size=1 is full, however much room the worker has
            await version.infer(Job("r3", {}, [], loop=version.loop))
        for task in (running, waiting):
            task.cancel()
        await asyncio.gather(running, waiting, return_exceptions=True)
        assert summary(metrics).requests == 3

    run(test)


def test_every_answer_array_from_the_worker_answers_its_job() -> None:
    """A worker's item arrays reach their jobs: an error item fails its job with the item's status; values of the
    wrong type fail it with a 500 (the job was taken from the in-flight map: it must not be left waiting); a good
    one succeeds."""

    async def test() -> None:
        version, _ = make_version(depth=16)
        worker = DirectWorker(version)
        version.pool.workers.append(worker)  # type: ignore[arg-type]
        calls = [asyncio.create_task(version.infer(Job(f"r{n}", {}, [], loop=version.loop))) for n in range(4)]
        await settle()
        ok, failed, bad_body, bad_headers = worker.taken
        worker.feed.on_result(
            [
                [failed, 422, "", {}, "", None, {"error": "unknown animal cow"}],
                [bad_body, 200, "", {}, "text/plain", 12, None],
                [bad_headers, 200, "", ["x"], "text/plain", b"", None],
                [ok, 200, "", {}, "text/plain", b"fine", None],
            ]
        )
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
        assert isinstance(outcomes[0], InferenceResult) and outcomes[0].body == b"fine"
        assert isinstance(outcomes[1], BackendError) and (outcomes[1].status, outcomes[1].message) == (
            422,
            "unknown animal cow",
        )
        for outcome in outcomes[2:]:
            assert isinstance(outcome, BackendError) and outcome.status == 500
            assert outcome.message.startswith("Malformed answer from the worker")

    run(test)


def test_a_stream_whose_last_answer_has_neither_body_nor_error_ends_with_a_500() -> None:
    """The final item of a streamed job with a nil body and no error (a broken worker): the client's stream ends
    with an error instead of waiting forever (found by a second reading: the push raised after the job had left the
    in-flight map)."""

    async def test() -> None:
        version, _ = make_version(depth=16)
        worker = DirectWorker(version)
        version.pool.workers.append(worker)  # type: ignore[arg-type]
        call = asyncio.create_task(version.infer(Job("r1", {}, [], loop=version.loop)))
        await settle()
        [job_id] = worker.taken
        worker.feed.on_chunk([job_id, 200, "", {}, "text/plain", b"piece", None])
        stream = await asyncio.wait_for(call, 1)
        assert type(stream) is ResultStream
        pieces: list[bytes] = []

        async def consume() -> None:
            async for piece in stream:
                pieces.append(piece.body)

        consumer = asyncio.create_task(consume())
        await settle()
        worker.feed.on_result([[job_id, 200, "", {}, "text/plain", None, None]])
        with pytest.raises(BackendError) as failure:
            await asyncio.wait_for(consumer, 2)
        assert failure.value.status == 500 and "needs a body or an error" in failure.value.message
        assert pieces == [b"piece"]

    run(test)


def test_the_configured_stream_buffer_size_is_the_bound_that_pauses_the_producer() -> None:
    """``stream_buffer_size`` (app.py sets ``ResultStream.buffer_limit``) applies to every stream, compiled too."""
    previous = ResultStream.buffer_limit
    ResultStream.buffer_limit = 5
    try:
        stream = ResultStream(InferenceResult(200, "", {}, "", b""))
        flows: list[bool] = []
        stream.on_flow(flows.append)
        stream.push(InferenceResult(200, "", {}, "", b"12345"))
        assert flows == []
        stream.push(InferenceResult(200, "", {}, "", b"6"))
        assert flows == [True]
    finally:
        ResultStream.buffer_limit = previous
