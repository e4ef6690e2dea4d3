"""The registered workflows: register a ``.war``, unregister, describe, list, and run one (TorchServe's
``WorkflowManager``).

Registering reads the archive (:mod:`.workflow_archive`), then registers every DAG node as a model named
``<workflow>__<node>`` at once: a model node from its ``url`` in the model store, with the workflow's batch size,
batch delay and ``max-workers`` workers (a ``model-config.yaml`` with its own ``minWorkers``/``maxWorkers`` wins, as
at any registration), and the request's ``response_timeout`` and ``startup_timeout``; a function node as a model
whose handler is the function, run by a worker like any handler (one worker, batch size 1). Registration waits until
every worker has loaded. If any node fails, the nodes already registered are removed again and the answer is
TorchServe's 500 ``Workflow <name> has failed to register. Failures: [...]``.

The models of a workflow are ordinary models (``/models/<workflow>__<node>`` describes one, ``/predictions`` reaches
it) but live and die with their workflow: they are left out of config snapshots, a function node is left out of
``GET /models`` (as TorchServe, which lists only models with a url), and with several frontend processes workflows
are refused, since each frontend would hold its own.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from .archive import MODEL_NAME_PATTERN, InvalidModel, ModelArtifact
from .downloads import DownloadPolicy
from .errors import (
    BadRequest,
    ModelNotFound,
    ServeError,
    WorkersFailed,
    WorkflowConflict,
    WorkflowFailed,
    WorkflowNotFound,
)
from .model_version import ModelVersion
from .registration import register_workers, version_from_url
from .registry import ModelHost, wait_started
from .types import Input, Job, ResultStream
from .workflow_archive import WorkflowArchive, locate_war, open_war, release_war
from .workflow_dag import run_dag
from .workflow_spec import WorkflowNode, WorkflowSpec

logger = logging.getLogger("modelserver.workflows")

DEFAULT_TIMEOUT_S = 120
"""``response_timeout`` and ``startup_timeout`` of a registration that gives none (TorchServe's defaults)."""


class WorkflowHost(ModelHost, Protocol):
    peers: Any
    """Not None with several frontend processes (workflows are then refused)."""


@dataclass(frozen=True)
class RegisterWorkflowArgs:
    url: str | None
    workflow_name: str | None = None
    response_timeout: int = DEFAULT_TIMEOUT_S
    startup_timeout: int = DEFAULT_TIMEOUT_S


@dataclass
class Workflow:
    spec: WorkflowSpec
    archive: WorkflowArchive
    versions: dict[str, ModelVersion]
    """The served model of each DAG node, by node name."""


class WorkflowManager:
    def __init__(self, host: WorkflowHost, policy: DownloadPolicy) -> None:
        self.host = host
        self.policy = policy
        self._workflows: dict[str, Workflow] = {}
        self._reserved: set[str] = set()
        """Names of workflows being registered: a second registration of the name is a conflict at once."""
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- reading ---------------------------------------------------------------------------------

    def get(self, name: str) -> Workflow:
        workflow = self._workflows.get(name)
        if workflow is None:
            raise WorkflowNotFound(f"Workflow not found: {name}")
        return workflow

    def names(self) -> list[str]:
        return sorted(self._workflows)

    # -- registering -----------------------------------------------------------------------------

    async def register(self, args: RegisterWorkflowArgs) -> str:
        """Register a workflow; its name. Runs to the end even if the caller is cancelled (its client left)."""
        if self.host.peers is not None:
            raise BadRequest("Workflows are not supported with frontend_processes > 1.")
        task = asyncio.ensure_future(self._register(args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _register(self, args: RegisterWorkflowArgs) -> str:
        config = self.host.config
        source = await locate_war(args.url, config.workflow_store, self.policy)
        try:
            archive, spec = await asyncio.to_thread(open_war, source, args.url or "", args.workflow_name)
        except BaseException:
            if source.downloaded is not None:
                source.downloaded.unlink(missing_ok=True)
            raise
        try:
            if spec.name in self._workflows or spec.name in self._reserved:
                raise WorkflowConflict(spec.name)
            self._reserved.add(spec.name)
            try:
                versions = await self._register_nodes(spec, archive, args)
            finally:
                self._reserved.discard(spec.name)
        except BaseException:
            release_war(archive)
            raise
        self._workflows[spec.name] = Workflow(spec, archive, versions)
        logger.info("Registered workflow %s from %s: %d nodes", spec.name, args.url, len(spec.nodes))
        return spec.name

    async def _register_nodes(
        self, spec: WorkflowSpec, archive: WorkflowArchive, args: RegisterWorkflowArgs
    ) -> dict[str, ModelVersion]:
        nodes = list(spec.nodes.values())
        results = await asyncio.gather(
            *(self._register_node(spec.name, node, archive, args) for node in nodes), return_exceptions=True
        )
        versions = {node.name: r for node, r in zip(nodes, results, strict=True) if isinstance(r, ModelVersion)}
        failures = [_failure(node, r) for node, r in zip(nodes, results, strict=True) if isinstance(r, BaseException)]
        if failures:
            await self._remove(versions.values())
            raise WorkflowFailed(f"Workflow {spec.name} has failed to register. Failures: [{', '.join(failures)}]")
        return versions

    async def _register_node(
        self, workflow: str, node: WorkflowNode, archive: WorkflowArchive, args: RegisterWorkflowArgs
    ) -> ModelVersion:
        host = self.host
        api = {
            "batchSize": node.batch_size,
            "maxBatchDelay": node.max_batch_delay,
            "responseTimeout": args.response_timeout,
            "startupTimeout": args.startup_timeout,
        }
        if node.url is None:
            artifact = _function_artifact(node, archive)
            low, high = register_workers(artifact.yaml_config, node.max_workers)
            overrides = {"min_workers": low, "max_workers": high}
            version = host.create_version(artifact, url="", api=api, overrides=overrides)
        else:
            version = await version_from_url(
                host, node.url, self.policy, name=node.model_name, api=api, initial_workers=node.max_workers
            )
        version.workflow = workflow
        version.recipe = None  # no other frontend builds it again
        status = await wait_started(version.scale(version.spec.min_workers, version.spec.max_workers))
        if status != 200:
            await self._remove([version])
            raise WorkersFailed(version.spec.name, version.spec.version, status)
        return version

    # -- unregistering ---------------------------------------------------------------------------

    async def unregister(self, name: str) -> None:
        workflow = self._workflows.pop(name, None)
        if workflow is None:
            raise WorkflowNotFound(f"Workflow not found: {name}")
        try:
            await self._remove(workflow.versions.values())
        finally:
            release_war(workflow.archive)
        logger.info("Unregistered workflow %s", name)

    async def _remove(self, versions: Any) -> None:
        """Take the versions out of the registry (unless someone unregistered one already) and stop them."""
        registry = self.host.registry
        taken = []
        for version in versions:
            if registry.holds(version):
                registry.remove(version.spec.name, version.spec.version, force=True)
            taken.append(version)
        await asyncio.gather(*(version.unload() for version in taken))

    async def stop(self) -> None:
        """At shutdown, after the registry stopped every model: remove the unpacked archives."""
        for task in list(self._tasks):
            task.cancel()
        for workflow in self._workflows.values():
            release_war(workflow.archive)
        self._workflows.clear()

    # -- inference -------------------------------------------------------------------------------

    async def predict(self, name: str, headers: Any, inputs: list[Input], new_id: Any) -> list[tuple[str, bytes]]:
        """Run workflow ``name`` for one request: the leaves' answers, in the order they finished."""
        workflow = self.get(name)

        async def invoke(node: WorkflowNode, node_inputs: list[Input]) -> bytes:
            version = workflow.versions[node.name]
            if not self.host.registry.holds(version):
                raise ModelNotFound(version.spec.name)
            job = Job(new_id(), headers, list(node_inputs), loop=version.loop)
            outcome = await version.infer(job)
            if type(outcome) is ResultStream:
                return await _whole(outcome, self.host.config.max_response_size, node.name)
            return bytes(outcome.body)

        return await run_dag(workflow.spec, inputs, invoke)


async def _whole(stream: ResultStream, limit: int, node: str) -> bytes:
    """A streamed answer's bodies joined: a workflow node's answer is one value, of at most ``limit`` bytes
    (``max_response_size``: a stream that goes on past it is cancelled, not gathered without end)."""
    parts = []
    size = 0
    try:
        async for piece in stream:
            size += len(piece.body)
            if size > limit:
                raise ServeError(f"The answer of workflow node {node} exceeds max_response_size ({limit} bytes)")
            parts.append(bytes(piece.body))
    finally:
        await stream.aclose()
    return b"".join(parts)


def _failure(node: WorkflowNode, error: BaseException) -> str:
    """One entry of the failures list, in TorchServe's words."""
    if isinstance(error, WorkersFailed):
        return error.message
    message = error.message if isinstance(error, ServeError) else (str(error) or "Check error logs.")
    if not isinstance(error, ServeError):
        logger.error("Workflow node %s failed to register", node.model_name, exc_info=error)
    return f"Workflow Node {node.model_name} failed to register. Details: {message}"


def _function_artifact(node: WorkflowNode, archive: WorkflowArchive) -> ModelArtifact:
    """A function of the handler file as a model: TorchServe's manifest for it, served in the unpacked archive (the
    workflow removes the directory, so the artifact has no ``workdir`` of its own). Its name is checked as a model
    node's is when its archive is opened: the registry holds no name another registration would refuse."""
    if not MODEL_NAME_PATTERN.match(node.model_name):
        raise InvalidModel(f"Invalid model name: {node.model_name}")
    handler = node.handler or ""
    model = {"modelName": node.model_name, "version": "1.0", "modelVersion": "1.0", "handler": handler}
    return ModelArtifact(
        name=node.model_name,
        version="1.0",
        model_dir=str(archive.directory),
        handler=handler,
        manifest=MappingProxyType({"runtime": "python", "model": model}),
        yaml_config=MappingProxyType({}),
        source=str(archive.directory),
    )
