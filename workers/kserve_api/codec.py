"""numpy and JSON codecs of KServe's data types (``kserve.utils.numpy_codec`` and the ``BYTES`` framing of
``kserve.protocol.infer_type`` in KServe 0.21).

``BYTES`` tensors travel as KServe's ``serialize_byte_tensor`` lays them out: for each element, in row-major order,
a 4-byte little-endian unsigned length, then the element's bytes::

    serialize_byte_tensor(np.array([b"ab", "c"], dtype=object)).item() == b"\\x02\\x00\\x00\\x00ab\\x01\\x00\\x00\\x00c"

JSON is written compactly (no spaces) with UTF-8 kept as it is, which is what KServe's ``orjson.dumps`` writes for
the strings, ints, bools and usual floats of an inference body; non-finite floats become ``null`` as with orjson.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..datatypes import TensorError, deserialize_bytes, serialize_bytes
from ..oip_grpc import plain_parameters
from .errors import InferenceError, InvalidInput

__all__ = [
    "deserialize_bytes_tensor",
    "dumps",
    "from_np_dtype",
    "loads",
    "serialize_byte_tensor",
    "to_http_parameters",
    "to_np_dtype",
]

_NP_DTYPES: dict[str, Any] = {
    "BOOL": bool,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
_KIND_PREFIX = {"i": "INT", "u": "UINT", "f": "FP"}
_FIXED = frozenset(_NP_DTYPES) - {"BYTES"}


def to_np_dtype(datatype: Any) -> Any:
    """The numpy type of an Open Inference Protocol datatype (``bool`` for BOOL, ``np.object_`` for BYTES), or
    None for one numpy cannot hold: ``BF16``, as in KServe, and any unknown name."""
    return _NP_DTYPES.get(datatype)


def from_np_dtype(np_dtype: Any) -> str | None:
    """The datatype of a numpy dtype: bool, (u)int 8..64, float 16..64; object, bytes, str and datetime64 arrays are
    ``BYTES``; None for the rest (complex, timedelta, bfloat16...). Byte order does not matter."""
    try:
        dtype = np.dtype(np_dtype)
    except TypeError:
        return None
    kind = dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "OSUM":
        return "BYTES"
    prefix = _KIND_PREFIX.get(kind)
    if prefix is None or dtype.name == "bfloat16":
        return None
    datatype = f"{prefix}{8 * dtype.itemsize}"
    return datatype if datatype in _FIXED else None


def little_endian(array: np.ndarray) -> np.ndarray:
    """``array`` with little-endian elements (the wire's byte order); as it is when it already has them."""
    if array.dtype.byteorder == ">":
        return array.astype(array.dtype.newbyteorder("<"))
    return array


def serialize_byte_tensor(input_tensor: np.ndarray) -> np.ndarray:
    """The ``BYTES`` framing of an array's elements (row-major), as a 0-d object array holding one ``bytes``
    (``.item()`` gives it); an empty array gives an empty 1-d object array, as in KServe.

    ``bytes`` elements go as they are, ``str`` as UTF-8, anything else as ``str(x)`` in UTF-8. Object, bytes
    (``S``) and str (``U``) arrays are accepted; any other dtype raises :class:`InferenceError`."""
    if input_tensor.size == 0:
        return np.empty([0], dtype=np.object_)
    if input_tensor.dtype.kind not in "OSU":
        raise InferenceError("cannot serialize bytes tensor: invalid datatype")
    try:
        framed = serialize_bytes(input_tensor.ravel(order="C").tolist())
    except TensorError as err:
        raise InferenceError(f"cannot serialize bytes tensor: {err}") from None
    return np.asarray(framed, dtype=np.object_)


def deserialize_bytes_tensor(encoded_tensor: Any) -> np.ndarray:
    """The elements of a ``BYTES`` buffer as a 1-d object array of ``bytes``; :class:`InvalidInput` when the framing
    is truncated."""
    try:
        elements = deserialize_bytes(encoded_tensor)
    except TensorError as err:
        raise InvalidInput(str(err)) from None
    array = np.empty(len(elements), dtype=np.object_)
    array[:] = elements
    return array


def to_http_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as a plain dict for REST: a gRPC ``InferParameter`` (of any pool: ours, KServe's) becomes the
    value of its field, and one with no field set is left out, as in KServe; other values stay as they are."""
    return plain_parameters(parameters)


# -- JSON ---------------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            pass
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, np.ndarray | np.generic):
        return _finite(value.tolist())
    return value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (numpy scalars and arrays as their lists; NaN and infinities as ``null``)."""
    try:
        text = _ENCODER.encode(value)
    except ValueError:  # a non-finite float: write it as orjson does
        text = _ENCODER.encode(_finite(value))
    return text.encode("utf-8")


def loads(data: Any) -> Any:
    """Parse JSON from ``bytes``, a ``bytearray``, a ``memoryview`` or ``str``."""
    if isinstance(data, memoryview):
        data = data.tobytes()
    return json.loads(data)
