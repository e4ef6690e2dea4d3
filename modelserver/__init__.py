__version__ = "0.1.0"

TORCHSERVE_VERSION = "0.12.0"
"""The TorchServe release whose APIs we serve: the version TorchServe's own API descriptions carry."""
