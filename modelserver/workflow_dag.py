"""Running a workflow's DAG for one request, as TorchServe's ``DagExecutor`` does.

The start node gets the request's inputs (its body, or its form fields and multipart parts) and headers. A node runs
as soon as every node feeding it has answered, so branches run in parallel (fan-out). A node with one parent gets
that parent's answer as its ``body``; a node with several (fan-in) gets one input per parent, named after the parent
node. Inputs between nodes carry no content type: a handler sees the bytes the parent answered.

Each node is one inference call to its model (:meth:`ModelVersion.infer`, through the caller's ``invoke``), given
``timeout-ms`` per attempt and retried ``retry-attempts`` times after a failure or a time-out (an attempt that times
out is cancelled in its worker). The answers of the nodes nothing follows (the leaves) are the result, in the order
they finished. The first node that fails for good ends the run: the nodes still running are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .errors import ModelNotFound, ServeError, ServiceUnavailable
from .types import Input
from .workflow_spec import WorkflowNode, WorkflowSpec

logger = logging.getLogger("modelserver.workflows")

Invoke = Callable[[WorkflowNode, list[Input]], Awaitable[bytes]]
"""One call of a node's model with these inputs: its answer's body."""


class NodeFailed(ServeError):
    """A node that failed for good: the whole request answers 500, as TorchServe's workflow inference does."""


async def run_dag(spec: WorkflowSpec, inputs: list[Input], invoke: Invoke) -> list[tuple[str, bytes]]:
    """The leaves' answers ``(node, body)`` for one request whose inputs are ``inputs``."""
    waiting = {name: len(parents) for name, parents in spec.parents.items()}
    node_inputs: dict[str, list[Input]] = {spec.start: inputs}
    running: dict[asyncio.Task[bytes], str] = {}
    leaves: list[tuple[str, bytes]] = []

    def start(name: str) -> None:
        task = asyncio.ensure_future(_attempts(spec.nodes[name], node_inputs.pop(name), invoke))
        running[task] = name

    start(spec.start)
    try:
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                name = running.pop(task)
                output = task.result()  # a failed node raises here: the rest are cancelled below
                children = spec.children[name]
                if not children:
                    leaves.append((name, output))
                for child in children:
                    if len(spec.parents[child]) == 1:
                        node_inputs[child] = [("body", "", output)]
                    else:
                        node_inputs.setdefault(child, []).append((name, "", output))
                    waiting[child] -= 1
                    if waiting[child] == 0:
                        start(child)
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    return leaves


async def _attempts(node: WorkflowNode, inputs: list[Input], invoke: Invoke) -> bytes:
    """The node's answer within ``retry-attempts`` retries of ``timeout-ms`` each.

    No worker (or a full queue) and a model that is gone are not retried: TorchServe passes their message on."""
    attempt = 0
    while True:
        try:
            return await asyncio.wait_for(invoke(node, inputs), node.timeout_ms / 1000)
        except (ServiceUnavailable, ModelNotFound) as err:
            logger.warning("Workflow node %s: %s", node.name, err.message)
            raise NodeFailed(err.message) from None
        except (TimeoutError, ServeError) as err:
            why = err.message if isinstance(err, ServeError) else f"no answer within {node.timeout_ms} ms"
            logger.warning("Workflow node %s, attempt %d failed: %s", node.name, attempt, why)
        if attempt >= node.retry_attempts:
            raise NodeFailed(f"Error executing {node.name}")
        attempt += 1
