"""``ts.handler_utils.utils``: streaming of intermediate responses."""

from workers.streaming import send_intermediate_predict_response

__all__ = ["send_intermediate_predict_response"]
