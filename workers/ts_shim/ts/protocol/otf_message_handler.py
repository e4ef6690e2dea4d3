"""``ts.protocol.otf_message_handler``: the streaming call and TorchServe's predict-response encoding.

Bytes from ``create_predict_response`` written to ``context.cl_socket`` are streamed as TorchServe's would be."""

from workers.streaming import create_predict_response, send_intermediate_predict_response

__all__ = ["create_predict_response", "send_intermediate_predict_response"]
