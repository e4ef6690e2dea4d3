"""A workflow's specification: the ``models:`` and ``dag:`` of the YAML file a ``.war`` names, read as TorchServe's
``WorkFlow`` reads it.

``models:`` holds the settings every model of the workflow inherits (``min-workers``, ``max-workers``,
``batch-size``, ``max-batch-delay``, ``retry-attempts``, ``timeout-ms``) and one entry per model, with its ``url``
(a ``.mar`` in the model store, or a URL) and its own values of those settings. ``dag:`` maps each node to the
nodes its output goes to. A node named in ``models:`` runs that model; any other node is a function of the
workflow's handler file. Each node is served as a model named ``<workflow>__<node>``; a function node as a model
whose handler is ``<handler file>:<node>``, with one worker and batch size 1.

The DAG must have exactly one start node and no cycle: :class:`~modelserver.errors.InvalidDag` (400) with
TorchServe's messages otherwise. A specification that is not of this shape is an
:class:`~modelserver.errors.InvalidWorkflow` (500, as TorchServe answers it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidDag, InvalidWorkflow

SETTINGS = {
    "min-workers": 1,
    "max-workers": 1,
    "batch-size": 1,
    "max-batch-delay": 50,
    "retry-attempts": 1,
    "timeout-ms": 10000,
}
"""The settings ``models:`` may give for all models and each model may override, with TorchServe's defaults."""
FUNCTION_SETTINGS = {"min-workers": 1, "max-workers": 1, "batch-size": 1, "max-batch-delay": 0}
"""A function node's fixed settings (its ``retry-attempts`` and ``timeout-ms`` are the workflow's)."""


@dataclass(frozen=True)
class WorkflowNode:
    """One node of the DAG and the model that serves it."""

    name: str
    model_name: str
    url: str | None
    """The model's archive; None for a function of the handler file."""
    handler: str | None
    """``<handler file>:<function>`` for a function node; None for a model (its archive names its handler)."""
    min_workers: int
    max_workers: int
    batch_size: int
    max_batch_delay: int
    retry_attempts: int
    timeout_ms: int

    @property
    def is_function(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    settings: Mapping[str, int]
    """The workflow-wide values of :data:`SETTINGS` (describe shows four of them)."""
    nodes: Mapping[str, WorkflowNode]
    """Every DAG node, in the order the specification first names it."""
    children: Mapping[str, tuple[str, ...]]
    parents: Mapping[str, tuple[str, ...]]
    start: str
    dag_text: str
    """The ``dag`` section as Java prints the map (describe's ``workflowDag``): ``{pre=[m1], m1=[post]}``."""


def parse_spec(name: str, document: Any, handler_file: str, spec_file: str = "the specification") -> WorkflowSpec:
    """The workflow ``name`` described by ``document`` (the loaded YAML); ``handler_file`` names the handler's file."""
    if not isinstance(document, dict):
        raise InvalidWorkflow(f"Invalid workflow specification {spec_file}: not a mapping")
    models, dag = document.get("models"), document.get("dag")
    if not isinstance(models, dict):
        raise InvalidWorkflow(f"Invalid workflow specification {spec_file}: 'models' must be a mapping")
    if not isinstance(dag, dict) or not dag:
        raise InvalidWorkflow(f"Invalid workflow specification {spec_file}: 'dag' must be a non-empty mapping")
    settings = dict(SETTINGS)
    entries: dict[str, dict[str, Any]] = {}
    for key, value in models.items():
        if key in SETTINGS:
            settings[key] = _int_setting(value, f"models.{key}", spec_file)
        elif isinstance(value, dict) and isinstance(value.get("url"), str):
            entries[str(key)] = value
        else:
            raise InvalidWorkflow(f"Invalid workflow specification {spec_file}: model {key!r} needs a 'url'")
    builder = _DagBuilder(name, settings, entries, handler_file, spec_file)
    for source, targets in dag.items():
        builder.add_edges(str(source), targets)
    return builder.build(_java_text(dag))


def _int_setting(value: Any, where: str, spec_file: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidWorkflow(f"Invalid workflow specification {spec_file}: {where} must be an integer")
    return value


class _DagBuilder:
    """The nodes and edges in TorchServe's order of checks: a self loop or a repeated edge as it is added, then one
    start node, then no cycle."""

    def __init__(
        self,
        workflow: str,
        settings: Mapping[str, int],
        models: Mapping[str, Mapping[str, Any]],
        handler_file: str,
        spec_file: str,
    ) -> None:
        self.workflow = workflow
        self.settings = settings
        self.models = models
        self.handler_file = handler_file
        self.spec_file = spec_file
        self.nodes: dict[str, WorkflowNode] = {}
        self.children: dict[str, list[str]] = {}
        self.parents: dict[str, list[str]] = {}

    def _node(self, name: str) -> None:
        if name in self.nodes:
            return
        self.nodes[name] = self._make_node(name)
        self.children[name] = []
        self.parents[name] = []

    def _make_node(self, name: str) -> WorkflowNode:
        model = self.models.get(name)
        model_name = f"{self.workflow}__{name}"
        own = dict(self.settings)
        if model is None:
            own.update(FUNCTION_SETTINGS)
            url, handler = None, f"{self.handler_file}:{name}"
        else:
            for key in SETTINGS:
                if key in model:
                    own[key] = _int_setting(model[key], f"models.{name}.{key}", self.spec_file)
            url, handler = str(model["url"]), None
        return WorkflowNode(
            name=name,
            model_name=model_name,
            url=url,
            handler=handler,
            min_workers=own["min-workers"],
            max_workers=own["max-workers"],
            batch_size=own["batch-size"],
            max_batch_delay=own["max-batch-delay"],
            retry_attempts=own["retry-attempts"],
            timeout_ms=own["timeout-ms"],
        )

    def add_edges(self, source: str, targets: Any) -> None:
        if not isinstance(targets, list) or not all(isinstance(t, str) or t is None for t in targets):
            raise InvalidWorkflow(
                f"Invalid workflow specification {self.spec_file}: dag entry {source!r} must be a list of node names"
            )
        self._node(source)
        for target in targets:
            if target is None or not target.strip():
                continue
            self._node(target)
            if target == source:
                raise InvalidDag("Self loop exception")
            if target in self.children[source]:
                raise InvalidDag("loop exception")  # TorchServe's words for an edge given twice
            self.children[source].append(target)
            self.parents[target].append(source)

    def build(self, dag_text: str) -> WorkflowSpec:
        starts = [name for name in self.nodes if not self.parents[name]]
        if len(starts) != 1:
            raise InvalidDag("DAG should have only one start node")
        if len(_topological_order(starts[0], self.children, self.parents)) != len(self.nodes):
            raise InvalidDag("Not a valid DAG")
        return WorkflowSpec(
            name=self.workflow,
            settings=dict(self.settings),
            nodes=dict(self.nodes),
            children={name: tuple(c) for name, c in self.children.items()},
            parents={name: tuple(p) for name, p in self.parents.items()},
            start=starts[0],
            dag_text=dag_text,
        )


def _topological_order(start: str, children: Mapping[str, list[str]], parents: Mapping[str, list[str]]) -> list[str]:
    """Kahn's order from the start node; a node on a cycle (or only reachable through one) never enters it."""
    waiting = {name: len(p) for name, p in parents.items()}
    order, ready = [], [start]
    while ready:
        name = ready.pop()
        order.append(name)
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return order


def _java_text(value: Any) -> str:
    """``toString()`` of what SnakeYAML loads: maps ``{k=v, ...}``, lists ``[a, b]``, null, true/false."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_java_text(k)}={_java_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_java_text(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
