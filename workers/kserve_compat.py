"""Make ``import kserve...`` work for KServe model scripts when KServe itself is not installed.

The shim package (``kserve_shim/kserve``) re-exports :mod:`workers.kserve_api` under the import paths model code
uses: ``kserve`` (``Model``, ``InferRequest``, ``ModelServer``...), ``kserve.model``, ``kserve.errors``,
``kserve.protocol.infer_type``, ``kserve.utils.utils``, ``kserve.utils.numpy_codec``, ``kserve.model_repository``,
``kserve.model_server``, ``kserve.logging``, ``kserve.constants.constants``, ``kserve.context`` and
``kserve.predictor_config``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent / "kserve_shim"
"""Holds a top-level ``kserve`` package: our stand-in for KServe's."""


def install_kserve_shim() -> bool:
    """Append :data:`SHIM_DIR` to ``sys.path`` unless a real ``kserve`` package is importable; True if the shim is
    used.

    Appending (not prepending) keeps a real KServe, or a model's own ``kserve`` module, in charge."""
    shim = str(SHIM_DIR)
    if shim in sys.path:
        return True
    if importlib.util.find_spec("kserve") is not None:
        return False
    sys.path.append(shim)
    importlib.invalidate_caches()
    return True
