"""``ts.torch_handler.text_classifier``: the default text classifier."""

from workers.handlers.text_classifier import TextClassifier

__all__ = ["TextClassifier"]
