"""KServe's Python runtime API on this server: ``from modelserver.kserve import Model, ModelServer`` in place of
``from kserve import Model, ModelServer``, and a KServe model script runs unchanged otherwise.

The model-side API (``Model``, ``InferRequest``, ``InferResponse``, ``InferInput``, ``InferOutput``, the errors, ...)
is :mod:`workers.kserve_api`, which worker processes use too; ``ModelServer`` (:mod:`.model_server`) starts this
server with the models given to it, and is imported only when asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from workers.kserve_api import *  # noqa: F403
from workers.kserve_api import __all__ as _api_names

__all__ = [*_api_names, "ModelServer", "model_server"]  # noqa: F405  (the last two: lazily, below)


def __getattr__(name: str) -> Any:
    if name in ("ModelServer", "model_server"):
        module = importlib.import_module(f"{__name__}.model_server")  # not `from . import`: it asks this hook again
        return module if name == "model_server" else module.ModelServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
