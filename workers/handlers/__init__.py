"""Our implementations of TorchServe's built-in handlers (``ts/torch_handler/*``), without torchvision or torchtext.

Handler files written for TorchServe reach these classes through the ``ts.torch_handler.*`` shim
modules, and a manifest ``handler: image_classifier`` (or ``ts.torch_handler.image_classifier``)
resolves to them through :data:`BUILTIN_HANDLERS`. Importing this package is cheap: torch, Pillow,
captum and onnxruntime are imported only by the modules (and code paths) that need them.

Each handler module defines exactly one class, so the loader's "exactly one class" rule picks it.
"""

from __future__ import annotations

BUILTIN_HANDLERS: dict[str, str] = {
    "base_handler": "workers.handlers.base",
    "vision_handler": "workers.handlers.vision",
    "image_classifier": "workers.handlers.image_classifier",
    "image_segmenter": "workers.handlers.image_segmenter",
    "object_detector": "workers.handlers.object_detector",
    "text_handler": "workers.handlers.text",
    "text_classifier": "workers.handlers.text_classifier",
}
"""TorchServe's built-in handler name (``ts.torch_handler.<name>``) -> the module implementing it here."""
