"""``kserve.predictor_config``: ``PredictorConfig``."""

from workers.kserve_api.predictor_config import PredictorConfig

__all__ = ["PredictorConfig"]
