"""Make ``import ts...`` work for unmodified TorchServe handlers, whichever ``ts`` package is importable.

Without TorchServe, :func:`install_ts_shim` appends our ``ts`` shim to ``sys.path``. With the real ``torchserve``
package (or any other ``ts``), that one wins everywhere: the shim is not installed, and the shim's own
``ts/__init__`` hands over to the other package if the shim was put first on the path anyway (a ``PYTHONPATH``
from ``python -m modelserver.ts_path``). Handlers then call the real package's functions with our context:
:func:`context_class` makes it a subclass of the real ``ts.context.Context``, and its ``cl_socket`` understands
the bytes the real ``send_intermediate_predict_response`` writes (``workers.context.StreamSocket``).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import logging
import os
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import Context

SHIM_DIR = Path(__file__).resolve().parent / "ts_shim"
"""Holds a top-level ``ts`` package with the modules handlers import (context, utils, handler_utils, metrics...)."""

logger = logging.getLogger(__name__)


def _is_shim_dir(entry: str) -> bool:
    try:
        return Path(entry or os.getcwd()).resolve() == SHIM_DIR
    except OSError:
        return False


def other_ts_spec() -> ModuleSpec | None:
    """Where ``import ts`` would find a ``ts`` that is not our shim (the real TorchServe, normally), else None."""
    path = [entry for entry in sys.path if not _is_shim_dir(entry)]
    return importlib.machinery.PathFinder.find_spec("ts", path)


def install_ts_shim() -> bool:
    """Append :data:`SHIM_DIR` to ``sys.path`` unless another ``ts`` package is importable; True if the shim is used.

    Appending (not prepending) keeps a real TorchServe, or a model's own ``ts`` module, in charge.
    """
    if any(_is_shim_dir(entry) for entry in sys.path):
        return other_ts_spec() is None
    loaded = sys.modules.get("ts")
    if loaded is not None:
        return is_shim(loaded.__file__)
    if other_ts_spec() is not None:
        return False
    sys.path.append(str(SHIM_DIR))
    importlib.invalidate_caches()
    return True


def is_shim(file: str | None) -> bool:
    """True if ``file`` (a module's ``__file__``) belongs to our shim."""
    return file is not None and SHIM_DIR in Path(file).resolve().parents


def context_class() -> type[Context]:
    """The class of the context handlers get: ours, or with the real ``ts`` importable, ours mixed into its
    ``ts.context.Context`` (our methods first), so ``isinstance(context, ts.context.Context)`` holds there too."""
    from .context import Context  # the shim's ts/__init__ imports this module: keep that import light

    if install_ts_shim():
        return Context
    try:
        real = importlib.import_module("ts.context").Context
    except Exception:
        logger.warning("The installed ts package has no usable ts.context.Context; handlers get ours", exc_info=True)
        return Context
    if not isinstance(real, type) or issubclass(Context, real) or is_shim(sys.modules["ts.context"].__file__):
        return Context
    route_real_metric_logs()
    return type("Context", (Context, real), {"__module__": __name__, "__doc__": Context.__doc__})


def route_real_metric_logs() -> None:
    """The real package's ``CachingMetric`` logs its ``[METRICS]`` lines; print them bare on stdout, where the
    frontend takes metric lines from (TorchServe's worker does the same with its logging set-up)."""
    metric_logger = logging.getLogger("ts.metrics")
    if any(getattr(h, "_modelserver_metrics", False) for h in metric_logger.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._modelserver_metrics = True  # type: ignore[attr-defined]
    metric_logger.addHandler(handler)
    metric_logger.setLevel(logging.INFO)
    metric_logger.propagate = False
