"""A model's named methods and their input and output names, as its ``model-config.yaml`` declares them.

MindSpore Serving calls ``/model/{name}:{method}``; a servable declares each method with the names of its inputs
(the keys a request instance must hold) and of its outputs (the keys of the answer). Here a model declares them in
its ``model-config.yaml``::

    methods:
      add_common: {inputs: [x1, x2], outputs: [y]}
      predict: {inputs: [x], outputs: [y], function: run}   # function: the module's function (default: the name)

Both sides read the same declaration: the frontend to refuse an unknown method or a missing input before any work
(with MindSpore's messages), the ``servable`` worker runtime to call the right function with the inputs in
order. A model that declares nothing has one method, ``predict``, taking whatever inputs an instance holds. Pure:
the frontend imports it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class MethodDeclarationError(ValueError):
    """A ``methods`` declaration that cannot be served; the message says what is wrong."""


@dataclass(frozen=True)
class Method:
    """One method: ``inputs`` and ``outputs`` in order (None: whatever the instance holds or the method returns)."""

    name: str
    inputs: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = None
    function: str = ""

    @property
    def function_name(self) -> str:
        return self.function or self.name


DEFAULT_METHODS: Mapping[str, Method] = {"predict": Method("predict")}
"""What a model that declares no methods answers."""


def parse_methods(yaml_config: Mapping[str, Any] | None) -> dict[str, Method]:
    """The ``methods`` of a model-config.yaml mapping (:data:`DEFAULT_METHODS` when absent)."""
    declared = (yaml_config or {}).get("methods")
    if declared is None:
        return dict(DEFAULT_METHODS)
    if not isinstance(declared, Mapping) or not declared:
        raise MethodDeclarationError("'methods' must map each method name to {inputs: [...], outputs: [...]}")
    methods: dict[str, Method] = {}
    for name, body in declared.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise MethodDeclarationError(f"method name {name!r} must be an identifier")
        body = body if body is not None else {}
        if not isinstance(body, Mapping):
            raise MethodDeclarationError(f"method {name!r}: expected {{inputs: [...], outputs: [...]}}")
        unknown = set(body) - {"inputs", "outputs", "function"}
        if unknown:
            raise MethodDeclarationError(f"method {name!r}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        function = body.get("function") or ""
        if not isinstance(function, str):
            raise MethodDeclarationError(f"method {name!r}: 'function' must be a name")
        methods[name] = Method(name, _names(name, "inputs", body), _names(name, "outputs", body), function)
    return methods


def _names(method: str, key: str, body: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise MethodDeclarationError(f"method {method!r}: '{key}' must be a list of names")
    if len(set(value)) != len(value):
        raise MethodDeclarationError(f"method {method!r}: '{key}' repeats a name")
    return tuple(value)
