"""Output tensors as JSON values, the way MindSpore Serving and Angel Serving print them.

Pure (no numpy). The frontend uses it for tensors a runtime answered with; the ``servable`` runtime uses it to answer
in JSON directly when the request asks (``parameters.answer``), so the frontend splices the text instead of decoding
tensors and encoding JSON on its single thread.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

from .tensors import Tensor

ANSWER_STYLES = ("mindspore", "angel")
"""``parameters.answer`` of a job: ``mindspore``, a JSON object of outputs by name (:func:`encode_tensor`);
``angel``, the same with every value as text (:func:`angel_text`)."""


def answer_json(outputs: Mapping[str, Any], style: str) -> bytes:
    """The outputs (JSON values by name, as :func:`encode_tensor` makes them) as one compact JSON object in
    ``style``."""
    if style == "angel":
        outputs = {name: angel_text(value) for name, value in outputs.items()}
    return json.dumps(outputs, separators=(",", ":")).encode("utf-8")


def angel_text(value: Any) -> str:
    """Angel's prediction values are strings: a number as its shortest form, a bool as ``true``/``false``, text as
    it is, anything else (an array) as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"))


def encode_tensor(tensor: Tensor) -> Any:
    """An output tensor as MindSpore's JSON value: a bare value for a scalar, nested arrays by shape; ints and
    floats as numbers (float16 and float32 at their shortest round-trip text), text as strings, bytes as
    ``{"b64": ...}``."""
    datatype = tensor.datatype
    if datatype == "BYTES":
        data = tensor.data
        if not tensor.shape and len(data) >= 4 and int.from_bytes(data[:4], "little") == len(data) - 4:
            element = bytes(data[4:])  # a scalar: the common text or bytes output, without the framing walk
            if (tensor.parameters or {}).get("content_type") == "str":
                return element.decode("utf-8", "replace")
            return {"b64": base64.b64encode(element).decode("ascii")}
        if (tensor.parameters or {}).get("content_type") == "str":
            flat: list[Any] = [item.decode("utf-8", "replace") for item in tensor.to_list()]
        else:
            flat = [{"b64": base64.b64encode(item).decode("ascii")} for item in tensor.to_list()]
    elif datatype == "FP32":
        flat = [_shortest(item, "<f") for item in tensor.to_list()]
    elif datatype == "FP16":
        flat = [_shortest(item, "<e") for item in tensor.to_list()]
    else:
        flat = tensor.to_list()
    return nest(flat, tensor.shape)


def nest(flat: list[Any], shape: tuple[int, ...]) -> Any:
    """Row-major ``flat`` as nested lists of ``shape``; a scalar shape gives the bare element."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = math.prod(shape[1:])
    if step == 0:
        return [nest([], shape[1:]) for _ in range(shape[0])]
    return [nest(flat[start : start + step], shape[1:]) for start in range(0, len(flat), step)]


def _shortest(value: float, code: str) -> float:
    """The shortest decimal that reads back as the same float32 (or float16): ``3.2``, not ``3.200000047683716``."""
    if not math.isfinite(value):
        return value
    for digits in range(6 if code == "<f" else 3, 10):
        text = float(f"{value:.{digits}g}")
        if struct.unpack(code, struct.pack(code, text))[0] == value:
            return text
    return value
