"""``ts.context``: the handler context and its per-request processor."""

from workers.context import Context, RequestProcessor

__all__ = ["Context", "RequestProcessor"]
