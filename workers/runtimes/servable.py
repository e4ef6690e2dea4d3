"""The ``servable`` runtime: a Python module whose functions are the model's named methods, as MindSpore Serving's
servables are (``/model/{name}:{method}``; Angel's ``:predict`` calls ``predict``).

The model's ``model-config.yaml`` declares the methods with their input and output names
(:mod:`workers.servable_methods`); the manifest's ``handler`` names the module (``servable.py``, the model directory
first on ``sys.path``). Loading imports it, calls its ``initialize(model_dir)`` if it has one, and checks that every
declared method has its function. A job is one request instance: its tensors become the function's arguments in
declared order (numbers and bools as numpy arrays, 0-d for a scalar; a ``str`` tensor as a Python ``str``, a bytes
tensor as ``bytes``), and what the function returns becomes the output tensors, in declared order (one value for
one output, a tuple or list for several, or a dict by name). A function that raises answers its instance alone
(status 500, ``"<method> failed: <Type>: <message>"``); the other instances of the batch still run.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..servable_methods import Method, MethodDeclarationError, parse_methods
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
            inputs = {tensor.name: tensor for tensor in map(Tensor.from_wire, job.get("tensors") or ())}
            if method.inputs is None:
                args: list[Any] = []
                kwargs = {key: to_python(tensor) for key, tensor in inputs.items()}
            else:
                missing = [key for key in method.inputs if key not in inputs]
                if missing:
                    return _error(job_id, 400, f"Method {name!r} needs input(s) {', '.join(missing)}")
                args, kwargs = [to_python(inputs[key]) for key in method.inputs], {}
        except (TensorError, ValueError) as err:
            return _error(job_id, 400, f"Invalid input for method {name!r}: {err}")
        try:
            returned = self.functions[name](*args, **kwargs)
            tensors = output_tensors(method, returned)
        except Exception as exc:  # the method's failure answers this instance alone
            logger.warning("Method %s of model %s failed", name, self.name, exc_info=exc)
            return _error(job_id, 500, f"{name} failed: {type(exc).__name__}: {exc}")
        return {
            "id": job_id,
            "status": 200,
            "reason": "",
            "headers": {},
            "content_type": "",
            "body": b"",
            "tensors": tensors,
        }


def _error(job_id: int, status: int, message: str) -> dict[str, Any]:
    return {"id": job_id, "status": status, "reason": "", "headers": {}, "content_type": "", "error": message}


def to_python(tensor: Tensor) -> Any:
    """A tensor as the method sees it: ``str`` / ``bytes`` for a one-element text / bytes tensor, else numpy."""
    if tensor.datatype == "BYTES" and tensor.element_count == 1:
        [element] = tensor.to_list()
        if (tensor.parameters or {}).get("content_type") == "str":
            return element.decode("utf-8", "replace")
        return element
    array = tensor.as_numpy()
    return array if array.flags.writeable else array.copy()


def output_tensors(method: Method, returned: Any) -> list[Tensor]:
    """Name what the method returned by its declared outputs (a dict names itself; undeclared: ``output``)."""
    if isinstance(returned, Mapping):
        pairs = [(str(key), value) for key, value in returned.items()]
        if method.outputs is not None:
            missing = [key for key in method.outputs if key not in returned]
            if missing:
                raise ValueError(f"the answer lacks output(s) {', '.join(missing)}")
            pairs = [(key, returned[key]) for key in method.outputs]
        return [to_tensor(key, value) for key, value in pairs]
    names = method.outputs or ("output",)
    values = list(returned) if len(names) > 1 and isinstance(returned, tuple | list) else [returned]
    if len(values) != len(names):
        raise ValueError(f"returned {len(values)} value(s) for {len(names)} declared output(s)")
    return [to_tensor(key, value) for key, value in zip(names, values, strict=True)]


def to_tensor(name: str, value: Any) -> Tensor:
    """A returned value as a tensor: ``str`` as text, ``bytes`` as bytes (both scalars), anything else via numpy."""
    if isinstance(value, str):
        return Tensor.from_list(name, "BYTES", (), [value], dict(STR_PARAMETERS))
    if isinstance(value, bytes | bytearray):
        return Tensor.from_list(name, "BYTES", (), [bytes(value)])
    array = np.asarray(value)
    if array.dtype.kind == "U":
        return Tensor.from_numpy(name, array, "BYTES", dict(STR_PARAMETERS))
    return Tensor.from_numpy(name, array)
