"""``send_intermediate_predict_response``: TorchServe's streaming call, routed to our frontend as ``chunk`` frames.

TorchServe writes an extra response frame to ``context.cl_socket``; we have no such socket in the
handler's hands, so the runner binds a sender to the context for each batch and this function
hands the pieces to it. The ``ts`` shim modules re-export this function under TorchServe's names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


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
