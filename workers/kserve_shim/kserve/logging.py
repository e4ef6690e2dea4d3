"""``kserve.logging``: the "kserve" ``logger``, the "kserve.trace" ``trace_logger`` and ``configure_logging``."""

from workers.kserve_api.log import (
    KSERVE_LOG_CONFIG,
    KSERVE_LOGGER_NAME,
    KSERVE_TRACE_LOGGER_NAME,
    configure_logging,
    logger,
    trace_logger,
)

__all__ = [
    "KSERVE_LOGGER_NAME",
    "KSERVE_LOG_CONFIG",
    "KSERVE_TRACE_LOGGER_NAME",
    "configure_logging",
    "logger",
    "trace_logger",
]
