"""A minimal stand-in for TorchServe's ``ts`` package, so unmodified handlers import without TorchServe installed.

It is only put on ``sys.path`` (by ``workers.ts_compat.install_ts_shim``) when no real ``ts`` exists.
"""

__version__ = "0.12.0"
