"""MindSpore Serving's RESTful codec: the URL, request instances to tensors, output tensors to JSON values.

Pure (no numpy, no I/O). The messages are MindSpore Serving's own (/work/shared/specs §5), so its clients and tests
that look for them keep working; every failure is a :class:`MindSporeError`, request-level.

Value forms of an instance's input (decoded as a :class:`~workers.tensors.Tensor`):

* a JSON int / float / bool / string: an ``int32`` / ``float32`` / ``bool`` / ``str`` scalar (shape ``[]``);
* a nested array: the kind of its first leaf gives the type, the sizes along its first elements the shape; every
  sub-array must match the shape and every leaf must be of the same JSON kind (``[1, 2.0]`` fails); a string array
  holds one element;
* ``{"b64": s, "type"?: t, "shape"?: [...]}``: raw little-endian data of type ``t`` (default ``bytes``), scalar
  without a shape; an array whose first leaf is such an object (``[{"b64": ...}]``, at any depth): a one-element
  ``str``/``bytes`` array.

``str`` travels as a ``BYTES`` tensor marked ``content_type: str`` (KServe's convention), ``bytes`` as a plain
``BYTES`` tensor; on the way out, text is a JSON string and bytes are ``{"b64": ...}``.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass
from typing import Any

from workers.datatypes import ITEMSIZE, TensorError, serialize_bytes
from workers.json_tensors import encode_tensor, nest
from workers.tensors import Tensor

STR = {"content_type": "str"}

TYPES: dict[str, str] = {
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "fp16": "FP16",
    "float16": "FP16",
    "fp32": "FP32",
    "float32": "FP32",
    "fp64": "FP64",
    "float64": "FP64",
    "bool": "BOOL",
    "str": "BYTES",
    "bytes": "BYTES",
}
"""MindSpore's type names -> the Open Inference Protocol's datatypes."""

_CANONICAL = {"FP16": "float16", "FP32": "float32", "FP64": "float64", "BOOL": "bool"}
_B64_KEYS = ("b64", "type", "shape")
_MAX_VERSION = 0xFFFF_FFFF  # MindSpore: 0 <= version < UINT32_MAX
_INT32 = (-(2**31), 2**31 - 1)
_PARSE = "Parser request failed, "
_FLOAT32_MAX = 3.4028234663852886e38
_URL_CACHE_SIZE = 1024


class MindSporeError(ValueError):
    """A request MindSpore Serving would refuse; ``str()`` is its message. ``kind`` says which HTTP status a server
    that reports real status codes gives it (``url``, ``parse``, ``unavailable``)."""

    def __init__(self, message: str, kind: str = "parse") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def _parse_error(message: str) -> MindSporeError:
    return MindSporeError(_PARSE + message)


# -- the URL --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a URL asks for: a model, a version (0: the highest), a method."""

    model: str
    version: int
    method: str


_targets: dict[str, Target] = {}


def parse_url(path: str) -> Target:
    """:func:`parse_target`, remembered for the last :data:`_URL_CACHE_SIZE` distinct good paths (clients repeat
    theirs)."""
    found = _targets.get(path)
    if found is None:
        found = parse_target(path)
        if len(_targets) >= _URL_CACHE_SIZE:
            _targets.clear()
        _targets[path] = found
    return found


def parse_target(path: str) -> Target:
    """``/model/{name}[/version/{n}]:{method}``; keywords are whole path segments, in either order
    (``/version/{n}/model/{name}:{method}`` works, as in MindSpore), and the method is what follows the first ``:``.
    """
    before, colon, method = path.partition(":")
    segments = [segment for segment in before.split("/") if segment]
    model = _after(segments, "model")
    if not model:
        raise MindSporeError("please check url, the keyword:[model] must contain", "url")
    version = 0
    if "version" in segments:
        text = _after(segments, "version") or ""
        try:
            number = int(text)
        except ValueError:
            raise MindSporeError(
                f"please check url, the keyword:[version] value invalid, request version number {text}", "url"
            ) from None
        if not 0 <= number < _MAX_VERSION:
            raise MindSporeError("please check url, version number range failed", "url")
        version = number
    if not colon or not method:
        raise MindSporeError("please check url, the keyword:[service method] must contain.", "url")
    return Target(model, version, method)


def _after(segments: list[str], keyword: str) -> str | None:
    for index, segment in enumerate(segments[:-1]):
        if segment == keyword:
            return segments[index + 1]
    return None


# -- request instances ----------------------------------------------------------------------------


