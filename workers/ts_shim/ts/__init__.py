"""A stand-in for TorchServe's ``ts`` package, so unmodified handlers (and their unit tests) import without
TorchServe installed.

The worker appends it to ``sys.path`` only when no other ``ts`` exists (``workers.ts_compat.install_ts_shim``);
``python -m modelserver.ts_path`` prints its directory for a ``PYTHONPATH``. Either way a real TorchServe wins:
if another ``ts`` package is importable, importing this one loads that one instead and puts it in ``sys.modules``
(a module may replace itself there while it is imported), so ``ts.*`` are then TorchServe's own modules.
"""

import importlib.util as _util
import sys as _sys

from workers.ts_compat import other_ts_spec as _other_ts_spec

__version__ = "0.12.0"

_real = _other_ts_spec()
if _real is not None and _real.loader is not None:
    _module = _util.module_from_spec(_real)
    _sys.modules[__name__] = _module
    try:
        _real.loader.exec_module(_module)
    except BaseException:
        _sys.modules.pop(__name__, None)
        raise
