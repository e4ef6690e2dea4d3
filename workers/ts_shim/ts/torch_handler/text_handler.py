"""``ts.torch_handler.text_handler``: the base for text handlers, with TorchServe's clean-up regexes."""

from workers.handlers.text import CLEANUP_REGEX, CONTRACTIONS_PATTERN, TextHandler

__all__ = ["CLEANUP_REGEX", "CONTRACTIONS_PATTERN", "TextHandler"]
