"""Make ``import ts...`` work for unmodified TorchServe handlers when TorchServe itself is not installed."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent / "ts_shim"
"""Holds a top-level ``ts`` package with the modules handlers import (context, utils, handler_utils, protocol)."""


def install_ts_shim() -> bool:
    """Append :data:`SHIM_DIR` to ``sys.path`` unless a real ``ts`` package is importable; True if the shim is used.

    Appending (not prepending) keeps a real TorchServe, or a model's own ``ts`` module, in charge.
    """
    shim = str(SHIM_DIR)
    if shim in sys.path:
        return True
    if importlib.util.find_spec("ts") is not None:
        return False
    sys.path.append(shim)
    importlib.invalidate_caches()
    return True
