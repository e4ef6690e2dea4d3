"""``send_intermediate_predict_response``: TorchServe's streaming call, routed to our frontend as ``chunk`` frames.

TorchServe writes an extra response frame to ``context.cl_socket``; we have no such socket in the
handler's hands, so the runner binds a sender to the context for each batch and this function
hands the pieces to it. The ``ts`` shim modules re-export this function under TorchServe's names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .output_encoding import OutputEncodingError, encode_output


class RequestCancelled(Exception):
    """Raised into the handler when every client it is streaming to has gone away."""

    status = 503

    def __init__(self, message: str = "Request cancelled.") -> None:
        super().__init__(message)
        self.message = message


def send_intermediate_predict_response(
    ret: Sequence[Any], req_id_map: Mapping[int, Any], message: str, code: int, context: Any = None
) -> None:
    """Emit ``ret[idx]`` as one streamed piece for each ``idx`` in ``req_id_map`` (usually ``context.request_ids``).

    With ``code`` 200 each piece carries the request's own status and headers from the context
    (plus ``ts_stream_next: true``); any other ``code`` fails those requests with ``message``, as
    a non-200 TorchServe frame does. Raises :class:`RequestCancelled` if all of them were cancelled.
    """
    sender = getattr(context, "_send_intermediate", None)
    if sender is None:
        raise TypeError("send_intermediate_predict_response() needs the handler's context as its 5th argument")
    sender(ret, req_id_map, message, code)


def create_predict_response(
    ret: Sequence[Any] | None,
    req_id_map: Mapping[int, Any],
    message: str,
    code: int,
    context: Any = None,
    ts_stream_next: bool = False,
) -> bytes:
    """TorchServe's encoding of a predict response (``workers.ts_wire``), for handlers that write to
    ``context.cl_socket`` themselves; with ``context`` each piece carries that request's status and headers."""
    from .ts_wire import WirePiece, WireResponse, encode_predict_response

    pieces = []
    for idx in req_id_map:
        if context is None:
            content_type, status, phrase, headers = "", code, "", {}
        else:
            if ts_stream_next:
                context.set_response_header(idx, "ts_stream_next", "true")
            elif context.get_response_headers(idx).get("ts_stream_next") == "true":
                context.set_response_header(idx, "ts_stream_next", "false")
            content_type = context.get_response_content_type(idx) or ""
            status, phrase = context.get_response_status(idx)
            headers = {str(k): str(v) for k, v in context.get_response_headers(idx).items()}
        try:
            body = b"error" if ret is None else bytes(encode_output(ret[idx]))
        except OutputEncodingError:
            return create_predict_response(None, req_id_map, "Unsupported model output data type.", 503)
        pieces.append(
            WirePiece(
                str(req_id_map[idx]), content_type, 200 if status is None else status, phrase or "", headers, body
            )
        )
    return encode_predict_response(WireResponse(code, message, pieces))
