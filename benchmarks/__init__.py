"""Load benchmarks for the model server: ``python -m benchmarks`` (see benchmarks/README.md)."""