def decode_instances(document: Any) -> list[dict[str, Any]]:
    """The instances of a parsed request body, each ``{input name: JSON value}``, in order."""
    if not isinstance(document, dict):
        raise _parse_error("the request must be a JSON object with key 'instances'")
    if "instances" not in document:
        raise _parse_error("key 'instances' expects to exist once, but actually 0 times")
    value = document["instances"]
    if isinstance(value, dict):
        instances = [value]
    elif isinstance(value, list):
        if not value:
            raise _parse_error("instances value is array type, but no value")
        if not all(isinstance(item, dict) for item in value):
            raise _parse_error("instances no key mode is not supported")
        instances = value
    else:
        raise _parse_error("instances no key mode is not supported")
    for instance in instances:
        if "" in instance:
            raise _parse_error("string key is empty")
    return instances


def decode_value(name: str, value: Any) -> Tensor:
    """One input value of an instance as a tensor (see the module's docstring)."""
    try:
        if isinstance(value, dict):
            tensor = _b64_object(name, value)
        elif isinstance(value, list):
            tensor = _array(name, value)
        else:
            tensor = _scalar(name, value)
    except TensorError as err:  # text that UTF-8 cannot encode (a lone surrogate escaped in the JSON)
        raise _parse_error(f"json value of input {name!r}: {err}") from None
    if tensor.datatype == "BYTES" and tensor.shape not in ((), (1,)):
        raise MindSporeError(
            "Instance tensor check failed: bytes or string type input  shape can only be (1,) or empty, "
            f"but given shape is {list(tensor.shape)}"
        )
    return tensor


def _kind(value: Any) -> str | None:
    """The JSON kind of a leaf: int and float are distinct (bool is not an int here)."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT32"
    if isinstance(value, float):
        return "FP32"
    if isinstance(value, str):
        return "BYTES"
    return None


def _scalar(name: str, value: Any) -> Tensor:
    if type(value) is str:  # the common text input: no kind dispatch
        return Tensor.trusted(name, "BYTES", (), _one_text(value), dict(STR))
    kind = _kind(value)
    if kind is None:
        if value is None:
            raise _parse_error("json value is null, it is not supported")
        raise _parse_error("json array, data should be number, bool, string or bytes")
    return _tensor(name, kind, (), [value])


_PACK = {"INT32": "i", "FP32": "f"}
_LENGTH = struct.Struct("<I").pack
_MAX_TEXT = 0xFFFF_FFFF


def _one_text(text: str) -> bytes:
    """:func:`~workers.datatypes.serialize_bytes` of one string, without its loop over kinds; text it would refuse
    goes through it, for its error."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        return serialize_bytes((text,))
    if len(raw) > _MAX_TEXT:
        return serialize_bytes((text,))
    return _LENGTH(len(raw)) + raw


def _tensor(name: str, kind: str, shape: tuple[int, ...], flat: list[Any]) -> Tensor:
    """A tensor of leaves already checked to be of ``kind``, packed here (no second validation)."""
    if kind == "BYTES":
        return Tensor.trusted(name, kind, shape, serialize_bytes(flat), dict(STR))
    if kind == "BOOL":
        return Tensor.trusted(name, kind, shape, bytes(flat))
    if kind == "INT32":
        if min(flat) < _INT32[0] or max(flat) > _INT32[1]:
            bad = next(item for item in flat if not _INT32[0] <= item <= _INT32[1])
            raise _parse_error(f"json value {bad} is out of the range of int32")
    else:
        for item in flat:
            if math.isfinite(item) and abs(item) > _FLOAT32_MAX:
                raise _parse_error(f"json value {item} is out of the range of float32")
    return Tensor.trusted(name, kind, shape, struct.pack(f"<{len(flat)}{_PACK[kind]}", *flat))


def _array(name: str, value: list[Any]) -> Tensor:
    if not value:
        raise _parse_error("json array, shape is empty")
    shape: list[int] = []
    first: Any = value
    while isinstance(first, list):
        if not first:  # the shape ends at an empty sub-array, which has no first leaf to type the array
            raise _parse_error("json array, data type is unknown")
        shape.append(len(first))
        first = first[0]
    if isinstance(first, dict):
        return _b64_array(name, shape, first)
    kind = _kind(first)
    if kind is None:  # null
        raise _parse_error("json array, data type is unknown")
    if kind == "BYTES" and math.prod(shape) != 1:
        raise _parse_error("json array, string or bytes type only support one item")
    flat: list[Any] = []
    _walk(value, shape, 0, kind, flat)
    return _tensor(name, kind, tuple(shape), flat)


