"""numpy conversions of :class:`workers.tensors.Tensor`: imported (with numpy) only when a tensor meets numpy.

``Tensor.as_numpy`` and ``Tensor.from_numpy`` are the public names; this module holds their work so that
``workers/tensors.py``, which the frontend imports, never imports numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .datatypes import DATATYPES, ITEMSIZE, NUMPY_DTYPES, Buffer, TensorError, deserialize_bytes, serialize_bytes

FIXED_DTYPES = {datatype: np.dtype(name) for datatype, name in NUMPY_DTYPES.items() if name and name != "object"}
"""numpy's dtype objects of the fixed-size datatypes, made once: numpy parses a dtype given by name at every call."""


def to_numpy(datatype: str, shape: tuple[int, ...], data: Buffer) -> np.ndarray:
    """A view of a fixed-size tensor's data (read-only over ``bytes``, writable over a ``bytearray``); ``BF16`` as a
    float32 copy, ``BYTES`` as an object array of ``bytes``."""
    dtype = FIXED_DTYPES.get(datatype)
    if dtype is not None:
        array = np.frombuffer(data, dtype=dtype)
        return array if array.shape == shape else array.reshape(shape)  # a vector is already in shape
    if datatype == "BYTES":
        elements = deserialize_bytes(data)
        return np.fromiter(elements, dtype=object, count=len(elements)).reshape(shape)
    if datatype == "BF16":
        halves = np.frombuffer(data, dtype="<u2")
        return (halves.astype("<u4") << 16).view("<f4").reshape(shape)
    return np.frombuffer(data, dtype=NUMPY_DTYPES[datatype]).reshape(shape)


def numpy_fields(name: str, array: Any, datatype: str | None) -> tuple[str, tuple[int, ...], Any]:
    """``(datatype, shape, data)`` of a tensor holding ``array``; see ``Tensor.from_numpy``."""
    array = np.asarray(array)
    if datatype is None:
        datatype = datatype_of(name, array.dtype)
    elif datatype not in DATATYPES:
        raise TensorError(f"tensor {name!r}: unknown datatype {datatype!r}; known: {', '.join(DATATYPES)}")
    if datatype == "BYTES":
        return datatype, array.shape, serialize_bytes(array.ravel(order="C").tolist())
    if datatype == "BF16":
        return datatype, array.shape, bf16_data(name, array)
    target = np.dtype(NUMPY_DTYPES[datatype])
    if array.dtype != target:
        if not np.can_cast(array.dtype, target, casting="same_kind"):
            raise TensorError(f"tensor {name!r}: a {array.dtype} array cannot be stored as {datatype}")
        array = array.astype(target)
    flat = np.ascontiguousarray(array).reshape(-1)  # copies only an array that is not C-contiguous
    return datatype, array.shape, memoryview(flat.view(np.uint8))


def bf16_data(name: str, array: np.ndarray) -> memoryview:
    """bfloat16 bits of ``array``: each float32 bit pattern rounded to its upper 16 bits, to nearest even; a NaN
    stays a quiet NaN. An ``ml_dtypes`` bfloat16 array is taken as it is."""
    if array.dtype.name == "bfloat16":
        halves = np.ascontiguousarray(array).reshape(-1).view("<u2")
        return memoryview(halves.view(np.uint8))
    if not np.can_cast(array.dtype, np.float32, casting="same_kind"):
        raise TensorError(f"tensor {name!r}: a {array.dtype} array cannot be stored as BF16")
    singles = np.ascontiguousarray(array, dtype="<f4").reshape(-1).view("<u4")
    rounded = ((singles + np.uint32(0x7FFF) + ((singles >> 16) & 1)) >> 16).astype("<u2")  # wraps only for NaNs
    nan = (singles & 0x7FFF_FFFF) > 0x7F80_0000
    if nan.any():
        rounded[nan] = ((singles[nan] >> 16) | 0x0040).astype("<u2")
    return memoryview(rounded.view(np.uint8))


def datatype_of(name: str, dtype: np.dtype) -> str:
    """The datatype of a numpy dtype: bool, unsigned/signed ints and floats by size, object/str/bytes as ``BYTES``."""
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind in ("O", "U", "S"):
        return "BYTES"
    if dtype.name == "bfloat16":
        return "BF16"
    prefix = {"u": "UINT", "i": "INT", "f": "FP"}.get(kind)
    datatype = f"{prefix}{8 * size}" if prefix else ""
    if datatype not in ITEMSIZE:
        raise TensorError(f"tensor {name!r}: numpy dtype {dtype} has no Open Inference Protocol datatype")
    return datatype
