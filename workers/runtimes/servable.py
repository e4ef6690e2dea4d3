"""The ``servable`` runtime: a Python module whose functions are the model's named methods, as MindSpore Serving's
servables are (``/model/{name}:{method}``; Angel's ``:predict`` calls ``predict``).

The model's ``model-config.yaml`` declares the methods with their input and output names
(:mod:`workers.servable_methods`); the manifest's ``handler`` names the module (``servable.py``, the model directory
first on ``sys.path``). Loading imports it, calls its ``initialize(model_dir)`` if it has one, and checks that every
declared method has its function. A job is one request instance: its tensors become the function's arguments in
declared order (numbers and bools as numpy arrays, 0-d for a scalar; a ``str`` tensor as a Python ``str``, a bytes
tensor as ``bytes``), and what the function returns becomes the output tensors, in declared order (one value for
one output, a tuple or list for several, or a dict by name). A function that raises answers its instance alone
(status 500, ``"<method> failed: <Type>: <message>"``); the other instances of the batch still run. A job whose
``parameters.answer`` is ``mindspore`` or ``angel`` is answered with the outputs as that API's JSON object instead of
tensors (:mod:`workers.json_tensors`).
"""

from __future__ import annotations

import importlib
import logging
import struct
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np

from ..json_tensors import ANSWER_STYLES, angel_text, compact_json, encode_tensor
from ..servable_methods import Method, MethodDeclarationError, parse_methods
from ..tensor_numpy import FIXED_DTYPES, to_numpy
from ..tensors import Tensor, TensorError
from . import EmitChunk, IsCancelled, LoadError

logger = logging.getLogger(__name__)

STR_PARAMETERS = {"content_type": "str"}
"""Marks a ``BYTES`` tensor whose element is text (KServe's ``content_type: str``): MindSpore's ``str`` type."""


def load(message: Mapping[str, Any]) -> ServableRuntime:
    """The model's module with its declared methods; :class:`~workers.runtimes.LoadError` when it cannot serve."""
    name = str(message["model_name"])
    handler = str(message.get("handler") or "")
    if not handler:
        raise LoadError(f"No handler specified for model {name!r}: the servable runtime needs the module's file")
    try:
        methods = parse_methods(message.get("model_yaml_config"))
    except MethodDeclarationError as err:
        raise LoadError(f"Model {name}: {err}") from None
    from ..handler_loader import prepend_paths, split_handler

    model_dir = str(message["model_dir"])
    prepend_paths(model_dir, handler)
    module = importlib.import_module(split_handler(handler)[0])
    functions: dict[str, Callable[..., Any]] = {}
    for method in methods.values():
        function = getattr(module, method.function_name, None)
        if not callable(function):
            raise LoadError(f"Model {name}: method {method.name!r} needs a function {method.function_name!r}")
        functions[method.name] = function
    initialize = getattr(module, "initialize", None)
    if callable(initialize):
        initialize(model_dir)
    return ServableRuntime(name, methods, functions)


