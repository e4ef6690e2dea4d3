"""KServe's Python runtime API on this server: ``from modelserver.kserve import Model, ModelServer`` in place of
``from kserve import Model, ModelServer``, and a KServe model script runs unchanged otherwise.

The model-side API (``Model``, ``InferRequest``, ``InferResponse``, ``InferInput``, ``InferOutput``, the errors, ...)
is :mod:`workers.kserve_api`, which worker processes use too; ``ModelServer`` (:mod:`.model_server`) starts this
server with the models given to it, and is imported only when asked for.

KServe's module paths are here too, with ``modelserver.kserve`` for ``kserve`` (``modelserver.kserve.errors``,
``.protocol.infer_type``, ``.utils.utils``, ``.constants.constants``...): this package's path goes on into the
``kserve`` shim's directory (:data:`workers.kserve_compat.SHIM_DIR`), whose modules re-export
:mod:`workers.kserve_api` under those names. Our own modules (``model_server``) come first.
"""

from __future__ import annotations

import importlib
from typing import Any

from workers.kserve_api import *  # noqa: F403
from workers.kserve_api import __all__ as _api_names
from workers.kserve_compat import SHIM_DIR

__path__.append(str(SHIM_DIR / "kserve"))  # noqa: F405  (the package's own __path__)

# As in KServe, the package's `constants` and `utils` are the inner modules (`kserve.utils.utils`).
from .constants import constants as constants  # noqa: E402
from .utils import utils as utils  # noqa: E402

__all__ = [*_api_names, "ModelServer", "model_server"]  # noqa: F405  (the last two: lazily, below)


def __getattr__(name: str) -> Any:
    if name in ("ModelServer", "model_server"):
        module = importlib.import_module(f"{__name__}.model_server")  # not `from . import`: it asks this hook again
        return module if name == "model_server" else module.ModelServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
