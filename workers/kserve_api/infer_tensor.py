"""KServe's tensor types: ``InferInput``, ``InferOutput`` and ``RequestedOutput`` (``kserve.protocol.infer_type``).

A tensor holds its elements either as ``data`` (a list, flat or nested, as JSON carries them; or a numpy array that
``to_rest`` converts) or as ``_raw_data`` (bytes-like: the little-endian, row-major elements, or the ``BYTES``
framing), which is what the binary tensor data extension carries. ``_raw_data`` is private in name only: KServe's
users and our runtime set it directly to hand over binary data without a copy (a ``memoryview`` or ``bytearray``
works; :meth:`as_numpy` is then a view of it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .codec import deserialize_bytes_tensor, from_np_dtype, little_endian, serialize_byte_tensor, to_np_dtype
from .errors import InferenceError, InvalidInput

__all__ = ["InferInput", "InferOutput", "RequestedOutput"]


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        return isinstance(left, np.ndarray) and isinstance(right, np.ndarray) and np.array_equal(left, right)
    return bool(left == right)


class _InferTensor:
    """What :class:`InferInput` and :class:`InferOutput` share (KServe writes them twice)."""

    _role = "input"

    def __init__(
        self,
        name: str,
        shape: list[int],
        datatype: str,
        data: Any = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self._name = name
        self._shape = shape
        self._datatype = datatype.upper()
        self._parameters = parameters
        self._data = data
        self._raw_data: Any = None
        self._list_of: tuple[list[Any], Any] | None = None
        """``(data, dtype)`` when ``data`` is the list :meth:`set_data_from_numpy` made of an array of that dtype:
        the runtime then packs it back with numpy, not element by element (:func:`~workers.runtimes.kserve_codec.
        output_tensors`)."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def datatype(self) -> str:
        return self._datatype

    @property
    def data(self) -> Any:
        return self._data

    @data.setter
    def data(self, data: Any) -> None:
        self._data = data

    @property
    def shape(self) -> list[int]:
        return self._shape

    @shape.setter
    def shape(self, shape: list[int]) -> None:
        self._shape = shape

    @property
    def parameters(self) -> dict[str, Any] | None:
        return self._parameters

    @parameters.setter
    def parameters(self, parameters: dict[str, Any] | None) -> None:
        self._parameters = parameters

    def _invalid_datatype(self, dtype: Any) -> str:
        return f"invalid datatype {dtype} in the input"

    def as_numpy(self) -> np.ndarray:
        """The elements as a numpy array of ``shape``.

        From ``_raw_data``: a view of it (no copy) for fixed-size types, an object array of ``bytes`` for ``BYTES``.
        From ``data``: ``np.array(data, dtype)`` reshaped, so flat and nested lists both work and strings of digits
        are coerced as numpy does. :class:`InvalidInput` for a datatype numpy cannot hold (``BF16``, unknown names)
        and for data that does not fit the datatype or shape."""
        dtype = to_np_dtype(self._datatype)
        if dtype is None:
            raise InvalidInput(self._invalid_datatype(dtype))
        try:
            if self._raw_data is not None:
                if self._datatype == "BYTES":
                    array = deserialize_bytes_tensor(self._raw_data)
                else:
                    array = np.frombuffer(self._raw_data, dtype=np.dtype(dtype).newbyteorder("<"))
            else:
                array = np.array(self._data, dtype=dtype)
            return array.reshape(self._shape)
        except (ValueError, TypeError, OverflowError) as err:
            if isinstance(err, InvalidInput):
                raise
            raise InvalidInput(
                f"{self._role} '{self._name}': its data does not fit datatype {self._datatype} and shape "
                f"{list(self._shape) if self._shape is not None else None}: {err}"
            ) from None

    def set_data_from_numpy(self, input_tensor: np.ndarray, binary_data: bool = True) -> None:
        """Set the elements from a numpy array of this tensor's datatype and shape (else :class:`InferenceError`).

        ``binary_data=True`` (the default) keeps them as ``_raw_data`` (``data`` becomes None) and sets
        ``parameters["binary_data_size"]``; ``False`` makes ``data`` a flat row-major list (``BYTES`` elements
        decoded as UTF-8 strings, :class:`InferenceError` if one is not UTF-8), drops ``_raw_data`` and removes
        ``binary_data_size``. A datetime64 array is taken as an object array (``BYTES`` of its ``str()``)."""
        if not isinstance(input_tensor, np.ndarray):
            raise InferenceError("input_tensor must be a numpy array")
        dtype = from_np_dtype(input_tensor.dtype)
        if input_tensor.dtype.kind == "M":
            input_tensor = input_tensor.astype(np.object_)
        if self._datatype != dtype:
            raise InferenceError(f"got unexpected datatype {dtype} from numpy array, expected {self._datatype}")
        shape = self._shape if self._shape is not None else ()
        if len(shape) != len(input_tensor.shape) or any(
            want != got for want, got in zip(shape, input_tensor.shape, strict=True)
        ):
            raise InferenceError(
                f"got unexpected numpy array shape [{str(input_tensor.shape)[1:-1]}], "
                f"expected [{str(self._shape)[1:-1]}]"
            )
        if not binary_data:
            if self._parameters:
                self._parameters.pop("binary_data_size", None)
            self._raw_data = None
            if self._datatype == "BYTES":
                self._data = _utf8_list(input_tensor)
                self._list_of = None
            else:
                self._data = input_tensor.ravel(order="C").tolist()
                self._list_of = (self._data, input_tensor.dtype)
            return
        self._data = None
        self._list_of = None
        if self._datatype == "BYTES":
            framed = serialize_byte_tensor(input_tensor)
            self._raw_data = framed.item() if framed.size > 0 else b""
        else:
            self._raw_data = little_endian(input_tensor).tobytes()
        if self._parameters is None:
            self._parameters = {"binary_data_size": len(self._raw_data)}
        else:
            self._parameters["binary_data_size"] = len(self._raw_data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "datatype": self.datatype,
            "data": self.data,
            "parameters": self.parameters,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return False
        return (
            self.name == other.name
            and self.shape == other.shape
            and self.datatype == other.datatype
            and self.parameters == other.parameters
            and _same(self.data, other.data)
            and _same(self._raw_data, other._raw_data)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f'"name": "{self.name}",'
            f'"shape": {self.shape},'
            f'"datatype": "{self.datatype}",'
            f'"data": {self.data},'
            f'"parameters": {self.parameters}'
        )

    def __str__(self) -> str:
        return self.__repr__()


def _utf8_list(array: np.ndarray) -> list[str]:
    """BYTES elements as JSON strings: ``bytes`` decoded as UTF-8, anything else as ``str(x)``."""
    result: list[str] = []
    for value in array.ravel(order="C").tolist():
        if isinstance(value, bytes):
            try:
                result.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise InferenceError(
                    f'Failed to encode "{value}" using UTF-8. Please use binary_data=True, if'
                    " you want to pass a byte array."
                ) from None
        else:
            result.append(str(value))
    return result


class InferInput(_InferTensor):
    """One input tensor of an :class:`~workers.kserve_api.infer_type.InferRequest`:
    ``InferInput(name, shape, datatype, data=None, parameters=None)``; ``datatype`` is upper-cased."""

    def as_string(self) -> list[str]:
        """The ``BYTES`` elements as strings (``bytes`` decoded as UTF-8), flat; nested lists are flattened one
        level as in KServe. :class:`InvalidInput` for another datatype."""
        if self._datatype != "BYTES":
            raise InvalidInput(f"invalid datatype {self.datatype} in the input")
        if self._data is None and self._raw_data is not None:
            values: list[Any] = self.as_numpy().ravel().tolist()
        else:
            values = []
            for item in self._data or []:
                if isinstance(item, list | tuple):
                    values.extend(item)
                else:
                    values.append(item)
        return [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in values]


class InferOutput(_InferTensor):
    """One output tensor of an :class:`~workers.kserve_api.infer_type.InferResponse`:
    ``InferOutput(name, shape, datatype, data=None, parameters=None)``; ``datatype`` is upper-cased."""

    _role = "output"

    def _invalid_datatype(self, dtype: Any) -> str:
        return "invalid datatype in the input"


class RequestedOutput:
    """An output the client asked for (``outputs`` of a V2 request): ``RequestedOutput(name, parameters=None)``."""

    def __init__(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        self._name = name
        self._parameters = parameters

    @property
    def name(self) -> str:
        return self._name

    @property
    def parameters(self) -> dict[str, Any] | None:
        return self._parameters

    @parameters.setter
    def parameters(self, parameters: dict[str, Any] | None) -> None:
        self._parameters = parameters

    @property
    def binary_data(self) -> Any:
        """``parameters["binary_data"]``, or None when it is not given."""
        if self._parameters and "binary_data" in self._parameters:
            return self._parameters["binary_data"]
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestedOutput):
            return False
        return self.name == other.name and self.parameters == other.parameters

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RequestedOutput(name={self.name}, parameters={self.parameters})"

    def __str__(self) -> str:
        return self.__repr__()


def _contains_fp16_datatype(infer_response: Any) -> bool:
    """Whether some output of ``infer_response`` (an :class:`~workers.kserve_api.infer_response.InferResponse`) is
    FP16 (KServe's helper: such a response cannot be JSON)."""
    return any(output.datatype == "FP16" for output in infer_response.outputs)
