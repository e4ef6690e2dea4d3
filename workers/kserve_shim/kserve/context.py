"""``kserve.context``: the process-wide predictor configuration."""

from workers.kserve_api.context import get_predictor_config, set_predictor_config

__all__ = ["get_predictor_config", "set_predictor_config"]
