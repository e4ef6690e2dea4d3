"""Angel Serving's RESTful codec: request instances to feature vectors, named outputs to prediction maps, and the
model's declared input types (/work/shared/specs §6).

Pure (no numpy, no I/O). An Angel model reads a feature vector of ``dim`` features whose keys are ``keyType`` and
whose values are ``valueType``; every instance form becomes the same two tensors, ``indices`` (the feature keys:
INT32 / INT64, or text for ``DT_STRING`` keys, then named ``keys``) and ``values`` (FP32 / FP64), so a model has
one input shape whatever form the client chose:

* a dense vector ``[v0, v1, ...]``: features 0, 1, ...;
* a kv map ``{"3": 0.5, "7": 1.0}`` (values may be numeric strings), bare (more than two fields) or in a field
  (``{"values": {...}, "key": "id"}``); a dense vector in a field (``{"values": [...], "key": 1}``);
* ``{"sparseIndices": [...], "sparseValues": [...]}``;
* a text line ``"3:0.5 7:1.0"`` (LIBSVM's ``index:value`` pairs).

A field that is neither a map nor a vector names the instance (its ``sid``). Where Angel logs a malformed instance
and goes on without it, this codec raises :class:`AngelError` with a message naming the item.
"""

from __future__ import annotations

import json
import math
import re
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workers import json_body
from workers.datatypes import serialize_bytes
from workers.json_tensors import angel_text
from workers.tensors import TensorMap, tensor_map

_FLOAT32_MAX = 3.4028234663852886e38
KEY_TYPES = {"DT_INT32": "INT32", "DT_INT64": "INT64", "DT_STRING": "BYTES"}
VALUE_TYPES = {"DT_FLOAT": "FP32", "DT_DOUBLE": "FP64"}
_VALUE_NAMES = {datatype: name for name, datatype in VALUE_TYPES.items()}
_INT_RANGE = {"INT32": 2**31, "INT64": 2**63}
_CODES = {"INT32": "i", "INT64": "q", "FP32": "f", "FP64": "d"}
_KEPT_PACKERS = 64
"""Vectors up to this length have their ``struct`` kept on the model's :class:`InputInfo`."""


class AngelError(ValueError):
    """A request Angel cannot predict; ``str()`` is the message."""


_PIECES = re.compile(rb'"(?:[^"\\]|\\.)*+"?|[-0-9][0-9.eE+-]*')
"""A JSON string (left as it is) or a run json4s reads as one number: a digit or ``-``, then digits, ``.``, ``e``,
``E``, ``-``, ``+``. A string that never closes is one piece too, to the end (or to a backslash it cannot take):
tried again from each of its escaped quotes, a body of them took quadratic time on the frontend's loop."""
_STRICT_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def read_body(body: bytes) -> Any:
    """A predict body as Angel reads it (json4s' native parser): strict JSON, and numbers strict JSON refuses but
    json4s takes, ``1.`` (Angel's own test script sends ``"x4":1.``), ``-2.e1``, ``01``: a run with ``.``, ``e`` or
    ``E`` is a double (Java's ``parseDouble``), any other an integer. A body that is not JSON even so raises the
    strict parser's error."""
    try:
        return json_body.loads(body)
    except ValueError as strict:
        try:
            return json.loads(_PIECES.sub(_strict_number, body))
        except ValueError:
            raise strict from None


def _strict_number(found: re.Match[bytes]) -> bytes:
    text = found.group()
    if text[:1] == b'"' or _STRICT_NUMBER.fullmatch(text):
        return text
    try:
        number = float(text) if any(mark in text for mark in b".eE") else int(text)
    except ValueError:
        return text
    return repr(number).encode() if math.isfinite(number) else text


