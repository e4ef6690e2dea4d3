"""``kserve.constants.constants``: the runtime constants model code reads."""

from workers.kserve_api import constants as _constants
from workers.kserve_api.constants import *  # noqa: F403

__all__ = list(_constants.__all__)
