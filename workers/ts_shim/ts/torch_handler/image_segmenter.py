"""``ts.torch_handler.image_segmenter``: the default image segmenter."""

from workers.handlers.image_segmenter import ImageSegmenter

__all__ = ["ImageSegmenter"]
