"""The text example: an EmbeddingBag sentiment classifier served by the built-in ``text_classifier`` handler."""
