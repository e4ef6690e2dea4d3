"""Resolve, import and initialise a TorchServe handler from a ``load`` message (docs/protocol.md).

Resolution follows ``ts/model_loader.py``: ``handler`` is ``file.py[:fn]`` or ``module[:fn]``,
imported with the model directory first on ``sys.path``, else a built-in
``ts.torch_handler.<name>``. A module with the function (default ``handle``) uses it as the entry
point and "initialises" it with ``handle(None, context)``; otherwise the module must define exactly
one class, which is instantiated, ``initialize(context)``-d, and whose ``handle`` serves batches.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from .context import TS_COMPAT_VERSION, Context
from .handler_runner import Service
from .handlers import BUILTIN_HANDLERS
from .runtimes import LoadError
from .ts_compat import context_class

logger = logging.getLogger(__name__)

EntryPoint = Callable[[Any, Any], Any]
Initializer = Callable[[Context], Any]

_BUILTIN_PREFIX = "ts.torch_handler."


def load_service(load: Mapping[str, Any]) -> Service:
    """Build the :class:`Service` for a ``load`` message; every failure becomes a :class:`LoadError`.

    The caller sets the working directory to ``model_dir``; this function puts it on ``sys.path``.
    """
    handler = str(load.get("handler") or "")
    try:
        return _load(load, handler)
    except LoadError as err:  # the traceback of what caused it, on every attempt: TorchServe users read it there
        logger.error("Failed to load handler %r: %s", handler, err.message, exc_info=err.__cause__ is not None)
        raise
    except MemoryError as exc:
        logger.error("System out of memory", exc_info=True)
        raise LoadError("System out of memory", 507) from exc
    except Exception as exc:
        logger.error("Failed to load handler %r", handler, exc_info=True)
        raise LoadError(str(exc) or type(exc).__name__) from exc


def _load(load: Mapping[str, Any], handler: str) -> Service:
    if not handler:
        raise LoadError("No handler specified for model {!r}".format(load.get("model_name")))
    context = make_context(load)
    prepend_paths(str(load["model_dir"]), handler)
    module, function_name = import_handler(handler)
    entry_point, initialize = resolve_entry_point(module, function_name, handler)
    envelope = str(load.get("envelope") or "")
    if envelope:
        entry_point = wrap_in_envelope(envelope, entry_point)
    initialize(context)
    return Service(context, entry_point, bool(load.get("decode_input_request", True)))


def make_context(load: Mapping[str, Any]) -> Context:
    """The handler's context; TorchServe treats a batch size below 1 as 1 and has no GPU id on CPU.

    Its class is ours, or a subclass of the real ``ts.context.Context`` when TorchServe is installed (the ``ts``
    shim goes on ``sys.path`` only when it is not: ``workers.ts_compat``)."""
    gpu_id = load.get("gpu_id")
    return context_class()(
        model_name=str(load["model_name"]),
        model_dir=str(load["model_dir"]),
        manifest=dict(load.get("manifest") or {}),
        batch_size=max(1, int(load.get("batch_size") or 1)),
        gpu=int(gpu_id) if gpu_id is not None and int(gpu_id) >= 0 else None,
        mms_version=TS_COMPAT_VERSION,
        limit_max_image_pixels=bool(load.get("limit_max_image_pixels", True)),
        model_yaml_config=dict(load.get("model_yaml_config") or {}),
    )


def prepend_paths(model_dir: str, handler: str) -> None:
    """Model dir first on ``sys.path``; a handler given with a directory gets that directory in front of it."""
    handler_dir = os.path.dirname(handler.split(":", 1)[0])
    for path in (model_dir, os.path.join(model_dir, handler_dir) if handler_dir else None):
        if path is None:
            continue
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    importlib.invalidate_caches()  # the model dir may have been written after the path finders cached it


def split_handler(handler: str) -> tuple[str, str | None]:
    """``"dir/file.py:fn"`` -> ``("file", "fn")``; ``"module"`` -> ``("module", None)``."""
    spec, sep, function_name = handler.partition(":")
    module_name = spec[:-3] if spec.endswith(".py") else spec
    return module_name.rsplit("/", 1)[-1], (function_name or None) if sep else None


def import_handler(handler: str) -> tuple[ModuleType, str | None]:
    """Import the handler's own module, falling back to a built-in only if that module does not exist.

    ``ts.torch_handler.<name>`` spelled out in full is TorchServe's built-in itself: ours, never a look-up.
    """
    module_name, function_name = split_handler(handler)
    builtin_name = module_name.removeprefix(_BUILTIN_PREFIX)
    if builtin_name != module_name and builtin_name in BUILTIN_HANDLERS:
        return import_builtin_handler(builtin_name, handler), function_name
    try:
        return importlib.import_module(module_name), function_name
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, module_name):
            raise  # the handler exists but one of its own imports is missing: report that
    return import_builtin_handler(module_name, handler), function_name


def import_builtin_handler(name: str, handler: str) -> ModuleType:
    """A built-in handler: ours (``workers.handlers``) for TorchServe's defaults, else ``ts.torch_handler.<name>``.

    Ours is imported directly, not through the ``ts.torch_handler`` re-export, because the loader looks for
    the one class the module itself defines.
    """
    ours = BUILTIN_HANDLERS.get(name)
    if ours is not None:
        return importlib.import_module(ours)
    full_name = f"{_BUILTIN_PREFIX}{name}"
    try:
        return importlib.import_module(full_name)
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, full_name):
            raise
    raise LoadError(
        f"Unable to load module {handler}, make sure it is added to python path: "
        f"no module {name!r} in the model directory or on sys.path, and no built-in handler {full_name}"
    )


def _is_missing(exc: ModuleNotFoundError, module_name: str) -> bool:
    """True if ``exc`` is about ``module_name`` itself (or one of its parent packages), not about its imports."""
    missing = exc.name or ""
    return bool(missing) and (module_name == missing or module_name.startswith(missing + "."))


def resolve_entry_point(module: ModuleType, function_name: str | None, handler: str) -> tuple[EntryPoint, Initializer]:
    """The module-level function if present, else the ``handle`` of the module's single class."""
    name = function_name or "handle"
    if hasattr(module, name):
        function = getattr(module, name)
        if not callable(function):
            raise LoadError(f"Entry point {name!r} of handler {handler!r} is not callable")
        return function, lambda context: function(None, context)
    return _class_entry_point(module, name, handler)