def _walk(value: Any, shape: list[int], depth: int, kind: str, flat: list[Any]) -> None:
    if depth == len(shape):
        if isinstance(value, list | dict) or _kind(value) is None:
            raise _parse_error("json array, data should be number, bool, string or bytes")
        if _kind(value) != kind:
            raise _parse_error("json array, elements type is not equal")
        flat.append(value)
        return
    if not isinstance(value, list):
        raise _parse_error("invalid json array: json type is not array")
    if len(value) != shape[depth]:
        raise _parse_error(
            f"invalid json array: json size is {len(value)}, the dim {depth} expected to be {shape[depth]}"
        )
    for item in value:
        _walk(item, shape, depth + 1, kind, flat)


def _b64_array(name: str, shape: list[int], first: dict[str, Any]) -> Tensor:
    """An array whose first leaf, at any depth, is a b64 object: the object's type is the array's, which must be
    ``str`` or ``bytes`` with one item (the leaf itself, nested ``shape`` deep)."""
    type_name = first.get("type", "bytes")
    datatype = TYPES.get(type_name) if isinstance(type_name, str) else None
    if datatype is None:
        raise _parse_error("json array, data type is unknown")
    if datatype != "BYTES":
        raise _parse_error("json array, item is object type, object only support string or bytes type")
    if math.prod(shape) != 1:
        raise _parse_error("json array, string or bytes type only support one item")
    tensor = _b64_object(name, first)
    return Tensor.trusted(name, "BYTES", tuple(shape), tensor.data, tensor.parameters)


def _b64_object(name: str, value: dict[str, Any]) -> Tensor:
    if not value:
        raise _parse_error("json object, value is empty")
    if len(value) > len(_B64_KEYS):
        raise _parse_error("json object, items size is more than 3, only support specified ['b64', 'type', 'shape']")
    for key in value:
        if key not in _B64_KEYS:
            raise _parse_error(f"json object, key is not ['b64', 'type', 'shape'], fail key:{key}")
    if "b64" not in value:
        raise _parse_error("json object, 'b64' should be specified only one time")
    text = value["b64"]
    if not isinstance(text, str):
        raise _parse_error("get scalar data failed, type is string, but json is not string type")
    type_name = value.get("type", "bytes")
    if not isinstance(type_name, str):
        raise _parse_error("json object, key is 'type', value should be string type")
    datatype = TYPES.get(type_name)
    if datatype is None:
        raise _parse_error(f"json object, specified type:'{type_name}' is illegal")
    shape = _b64_shape(value["shape"]) if "shape" in value else ()
    count = math.prod(shape)
    if datatype == "BYTES" and count != 1:
        raise _parse_error(
            "json object, only support scalar when data type is string or bytes, please check 'type' or 'shape'"
        )
    if len(text) % 4:
        raise _parse_error("json object, the value of 'b64' is illegal b64 encode string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _parse_error("json object, the value of 'b64' is illegal b64 encode string") from None
    if datatype == "BYTES":
        parameters = dict(STR) if type_name == "str" else None
        return Tensor.trusted(name, "BYTES", shape, serialize_bytes([raw]), parameters)
    itemsize = ITEMSIZE[datatype]
    if len(raw) != count * itemsize:
        raise _parse_error(
            f"size is not matched, decode base64 size:{len(raw)}; Given info: "
            f"type:{_CANONICAL.get(datatype, type_name.lower())}; type size:{itemsize}; element nums:{count}"
        )
    if datatype == "BOOL" and raw.translate(None, b"\x00\x01"):
        raise _parse_error("json object, bool data must be bytes 0 or 1")
    return Tensor.trusted(name, datatype, shape, raw)


def _b64_shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise _parse_error("json object, key is 'shape', value should be array type")
    for dim in value:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise _parse_error("json object, key is 'shape', array value should be unsigned integer")
    zero = False
    for dim in value:
        if zero and dim != 0:
            raise _parse_error("json object, key is 'shape', invalid shape value")
        zero = zero or dim == 0
    return tuple(value)


# -- outputs: workers.json_tensors (the servable runtime encodes there, the frontend here) ----------------------------

__all__ = [
    "STR",
    "TYPES",
    "MindSporeError",
    "Target",
    "decode_instances",
    "decode_value",
    "encode_tensor",
    "nest",
    "parse_target",
    "parse_url",
]
