"""``kserve.constants``: ``kserve.constants.constants``."""
