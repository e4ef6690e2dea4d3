"""KServe's loggers (``kserve.logging`` in KServe 0.21): ``logger`` ("kserve") and ``trace_logger``
("kserve.trace", where ``Model`` writes its per-request latency line), and ``configure_logging``.

Our default configuration is KServe's without the uvicorn loggers (there is no uvicorn here): both loggers write to
stderr at ``KSERVE_LOGLEVEL`` (default INFO) in KServe's formats and do not propagate.
"""

from __future__ import annotations

import json
import logging
import logging.config
from typing import Any

from .constants import KSERVE_LOGLEVEL

__all__ = [
    "KSERVE_LOGGER_NAME",
    "KSERVE_LOG_CONFIG",
    "KSERVE_TRACE_LOGGER_NAME",
    "configure_logging",
    "logger",
    "trace_logger",
]

KSERVE_LOGGER_NAME = "kserve"
KSERVE_TRACE_LOGGER_NAME = "kserve.trace"
KSERVE_LOGGER_FORMAT = (
    "%(asctime)s.%(msecs)03d %(process)s %(name)s %(levelname)s [%(filename)s:%(funcName)s():%(lineno)s] %(message)s"
)
KSERVE_TRACE_LOGGER_FORMAT = "%(asctime)s.%(msecs)03d %(process)s %(name)s %(message)s"
KSERVE_LOGGER_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

KSERVE_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "kserve": {"()": "logging.Formatter", "fmt": KSERVE_LOGGER_FORMAT, "datefmt": KSERVE_LOGGER_DATE_FORMAT},
        "kserve_trace": {
            "()": "logging.Formatter",
            "fmt": KSERVE_TRACE_LOGGER_FORMAT,
            "datefmt": KSERVE_LOGGER_DATE_FORMAT,
        },
    },
    "handlers": {
        "kserve": {"formatter": "kserve", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "kserve_trace": {"formatter": "kserve_trace", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "kserve": {"handlers": ["kserve"], "level": KSERVE_LOGLEVEL, "propagate": False},
        "kserve.trace": {"handlers": ["kserve_trace"], "level": KSERVE_LOGLEVEL, "propagate": False},
    },
}

logger = logging.getLogger(KSERVE_LOGGER_NAME)
trace_logger = logging.getLogger(KSERVE_TRACE_LOGGER_NAME)


def configure_logging(log_config: dict[str, Any] | str | None = None) -> None:
    """Configure the loggers: :data:`KSERVE_LOG_CONFIG` when ``log_config`` is None (skipped when the "kserve"
    logger already has handlers), a ``dictConfig`` dict, or a file: ``.json``, ``.yaml``/``.yml``, else
    ``fileConfig``'s format."""
    if log_config is None and logger.hasHandlers():
        return
    if log_config is None:
        logging.config.dictConfig(KSERVE_LOG_CONFIG)
    elif isinstance(log_config, dict):
        logging.config.dictConfig(log_config)
    elif log_config.endswith(".json"):
        with open(log_config, encoding="utf-8") as file:
            logging.config.dictConfig(json.load(file))
    elif log_config.endswith((".yaml", ".yml")):
        import yaml

        with open(log_config, encoding="utf-8") as file:
            logging.config.dictConfig(yaml.safe_load(file))
    else:
        logging.config.fileConfig(log_config, disable_existing_loggers=False)