class ServableRuntime:
    """Runs each job (one request instance) through the function of its method."""

    def __init__(self, name: str, methods: dict[str, Method], functions: dict[str, Callable[..., Any]]) -> None:
        self.name = name
        self.methods = methods
        self.functions = functions
        self._angel_templates = {key: angel_template(method) for key, method in methods.items()}
        self._input_sets = {key: frozenset(method.inputs or ()) for key, method in methods.items()}

    def run_batch(
        self, jobs: list[dict[str, Any]], emit_chunk: EmitChunk, is_cancelled: IsCancelled
    ) -> list[dict[str, Any]]:
        return [self._run(job) for job in jobs]

    def _run(self, job: dict[str, Any]) -> dict[str, Any]:
        job_id = int(job["id"])
        name = str(job.get("method") or "predict")
        method = self.methods.get(name)
        if method is None:
            return _error(job_id, 404, f"Model {self.name} has no method {name!r}")
        try:
            inputs = {wire["name"]: wire for wire in job.get("tensors") or ()}
            if method.inputs is None:
                args: list[Any] = []
                kwargs = {key: argument(wire) for key, wire in inputs.items()}
            else:
                if not inputs.keys() >= self._input_sets[name]:  # one C-speed test for the usual, complete job
                    missing = [key for key in method.inputs if key not in inputs]
                    return _error(job_id, 400, f"Method {name!r} needs input(s) {', '.join(missing)}")
                args, kwargs = [argument(inputs[key]) for key in method.inputs], {}
        except (TensorError, ValueError, KeyError, TypeError) as err:
            return _error(job_id, 400, f"Invalid input for method {name!r}: {err}")
        style = (job.get("parameters") or {}).get("answer")
        try:
            function = self.functions[name]
            returned = function(*args, **kwargs) if kwargs else function(*args)
            if style in ANSWER_STYLES:  # the API's JSON made here, beside the model, not on the frontend's one thread
                body = angel_body(self._angel_templates[name], method, returned) if style == "angel" else None
                if body is None:
                    body = compact_json(answer_values(named_outputs(method, returned), style)).encode("utf-8")
            else:
                tensors = output_tensors(method, returned)
        except Exception as exc:  # the method's failure answers this instance alone
            logger.warning("Method %s of model %s failed", name, self.name, exc_info=exc)
            return _error(job_id, 500, f"{name} failed: {type(exc).__name__}: {exc}")
        if style in ANSWER_STYLES:
            return {
                "id": job_id,
                "status": 200,
                "reason": "",
                "headers": {},
                "content_type": "application/json",
                "body": body,
                "parameters": {"answer": style},
            }
        return {
            "id": job_id,
            "status": 200,
            "reason": "",
            "headers": {},
            "content_type": "",
            "body": b"",
            "tensors": tensors,
        }


def argument(wire: Mapping[str, Any]) -> Any:
    """A tensor map from our frontend as the method sees it: :func:`to_python` of its tensor. The usual input,
    numbers whose bytes came inside the frame, becomes its array here without the tensor in between."""
    dtype = FIXED_DTYPES.get(wire["datatype"])
    data = wire["data"]
    if dtype is None or type(data) is not bytes:
        return to_python(_from_wire(wire))
    shape = tuple(wire["shape"])
    # A copy: the method gets a writable array, as handlers do. The dtype goes by position (a keyword costs more).
    array = np.frombuffer(bytearray(data), dtype)
    return array if array.shape == shape else array.reshape(shape)


def _from_wire(wire: Mapping[str, Any]) -> Tensor:
    """A tensor map from our own frontend, which built and checked it: taken without a second validation (data
    that does not fit its shape still fails, in :func:`to_python`, as this instance's invalid input)."""
    return Tensor.trusted(wire["name"], wire["datatype"], tuple(wire["shape"]), wire["data"], wire.get("parameters"))


def _error(job_id: int, status: int, message: str) -> dict[str, Any]:
    return {"id": job_id, "status": status, "reason": "", "headers": {}, "content_type": "", "error": message}


def to_python(tensor: Tensor) -> Any:
    """A tensor as the method sees it: ``str`` / ``bytes`` for a one-element text / bytes tensor, else numpy."""
    if tensor.datatype == "BYTES" and tensor.element_count == 1:
        [element] = tensor.to_list()
        if (tensor.parameters or {}).get("content_type") == "str":
            return element.decode("utf-8", "replace")
        return element
    data = tensor.data
    if type(data) is bytes:  # small data came inside the frame: give the method a writable array, as handlers get
        data = bytearray(data)
    return to_numpy(tensor.datatype, tensor.shape, data)


def output_tensors(method: Method, returned: Any) -> list[Tensor]:
    """Name what the method returned by its declared outputs (a dict names itself; undeclared: ``output``)."""
    return [to_tensor(key, value) for key, value in named_outputs(method, returned)]


def named_outputs(method: Method, returned: Any) -> list[tuple[str, Any]]:
    """``(name, value)`` of each output: a dict by its keys (the declared ones, in order, when declared), else one
    value per declared output (a tuple or list for several), ``output`` when none is declared."""
    sequence = isinstance(returned, _SEQUENCES)
    if not sequence and isinstance(returned, Mapping):  # a tuple needs no (slow) ABC check
        pairs = [(str(key), value) for key, value in returned.items()]
        if method.outputs is not None:
            missing = [key for key in method.outputs if key not in returned]
            if missing:
                raise ValueError(f"the answer lacks output(s) {', '.join(missing)}")
            pairs = [(key, returned[key]) for key in method.outputs]
        return pairs
    names = method.outputs or ("output",)
    values = returned if len(names) > 1 and sequence else (returned,)
    if len(values) != len(names):
        raise ValueError(f"returned {len(values)} value(s) for {len(names)} declared output(s)")
    return list(zip(names, values, strict=False))  # the lengths are equal


