"""The ``torchserve`` runtime: a TorchServe handler, served as TorchServe 0.12's Python backend serves it.

Loading resolves, imports and initialises the handler (``workers.handler_loader``: the manifest's ``handler``, a
``service_envelope`` around it, the ``ts`` shim when TorchServe is not installed); running a batch builds
TorchServe's ``data`` rows and request headers from the job maps and encodes what the handler returns
(``workers.handler_runner``, ``workers.context``). What a handler sees is described in docs/handlers.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..handler_loader import load_service
from ..handler_runner import Service

__all__ = ["Service", "load"]


def load(message: Mapping[str, Any]) -> Service:
    """A loaded TorchServe handler; :class:`~workers.runtimes.LoadError` when it cannot be served.

    :class:`~workers.handler_runner.Service` is the :class:`~workers.runtimes.Runtime`: its ``run_batch`` takes the
    job maps of an ``infer`` frame."""
    return load_service(message)
