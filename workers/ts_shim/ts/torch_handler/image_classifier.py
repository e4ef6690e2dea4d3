"""``ts.torch_handler.image_classifier``: the default image classifier."""

from workers.handlers.image_classifier import ImageClassifier

__all__ = ["ImageClassifier"]
