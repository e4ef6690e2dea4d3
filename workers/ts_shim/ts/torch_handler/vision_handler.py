"""``ts.torch_handler.vision_handler``: the base for image handlers."""

from workers.handlers.vision import VisionHandler

__all__ = ["VisionHandler"]
