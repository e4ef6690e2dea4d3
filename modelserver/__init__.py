from workers.compiled_modules import install as _use_compiled_modules

_use_compiled_modules()  # before any module of the compiled group is imported (workers/compiled_modules.py)

__version__ = "0.1.0"

TORCHSERVE_VERSION = "0.12.0"
"""The TorchServe release whose APIs we serve: the version TorchServe's own API descriptions carry."""
