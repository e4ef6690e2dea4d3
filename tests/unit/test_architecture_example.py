"""The worked example of docs/architecture.md ("How to add a protocol") runs as written."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from modelserver.http_messages import Response, StreamingResponse
from modelserver.listener import Listener
from modelserver.model_spec import ModelSpec
from modelserver.model_version import ModelVersion
from modelserver.registry import ModelRegistry
from modelserver.types import InferenceResult, Job

from .memory_request import MemoryRequest
from .scripted_worker import ScriptedWorker

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def example_dialect() -> type:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## How to add a protocol") :]
    [code] = re.findall(r"```python\n(.*?)```", section, re.S)[:1]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["PlainText"]


async def exclaim(job: Job) -> None:
    [(_, _, body)] = job.inputs
    job.succeed(InferenceResult(200, "", {}, "", body + b"!"))


async def stream_words(job: Job) -> None:
    [(_, _, body)] = job.inputs
    words = body.split()
    for index, word in enumerate(words):
        job.succeed(InferenceResult(200, "", {}, "", word), last=index == len(words) - 1)
        await asyncio.sleep(0)


def test_the_example_dialect_serves_answers_streams_and_errors() -> None:
    async def test() -> None:
        registry = ModelRegistry()
        for name, answer in (("shout", exclaim), ("words", stream_words)):
            version = ModelVersion(ModelSpec(name, "1.0", "/nonexistent", "h.py", {}, {}))
            version.pool.workers.append(ScriptedWorker(version, answer))  # type: ignore[arg-type]
            registry.add(version)
        listener = Listener("inference", [example_dialect()(registry)], 1000)

        answer = await listener.dispatch(MemoryRequest("POST", "/text/shout", body=b"hello"))
        assert isinstance(answer, Response) and (answer.status, answer.body) == (200, b"hello!")

        streamed = await listener.dispatch(MemoryRequest("POST", "/text/words", body=b"one two three"))
        assert isinstance(streamed, StreamingResponse)
        assert [chunk async for chunk in streamed.chunks] == [b"one", b"two", b"three"]
        await streamed.chunks.aclose()  # type: ignore[attr-defined]

        missing = await listener.dispatch(MemoryRequest("POST", "/text/nope", body=b"x"))
        assert isinstance(missing, Response) and missing.status == 404
        assert json.loads(bytes(missing.body)) == {"error": "Model not found: nope"}

    asyncio.run(asyncio.wait_for(test(), 10))
