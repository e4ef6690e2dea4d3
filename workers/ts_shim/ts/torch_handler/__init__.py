"""``ts.torch_handler``: TorchServe's built-in handlers, served by our implementations in ``workers.handlers``.

The classes are also reachable from here (``ts.torch_handler.BaseHandler``...), imported on first
access so that importing the package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_CLASSES = {
    "BaseHandler": "workers.handlers.base",
    "VisionHandler": "workers.handlers.vision",
    "ImageClassifier": "workers.handlers.image_classifier",
    "ImageSegmenter": "workers.handlers.image_segmenter",
    "ObjectDetector": "workers.handlers.object_detector",
    "TextHandler": "workers.handlers.text",
    "TextClassifier": "workers.handlers.text_classifier",
}


def __getattr__(name: str) -> Any:
    module = _CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
