"""Worker runtimes: what runs a model inside a worker process, chosen by the ``load`` message's ``runtime``.

``worker_main`` knows only this module: :func:`load_runtime` turns a ``load`` message into a :class:`Runtime`, and
every ``infer`` frame goes to its :meth:`Runtime.run_batch`. A runtime kind is one module exposing
``load(load_message) -> Runtime`` (raising :class:`LoadError` when the model cannot be served), listed in
:data:`RUNTIMES`. Adding a runtime is writing that module and adding its line there (docs/protocol.md).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

logger = logging.getLogger(__name__)

EmitChunk = Callable[[dict[str, Any]], None]
"""Sends one item map to the frontend as a ``chunk`` frame (a streamed piece)."""

IsCancelled = Callable[[int], bool]
"""Tells whether the client of a job id went away."""

RUNTIMES: dict[str, str] = {
    "torchserve": "workers.runtimes.torchserve",  # a TorchServe handler (handler_loader, handler_runner, context)
    "kserve": "workers.runtimes.kserve",  # a KServe Model subclass (kserve_api, or the real kserve package)
    "servable": "workers.runtimes.servable",  # a module whose functions are the model's declared methods
}
"""Runtime kind (``load.runtime``) -> the module whose ``load(load_message)`` builds the runtime."""


class LoadError(Exception):
    """Loading failed; ``status`` is 507 for an out-of-memory failure, else 500, and ``str()`` is the message."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Runtime(Protocol):
    """A loaded model, as ``worker_main`` drives it."""

    def run_batch(
        self, jobs: list[dict[str, Any]], emit_chunk: EmitChunk, is_cancelled: IsCancelled
    ) -> list[dict[str, Any]]:
        """Run one ``infer`` frame's jobs (docs/protocol.md) and return one item map per job.

        Streamed pieces go to ``emit_chunk`` before the call returns. An item's ``tensors`` may hold
        :class:`~workers.tensors.Tensor` objects (``worker_main`` sends them as tensor maps) or tensor maps. Handler
        failures become error items: this call raises only when the worker itself is broken."""
        ...


def load_runtime(load: Mapping[str, Any]) -> Runtime:
    """The runtime named by ``load["runtime"]``, loaded; every failure is a :class:`LoadError`."""
    kind = load.get("runtime")
    module_name = RUNTIMES.get(kind) if isinstance(kind, str) else None
    if module_name is None:
        message = f"Unknown runtime kind '{kind}'; known: {', '.join(RUNTIMES)}"
        logger.error("%s", message)
        raise LoadError(message)
    try:
        return importlib.import_module(module_name).load(load)
    except LoadError:
        raise
    except MemoryError as exc:
        logger.error("System out of memory", exc_info=True)
        raise LoadError("System out of memory", 507) from exc
    except Exception as exc:
        logger.error("Failed to load the %s runtime", kind, exc_info=True)
        raise LoadError(str(exc) or type(exc).__name__) from exc