@dataclass(frozen=True)
class InputInfo:
    """The model's input: ``(keyType, valueType, dim)`` as Angel's ``typeMap`` and ``dim`` report them; ``dim`` < 0
    means unknown (no bound check, not reported). The rest is derived once, for the per-request path: the tensors'
    datatypes and struct codes, the keys an integer key type accepts (None for text keys) and the largest value."""

    key_type: str = "DT_INT32"
    value_type: str = "DT_FLOAT"
    dim: int = -1
    key_datatype: str = field(init=False, repr=False, compare=False)
    value_datatype: str = field(init=False, repr=False, compare=False)
    key_bounds: tuple[int, int] | None = field(init=False, repr=False, compare=False)
    key_code: str = field(init=False, repr=False, compare=False)
    value_code: str = field(init=False, repr=False, compare=False)
    value_limit: float = field(init=False, repr=False, compare=False)
    packers: dict[int, tuple[struct.Struct | None, struct.Struct]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key_datatype = KEY_TYPES.get(self.key_type, "")
        value_datatype = VALUE_TYPES.get(self.value_type, "")
        bounds = None
        if key_datatype in _INT_RANGE:
            low, high = -_INT_RANGE[key_datatype], _INT_RANGE[key_datatype] - 1
            bounds = (max(low, 0), min(high, self.dim - 1)) if self.dim >= 0 else (low, high)
        derived = {
            "key_datatype": key_datatype,
            "value_datatype": value_datatype,
            "key_bounds": bounds,
            "key_code": _CODES.get(key_datatype, ""),
            "value_code": _CODES.get(value_datatype, ""),
            "value_limit": _FLOAT32_MAX if value_datatype == "FP32" else sys.float_info.max,
            "packers": {},
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def type_map(self) -> dict[str, str]:
        return {"valueType": self.value_type, "keyType": self.key_type}


def _packers(info: InputInfo, count: int) -> tuple[struct.Struct | None, struct.Struct]:
    """The ``struct`` of ``count`` little-endian keys and of ``count`` values, kept on ``info`` for the usual short
    vectors, whose lengths a model's clients repeat: a format string built and looked up per request costs more than
    the packing. Text keys have no ``struct`` (None in its place)."""
    keys = struct.Struct(f"<{count}{info.key_code}") if info.key_code else None
    found = (keys, struct.Struct(f"<{count}{info.value_code}"))
    if count <= _KEPT_PACKERS:
        info.packers[count] = found
    return found


def input_info(yaml_config: Mapping[str, Any] | None) -> InputInfo:
    """The ``angel:`` section of a model-config.yaml (``keyType``, ``valueType``, ``dim``); defaults otherwise."""
    section = (yaml_config or {}).get("angel") or {}
    if not isinstance(section, Mapping):
        raise AngelError("the model's 'angel' settings must be a map of keyType, valueType and dim")
    key_type = str(section.get("keyType", "DT_INT32")).upper()
    value_type = str(section.get("valueType", "DT_FLOAT")).upper()
    if key_type not in KEY_TYPES:
        raise AngelError(f"keyType {key_type} is not one of {', '.join(KEY_TYPES)}")
    if value_type not in VALUE_TYPES:
        raise AngelError(f"valueType {value_type} is not one of {', '.join(VALUE_TYPES)}")
    dim = section.get("dim", -1)
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise AngelError(f"dim must be an integer, got {dim!r}")
    return InputInfo(key_type, value_type, dim)


@dataclass(slots=True)
class Instance:
    """One decoded instance: its name (``sid``; None when the client gave none) and its two tensors, as the maps they
    travel to the worker in (:func:`~workers.tensors.tensor_map`): they are read nowhere on the way."""

    name: str | None
    tensors: list[TensorMap]


def decode_instances(document: Any, info: InputInfo) -> list[Instance]:
    """The instances of a parsed ``{"instances": [...]}`` body; :class:`AngelError` for the first bad one."""
    if not isinstance(document, dict) or "instances" not in document:
        raise AngelError("Missing 'instances' key")
    items = document["instances"]
    if not isinstance(items, list) or not items:
        raise AngelError("Request data format error: 'instances' must be a non-empty list")
    first = items[0]
    if isinstance(first, dict) and (len(first) != 1 or "b64" not in first):  # not a lone {"b64": ...}
        if len(items) == 1:  # the usual request, without the loop
            return [_object(first, info, 0)]
        decoded = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise AngelError(f"Expecting object but got {_kind(item)} at item {index} of input list.")
            decoded.append(_object(item, info, index))
        return decoded
    decoded = []
    for index, item in enumerate(items):
        if isinstance(item, list):
            decoded.append(Instance(None, _vector(_dense(item, index), info, index)))
        elif isinstance(item, str):
            decoded.append(Instance(None, _vector(_libsvm(item, index), info, index)))
        else:
            raise AngelError(f"Expecting value/list but got {_kind(item)} at item {index} of input list")
    return decoded


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    return "value"


def _object(item: dict[str, Any], info: InputInfo, index: int) -> Instance:
    if "sparseIndices" in item:
        if "sparseValues" not in item:
            raise AngelError(f"Json format error! item {index}: 'sparseIndices' needs 'sparseValues'")
        keys, values = item["sparseIndices"], item["sparseValues"]
        if not isinstance(keys, list) or not isinstance(values, list) or len(keys) != len(values):
            raise AngelError(f"item {index}: 'sparseIndices' and 'sparseValues' must be lists of the same length")
        name = None
        if len(item) != 2:  # the first other field names the instance
            for field_name in item:
                if field_name != "sparseIndices" and field_name != "sparseValues":
                    value = item[field_name]
                    name = value if isinstance(value, str) else str(value)
                    break
        return Instance(name, _tensors(keys, values, info, index))
    if len(item) > 2:
        return Instance(None, _vector(list(item.items()), info, index))
    features: list[tuple[Any, Any]] | None = None
    names = []
    for value in item.values():
        if isinstance(value, dict) and features is None:
            features = list(value.items())
        elif isinstance(value, list) and features is None:
            features = _dense(value, index)
        else:
            names.append(value)
    if features is None:
        raise AngelError(f"item {index}: no feature map or vector in {sorted(item)}")
    return Instance(_name(names), _vector(features, info, index))


def _name(values: list[Any]) -> str | None:
    return None if not values else values[0] if isinstance(values[0], str) else str(values[0])


def _dense(values: list[Any], index: int) -> list[tuple[Any, Any]]:
    if any(isinstance(value, list | dict) for value in values):
        raise AngelError(f"item {index}: a dense vector holds numbers, not lists or objects")
    return list(enumerate(values))


def _libsvm(line: str, index: int) -> list[tuple[Any, Any]]:
    pairs = []
    for token in line.replace(",", " ").split():
        key, colon, value = token.partition(":")
        if not colon:
            raise AngelError(f"item {index}: {token!r} is not an index:value pair")
        pairs.append((key, value))
    return pairs


_INT_TYPES = frozenset({int})
_NUMBER_TYPES = frozenset({int, float})


def _vector(pairs: list[tuple[Any, Any]], info: InputInfo, index: int) -> list[TensorMap]:
    """``indices``/``keys`` and ``values`` tensors of ``(key, value)`` pairs, checked against the model's types."""
    keys = [key for key, _ in pairs]
    values = [value for _, value in pairs]
    return _tensors(keys, values, info, index)


_SHORT = 32
"""Vectors up to this length are checked in one Python loop over their items: for the usual short vector that costs
less than the few C-speed passes (``map``, ``min``, ``max``, ``sum``) that check a long one."""


def _tensors(keys: list[Any], values: list[Any], info: InputInfo, index: int) -> list[TensorMap]:
    """The two tensors, checked against the model's types: the usual vector is accepted as it is by a few quick
    tests (:func:`_accepted`); anything they do not accept goes item by item (:func:`_checked_keys`,
    :func:`_checked_values`), which converts what it may (numeric strings) and raises for the first bad item, keys
    before values."""
    count = len(keys)
    packers = info.packers.get(count)
    if packers is not None and _accepted(keys, values, info, count):
        key_data = packers[0].pack(*keys)  # type: ignore[union-attr]  # accepted keys are integers
        value_data = packers[1].pack(*values)
    else:
        key_data, value_data = _general(keys, values, info, index, count)
    if info.key_datatype == "BYTES":
        key_tensor = tensor_map("keys", "BYTES", [count], key_data, {"content_type": "str"})
    else:
        key_tensor = tensor_map("indices", info.key_datatype, [count], key_data)
    return [key_tensor, tensor_map("values", info.value_datatype, [count], value_data)]


def _accepted(keys: list[Any], values: list[Any], info: InputInfo, count: int) -> bool:
    """Whether integer keys and number values pack as they are: no bool (JSON's true and false are ints to Python)
    nor text among the items, the keys within ``key_bounds``, the values within the value type's range (NaN and the
    infinities are not; an integer beyond every double is not either: comparing it with a float is exact)."""
    bounds = info.key_bounds
    if bounds is None or not count:
        return False
    low, high = bounds
    limit = info.value_limit
    if count <= _SHORT:
        for key in keys:  # two loops cost less than one over zip()
            if type(key) is not int or not low <= key <= high:
                return False
        for value in values:
            kind = type(value)
            if (kind is not float and kind is not int) or not -limit <= value <= limit:
                return False
        return True
    # A long vector: a NaN, or infinities of both signs, make the sum NaN (``min`` and ``max`` do not see every
    # NaN); an integer beyond every double overflows when added to a float.
    if not (_INT_TYPES.issuperset(map(type, keys)) and low <= min(keys) and max(keys) <= high):
        return False
    if not _NUMBER_TYPES.issuperset(map(type, values)):
        return False
    try:
        total = sum(values)
    except OverflowError:
        return False
    return total == total and -limit <= min(values) and max(values) <= limit


def _general(keys: list[Any], values: list[Any], info: InputInfo, index: int, count: int) -> tuple[bytes, bytes]:
    """The keys' and the values' data of a vector :func:`_accepted` did not take: each part packed as it is when it
    passes the same tests alone, else item by item; the packers of its length are kept for the next one."""
    packers = info.packers.get(count) or _packers(info, count)
    bounds = info.key_bounds
    if (
        bounds is not None
        and count
        and _INT_TYPES.issuperset(map(type, keys))
        and bounds[0] <= min(keys)
        and max(keys) <= bounds[1]
    ):
        key_data = packers[0].pack(*keys)  # type: ignore[union-attr]  # integer keys have their struct
    else:
        key_data = _checked_keys(keys, info, index)
    value_data = None
    if count and _NUMBER_TYPES.issuperset(map(type, values)):
        limit = info.value_limit
        try:
            total = sum(values)
            if total == total and -limit <= min(values) and max(values) <= limit:
                value_data = packers[1].pack(*values)
        except OverflowError:
            pass
    if value_data is None:
        value_data = _checked_values(keys, values, info.value_datatype, index)
    return key_data, value_data


def _checked_keys(keys: list[Any], info: InputInfo, index: int) -> bytes:
    """The keys item by item: integers (numeric strings too) in the key type's range and the model's dimension, or
    text for ``DT_STRING``."""
    datatype = info.key_datatype
    checked = [_key(key, datatype, info, index) for key in keys]
    if datatype == "BYTES":
        return serialize_bytes(checked)
    return struct.pack(f"<{len(checked)}{_CODES[datatype]}", *checked)


def _checked_values(keys: list[Any], values: list[Any], datatype: str, index: int) -> bytes:
    """The values item by item: finite numbers (numeric strings too) within ``datatype``'s range."""
    checked = [_value(value, datatype, key, index) for key, value in zip(keys, values, strict=True)]
    return struct.pack(f"<{len(checked)}{_CODES[datatype]}", *checked)


def _key(key: Any, datatype: str, info: InputInfo, index: int) -> Any:
    if datatype == "BYTES":
        return str(key)
    number = key
    if isinstance(key, str):
        try:
            number = int(key.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int):
        raise AngelError(f"item {index}: feature key {key!r} is not an integer ({info.key_type})")
    if not -_INT_RANGE[datatype] <= number < _INT_RANGE[datatype]:
        raise AngelError(f"item {index}: feature key {number} is out of the range of {info.key_type}")
    if info.dim >= 0 and not 0 <= number < info.dim:
        raise AngelError(f"item {index}: feature index {number} is outside the model's dimension {info.dim}")
    return number


def _value(value: Any, datatype: str, key: Any, index: int) -> float:
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise _not_a_number(value, datatype, key, index)
    try:
        converted = float(number)
    except OverflowError:  # an integer beyond every double
        raise _out_of_range(value, _VALUE_NAMES[datatype], key, index) from None
    if not math.isfinite(converted):
        raise _not_a_number(value, datatype, key, index)
    if datatype == "FP32" and abs(number) > _FLOAT32_MAX:
        raise _out_of_range(value, "DT_FLOAT", key, index)
    return converted


def _not_a_number(value: Any, datatype: str, key: Any, index: int) -> AngelError:
    return AngelError(f"item {index}: the value {value!r} of feature {key!r} is not a number ({datatype})")


def _out_of_range(value: Any, type_name: str, key: Any, index: int) -> AngelError:
    return AngelError(f"item {index}: the value {value!r} of feature {key!r} is out of the range of {type_name}")


def prediction_map(name: str | None, position: int, outputs: Mapping[str, Any]) -> dict[str, str]:
    """Angel's string-valued prediction: ``sid`` (the instance's name, else its position), then each output as
    text (a number as its shortest form, a bool as ``true``/``false``, an array as JSON)."""
    result = {"sid": sid_of(name, position)}
    for key, value in outputs.items():
        result[key] = angel_text(value)
    return result


def sid_of(name: str | None, position: int) -> str:
    return name if name is not None else str(position)