def _class_entry_point(module: ModuleType, function_name: str, handler: str) -> tuple[EntryPoint, Initializer]:
    classes = list_defined_classes(module)
    if len(classes) != 1:
        names = [cls.__name__ for cls in classes]
        raise LoadError(
            f"Expected only one class in custom service code or a function entry point {function_name!r} "
            f"in handler {handler!r}, found classes: {names}"
        )
    service = classes[0]()
    if not callable(getattr(service, "handle", None)):
        raise LoadError(f"Expect handle method in class {classes[0].__name__} of handler {handler!r}")
    initialize = getattr(service, "initialize", None)
    return service.handle, initialize if callable(initialize) else _no_initialize


def _no_initialize(_context: Context) -> None:
    """A handler class without ``initialize`` needs no set-up."""


def list_defined_classes(module: ModuleType) -> list[type]:
    """Classes defined in ``module`` itself (imported ones such as ``BaseHandler`` do not count)."""
    return [member for _, member in inspect.getmembers(module, inspect.isclass) if member.__module__ == module.__name__]


def wrap_in_envelope(envelope: str, entry_point: EntryPoint) -> EntryPoint:
    """TorchServe's request envelopes (``kserve``, ``kservev2``, ``json``, ``body``) wrap ``handle``."""
    full_name = f"ts.torch_handler.request_envelope.{envelope}"
    try:
        module = importlib.import_module(full_name)
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, full_name):
            raise
        raise LoadError(f"Unable to load request envelope {envelope!r}: no module {full_name}") from exc
    classes = list_defined_classes(module)
    if not classes:
        raise LoadError(f"Request envelope module {full_name} defines no class")
    return classes[0](entry_point).handle
