"""Load benchmarks for the model server beside TorchServe, Mosec and a bare aiohttp echo:
``python -m benchmarks run`` (see benchmarks/README.md)."""
