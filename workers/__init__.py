"""Backend worker processes: load a handler and run batches sent by the frontend."""

from .compiled_modules import install as _use_compiled_modules

_use_compiled_modules()  # before any module of the compiled group is imported (compiled_modules.py)
