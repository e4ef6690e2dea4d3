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

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.datatypes import serialize_bytes
from workers.json_tensors import angel_text
from workers.tensors import Tensor

_FLOAT32_MAX = 3.4028234663852886e38
KEY_TYPES = {"DT_INT32": "INT32", "DT_INT64": "INT64", "DT_STRING": "BYTES"}
VALUE_TYPES = {"DT_FLOAT": "FP32", "DT_DOUBLE": "FP64"}
_INT_RANGE = {"INT32": 2**31, "INT64": 2**63}


class AngelError(ValueError):
    """A request Angel cannot predict; ``str()`` is the message."""


@dataclass(frozen=True)
class InputInfo:
    """The model's input: ``(keyType, valueType, dim)`` as Angel's ``typeMap`` and ``dim`` report them; ``dim`` < 0
    means unknown (no bound check, not reported)."""

    key_type: str = "DT_INT32"
    value_type: str = "DT_FLOAT"
    dim: int = -1

    def type_map(self) -> dict[str, str]:
        return {"valueType": self.value_type, "keyType": self.key_type}


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


@dataclass
class Instance:
    """One decoded instance: its name (``sid``; None when the client gave none) and its two tensors."""

    name: str | None
    tensors: list[Tensor]


def decode_instances(document: Any, info: InputInfo) -> list[Instance]:
    """The instances of a parsed ``{"instances": [...]}`` body; :class:`AngelError` for the first bad one."""
    if not isinstance(document, dict) or "instances" not in document:
        raise AngelError("Missing 'instances' key")
    items = document["instances"]
    if not isinstance(items, list) or not items:
        raise AngelError("Request data format error: 'instances' must be a non-empty list")
    object_mode = isinstance(items[0], dict) and set(items[0]) != {"b64"}
    decoded = []
    for index, item in enumerate(items):
        if object_mode:
            if not isinstance(item, dict):
                raise AngelError(f"Expecting object but got {_kind(item)} at item {index} of input list.")
            decoded.append(_object(item, info, index))
        elif isinstance(item, list):
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
        rest = [value for key, value in item.items() if key not in ("sparseIndices", "sparseValues")]
        return Instance(_name(rest), _tensors(keys, values, info, index))
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


_CODES = {"INT32": "i", "INT64": "q", "FP32": "f", "FP64": "d"}
_INT_TYPES = frozenset({int})
_NUMBER_TYPES = frozenset({int, float})


def _vector(pairs: list[tuple[Any, Any]], info: InputInfo, index: int) -> list[Tensor]:
    """``indices``/``keys`` and ``values`` tensors of ``(key, value)`` pairs, checked against the model's types."""
    keys = [key for key, _ in pairs]
    values = [value for _, value in pairs]
    return _tensors(keys, values, info, index)


def _tensors(keys: list[Any], values: list[Any], info: InputInfo, index: int) -> list[Tensor]:
    key_datatype = KEY_TYPES[info.key_type]
    value_datatype = VALUE_TYPES[info.value_type]
    given = keys
    if not (set(map(type, keys)) <= _INT_TYPES and keys and _in_range(keys, key_datatype, info)):
        keys = [_key(key, key_datatype, info, index) for key in keys]  # the slow path names the bad key
    if not (set(map(type, values)) <= _NUMBER_TYPES and all(map(math.isfinite, values))) or (
        value_datatype == "FP32" and values and max(map(abs, values)) > _FLOAT32_MAX
    ):
        values = [_value(value, value_datatype, key, index) for key, value in zip(given, values, strict=True)]
    count = len(keys)
    if key_datatype == "BYTES":
        key_tensor = Tensor.trusted("keys", "BYTES", (count,), serialize_bytes(keys), {"content_type": "str"})
    else:
        key_tensor = Tensor.trusted(
            "indices", key_datatype, (count,), struct.pack(f"<{count}{_CODES[key_datatype]}", *keys)
        )
    data = struct.pack(f"<{count}{_CODES[value_datatype]}", *values)
    return [key_tensor, Tensor.trusted("values", value_datatype, (count,), data)]


def _in_range(keys: list[int], datatype: str, info: InputInfo) -> bool:
    low, high = min(keys), max(keys)
    if datatype == "BYTES":
        return False
    if info.dim >= 0:
        return low >= 0 and high < info.dim
    return -_INT_RANGE[datatype] <= low and high < _INT_RANGE[datatype]


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
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise AngelError(f"item {index}: the value {value!r} of feature {key!r} is not a number ({datatype})")
    if datatype == "FP32" and abs(number) > _FLOAT32_MAX:
        raise AngelError(f"item {index}: the value {value!r} of feature {key!r} is out of the range of DT_FLOAT")
    return float(number)


def prediction_map(name: str | None, position: int, outputs: Mapping[str, Any]) -> dict[str, str]:
    """Angel's string-valued prediction: ``sid`` (the instance's name, else its position), then each output as
    text (a number as its shortest form, a bool as ``true``/``false``, an array as JSON)."""
    result = {"sid": sid_of(name, position)}
    for key, value in outputs.items():
        result[key] = angel_text(value)
    return result


def sid_of(name: str | None, position: int) -> str:
    return name if name is not None else str(position)
