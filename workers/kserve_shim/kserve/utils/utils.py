"""``kserve.utils.utils``: helpers for model code (``get_predict_input``, ``get_predict_response``...)."""

from workers.kserve_api.utils import (
    cpu_count,
    generate_uuid,
    get_predict_input,
    get_predict_response,
    is_structured_cloudevent,
    is_v1,
    is_v2,
    strtobool,
)

__all__ = [
    "cpu_count",
    "generate_uuid",
    "get_predict_input",
    "get_predict_response",
    "is_structured_cloudevent",
    "is_v1",
    "is_v2",
    "strtobool",
]