_SEQUENCES = (tuple, list)


def answer_values(pairs: list[tuple[str, Any]], style: str) -> dict[str, Any]:
    """The outputs as the JSON object of ``style``: MindSpore's values (:func:`json_value`), or Angel's text of
    each (:func:`~workers.json_tensors.angel_text`)."""
    if style == "angel":
        return {key: angel_text(json_value(key, value)) for key, value in pairs}
    return {key: json_value(key, value) for key, value in pairs}


def angel_template(method: Method) -> str | None:
    """Angel's JSON object of ``method``'s declared outputs with a ``%r`` for each value (``{"y":"%r"}``), for
    :func:`angel_body`; None when the method declares no outputs (the names are then whatever it returns)."""
    if method.outputs is None:
        return None
    quoted = (encode_basestring_ascii(key).replace("%", "%%") for key in method.outputs)
    return "{" + ",".join(f'{key}:"%r"' for key in quoted) + "}"


def angel_body(template: str | None, method: Method, returned: Any) -> bytes | None:
    """``compact_json(answer_values(named_outputs(method, returned), "angel"))`` as UTF-8, written directly when the
    method declares its outputs (``template``, from :func:`angel_template`) and returned one for each, every one a
    Python ``float`` or an ``int`` of INT64's range: the text of such a number (its ``repr``) needs no escape. None
    for any other answer, which goes that way (with its errors). The usual answer of a small model then costs no
    pairs, no dict, no encoder and no per-value calls."""
    outputs = method.outputs
    if template is None or outputs is None:
        return None
    kind = type(returned)
    if len(outputs) == 1:
        values = (returned,)
    elif (kind is tuple or kind is list) and len(returned) == len(outputs):
        values = returned if kind is tuple else tuple(returned)
    else:
        return None
    for value in values:
        kind = type(value)
        if not (kind is float or (kind is int and -(2**63) <= value < 2**63)):
            return None
    return (template % values).encode("ascii")


_ELEMENT_MAX = 0xFFFF_FFFF
"""The longest BYTES element, in bytes: its length is a uint32."""


def json_value(name: str, value: Any) -> Any:
    """An output as the JSON value :func:`~workers.json_tensors.encode_tensor` makes of ``to_tensor(name, value)``.

    A Python ``float``, ``bool``, ``int`` of INT64's range and ``str`` that UTF-8 can encode come back through the
    tensor as the same value, so they are taken as they are: a small model's usual answer then costs no tensor. An
    ASCII ``str`` does too (UTF-8 of other text may fail: that goes the tensor's way, with the tensor's error)."""
    kind = type(value)
    if kind is float or kind is bool or (kind is int and -(2**63) <= value < 2**63):
        return value
    if kind is str and value.isascii() and len(value) <= _ELEMENT_MAX:
        return value
    return encode_tensor(to_tensor(name, value))


_SCALARS = {float: ("FP64", "<d"), bool: ("BOOL", "<?"), int: ("INT64", "<q")}


def to_tensor(name: str, value: Any) -> Tensor:
    """A returned value as a tensor: ``str`` as text, ``bytes`` as bytes (both scalars), a Python ``float`` / ``int``
    / ``bool`` as an FP64 / INT64 / BOOL scalar, anything else via numpy."""
    scalar = _SCALARS.get(type(value))
    if scalar is not None and (scalar[0] != "INT64" or -(2**63) <= value < 2**63):
        return Tensor.trusted(name, scalar[0], (), struct.pack(scalar[1], value))
    if isinstance(value, str):
        return Tensor.from_list(name, "BYTES", (), [value], dict(STR_PARAMETERS))
    if isinstance(value, bytes | bytearray):
        return Tensor.from_list(name, "BYTES", (), [bytes(value)])
    array = np.asarray(value)
    if array.dtype.kind == "U":
        return Tensor.from_numpy(name, array, "BYTES", dict(STR_PARAMETERS))
    return Tensor.from_numpy(name, array)
