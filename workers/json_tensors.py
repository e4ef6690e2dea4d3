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
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from .tensors import Tensor

ANSWER_STYLES = ("mindspore", "angel")
"""``parameters.answer`` of a job: ``mindspore``, a JSON object of outputs by name (:func:`encode_tensor`);
``angel``, the same with every value as text (:func:`angel_text`); written by :func:`compact_json`."""


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


_ENCODE = c_make_encoder and c_make_encoder(
    None, _not_serializable, encode_basestring_ascii, None, ":", ",", False, False, True
)


def compact_json(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"))`` with the C encoder made once (``json.dumps`` with an option
    builds one per call, which costs more than a small answer). Our answers hold no cycles, so there is no cycle
    check (a cycle would end in RecursionError instead of ValueError)."""
    if _ENCODE is None:  # no C accelerator
        return json.dumps(value, separators=(",", ":"))
    return "".join(_ENCODE(value, 0))


def angel_text(value: Any) -> str:
    """Angel's prediction values are strings: a number as its shortest form, a bool as ``true``/``false``, text as
    it is, anything else (an array) as compact JSON."""
    kind = type(value)
    if kind is float or kind is int or kind is str:  # the usual answers, without the checks below
        return value if kind is str else repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return compact_json(value)


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
