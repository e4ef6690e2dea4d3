"""``kserve.utils``: ``kserve.utils.utils`` and ``kserve.utils.numpy_codec``."""
