"""The hot path's modules compiled to C by mypyc, used only while they match the sources exactly.

``python -m modelserver.compile`` compiles the modules of :data:`COMPILED_MODULES` into a directory named by a
digest of their sources (under :func:`compiled_root`). At import, :func:`install` computes that digest from the
sources as they are now; when a build for it exists, a finder at the front of ``sys.meta_path`` loads those modules
from it, and when none does (a source was edited since, or nothing was built) every module runs as Python from its
source. A compiled module can therefore never be older than its source, and editing one needs no rebuild to take
effect, only one to be fast again. ``MODELSERVER_COMPILED=0`` runs everything as Python.

This module is in ``workers`` because both sides use it: the frontend (``modelserver``) and the worker processes,
which never import ``modelserver``.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

COMPILED_MODULES: tuple[str, ...] = (
    "modelserver.batcher",
    "modelserver.dialects.request_inputs",
    "modelserver.dialects.torchserve_http",
    "modelserver.dialects.torchserve_inference",
    "modelserver.http_connection",
    "modelserver.http_messages",
    "modelserver.http_request",
    "modelserver.http_responses",
    "modelserver.http_server",
    "modelserver.listener",
    "modelserver.metrics.series",
    "modelserver.metrics.stats",
    "modelserver.metrics.version",
    "modelserver.model_version",
    "modelserver.types",
    "modelserver.worker_channel",
    "modelserver.worker_feed",
    "modelserver.worker_connection",
    "modelserver.logs",
    "modelserver.registry",
    "modelserver.metrics.server",
    "modelserver.metrics.metric_log",
    "workers.frame_decoder",
    "workers.protocol",
    "workers.shared_ring",
    "workers.handler_runner",
    "workers.json_body",
    "workers.json_output",
    "workers.output_encoding",
    "workers.socket_channel",
    "workers.worker_main",
)
"""Compiled together, as one group: a module of the group reaches the others' classes directly (by their C
layout), so the group is used whole or not at all."""

ENVIRONMENT_SWITCH = "MODELSERVER_COMPILED"
"""``0`` (or ``off``, ``false``, ``no``): run every module as Python even where a build exists."""

DIRECTORY_VARIABLE = "MODELSERVER_COMPILED_DIR"
"""Where builds are kept; else ``<sys.prefix>/lib/modelserver-compiled`` (the environment the server runs in)."""

_OFF = frozenset({"0", "off", "false", "no"})

status = "not checked"
"""What :func:`install` found, for the server's start-up log line: ``compiled``, ``off``, ``not built``, ``stale``."""


def package_root() -> str:
    """The directory that holds the ``modelserver`` and ``workers`` packages (a checkout, or site-packages)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_path(module: str, root: str | None = None) -> str:
    return os.path.join(root or package_root(), *module.split(".")) + ".py"


def compiled_root() -> str:
    return os.environ.get(DIRECTORY_VARIABLE) or os.path.join(sys.prefix, "lib", "modelserver-compiled")


def source_digest(modules: Sequence[str] = COMPILED_MODULES, root: str | None = None) -> str:
    """A digest of the group's sources, the interpreter's tag and the module list: a build's directory name.

    Raises OSError when a source cannot be read (an install without sources: nothing to compare with)."""
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    for module in modules:
        digest.update(b"\0" + module.encode() + b"\0")
        with open(source_path(module, root), "rb") as source:
            digest.update(source.read())
    return digest.hexdigest()[:20]


def build_directory(digest: str | None = None) -> str:
    return os.path.join(compiled_root(), digest or source_digest())


def _extension_files(directory: str) -> dict[str, str]:
    """Module name -> path of each extension module under ``directory`` (the group's library at its top)."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found: dict[str, str] = {}
    for parent, _, names in os.walk(directory):
        relative = os.path.relpath(parent, directory)
        package = () if relative == "." else tuple(relative.split(os.sep))
        for name in names:
            for suffix in suffixes:
                if name.endswith(suffix):
                    found[".".join((*package, name[: -len(suffix)]))] = os.path.join(parent, name)
                    break
    return found


class CompiledFinder:
    """Finds the group's modules (and the library they share) in one build directory, nothing else."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        location = self.files.get(fullname)
        if location is None:
            return None
        return importlib.util.spec_from_file_location(fullname, location)

    def invalidate_caches(self) -> None:
        pass


def check() -> tuple[str, dict[str, str]]:
    """What a process starting now would use: ``(status, the build's files)``; files only when ``compiled``."""
    if os.environ.get(ENVIRONMENT_SWITCH, "").strip().lower() in _OFF:
        return "off", {}
    try:
        directory = build_directory()
    except OSError:
        return "not built", {}
    files = _extension_files(directory) if os.path.isdir(directory) else {}
    if not all(module in files for module in COMPILED_MODULES):
        others = os.path.isdir(compiled_root()) and any(os.scandir(compiled_root()))
        return ("stale" if others else "not built"), {}
    return "compiled", files


def install() -> str:
    """Put the finder for an up-to-date build in front of ``sys.meta_path``, once; return :data:`status`."""
    global status
    if status != "not checked":  # both packages call it: the sources are read and hashed once a process
        return status
    found, files = check()
    if found == "compiled" and any(module in sys.modules for module in COMPILED_MODULES):
        found = "not used: a module of the group was imported before the compiled ones could be"
    elif found == "compiled":
        sys.meta_path.insert(0, CompiledFinder(files))
    status = found
    return status


def describe(found: str | None = None) -> str:
    """One line on how the hot path's modules run (``found``, else this process's :data:`status`), for the
    start-up log."""
    found = status if found is None else found
    if found == "compiled":
        return f"compiled (mypyc): {len(COMPILED_MODULES)} hot-path modules"
    if found == "stale":
        return (
            "Python: the compiled hot-path modules are older than their sources "
            "(`python -m modelserver.compile` builds them again)"
        )
    if found == "not built":
        return "Python: the hot-path modules are not compiled (`python -m modelserver.compile` compiles them)"
    if found == "off":
        return f"Python ({ENVIRONMENT_SWITCH}=0)"
    return f"Python ({found})"
