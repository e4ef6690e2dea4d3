"""``ts.torch_handler.object_detector``: the default object detector."""

from workers.handlers.object_detector import ObjectDetector

__all__ = ["ObjectDetector"]
