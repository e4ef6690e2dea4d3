"""``ts.protocol.otf_message_handler``: only the streaming call handlers use; the wire codec is ours."""

from workers.streaming import send_intermediate_predict_response

__all__ = ["send_intermediate_predict_response"]
