"""The registered models as data that another frontend process can apply (``frontend_processes`` > 1).

Every frontend serves the same models with workers of its own. A management call changes the models of the frontend
that received it; that frontend then sends every other one what changed (:func:`diff` of two :func:`registry_state`
values) and answers only once they have applied it (:func:`apply`), so the next request finds the model whichever
frontend the kernel hands it to. The same data brings a restarted frontend up to date.

A version's state is how to build it (its ``recipe``: the archive's path, the registration's name, handler, runtime,
url and settings), the snapshot's settings (:func:`modelserver.snapshot.model_state`: workers, batching, timeouts)
and the last scale call's ``target``. A change is versions added or changed (``upsert``), versions removed
(``remove``) and default versions (``defaults``). Applying is idempotent: a state a frontend already has changes
nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .archive import ModelArtifact, open_artifact, with_overrides
from .errors import ServeError
from .model_version import ModelVersion
from .registry import ModelHost, ModelRegistry, wait_started
from .snapshot import model_state, spec_overrides

logger = logging.getLogger("modelserver.model_sync")

VersionKey = tuple[str, str]
State = dict[str, Any]
"""``{"versions": {(name, version): version state}, "defaults": {name: version}}``."""


def recipe(artifact: ModelArtifact, url: str, api: Mapping[str, Any] | None, loaded_at_startup: bool) -> dict[str, Any]:
    """What :func:`build` needs to make the same version from the same archive in another process."""
    return {
        "source": artifact.source,
        "name": artifact.name,
        "handler": artifact.handler_override,
        "runtime": artifact.runtime_override,
        "url": url,
        "api": dict(api or {}),
        "loaded_at_startup": loaded_at_startup,
    }


def version_state(version: ModelVersion) -> dict[str, Any] | None:
    if version.recipe is None:
        return None
    settings = model_state(version, False)
    del settings["defaultVersion"]
    return {
        "name": version.spec.name,
        "version": version.spec.version,
        "recipe": {**version.recipe, "downloaded": version.downloaded is not None},
        "settings": settings,
        "target": list(version.pool.target),
    }


def registry_state(registry: ModelRegistry) -> State:
    versions = {}
    for version in registry:
        state = version_state(version)
        if state is not None:
            versions[(version.spec.name, version.spec.version)] = state
    defaults = {name: registry.default_version(name) for name in registry.names()}
    return {"versions": versions, "defaults": defaults}


def diff(known: State, current: State) -> dict[str, Any] | None:
    """What changed from ``known`` to ``current``, as a message; None when nothing did."""
    old, new = known["versions"], current["versions"]
    upsert = [state for key, state in new.items() if old.get(key) != state]
    remove = [list(key) for key in old if key not in new]
    defaults = {name: key for name, key in current["defaults"].items() if known["defaults"].get(name) != key}
    if not (upsert or remove or defaults):
        return None
    return {"upsert": upsert, "remove": remove, "defaults": defaults}


def absorb(known: State, change: Mapping[str, Any], current: State) -> State:
    """``known`` after applying another frontend's ``change``: the versions and names it touched as they are now in
    ``current``; everything else as it was, so a change of this process's own that is not published yet stays in
    its next :func:`diff`."""
    keys = {(state["name"], state["version"]) for state in change.get("upsert", ())}
    keys |= {(name, version) for name, version in change.get("remove", ())}
    names = {name for name, _ in keys} | set(change.get("defaults", {}))
    versions, defaults = dict(known["versions"]), dict(known["defaults"])
    for key in keys:
        if key in current["versions"]:
            versions[key] = current["versions"][key]
        else:
            versions.pop(key, None)
    for name in names:
        if name in current["defaults"]:
            defaults[name] = current["defaults"][name]
        else:
            defaults.pop(name, None)
    return {"versions": versions, "defaults": defaults}


def full(state: State) -> dict[str, Any]:
    """All of ``state`` as a change: what a restarted frontend applies to its empty registry."""
    return {"upsert": list(state["versions"].values()), "remove": [], "defaults": dict(state["defaults"])}


async def apply(host: ModelHost, change: Mapping[str, Any], wait: bool = False) -> list[str]:
    """Make the registry match ``change``; the errors, one line each (the rest is applied anyway). With ``wait``,
    return once the workers this started have loaded (or failed)."""
    registry = host.registry
    errors: list[str] = []
    started = []
    for state in change.get("upsert", ()):
        try:
            started += await _upsert(host, state)
        except (ServeError, OSError, KeyError, TypeError, ValueError) as err:
            text = err.message if isinstance(err, ServeError) else f"{type(err).__name__}: {err}"
            errors.append(f"model {state.get('name')} version {state.get('version')}: {text}")
    removed = []
    for name, version in change.get("remove", ()):
        try:
            removed.append(registry.remove(name, version, force=True))
        except ServeError:
            continue  # not here (it failed to build, or went away already)
    for name, version in change.get("defaults", {}).items():
        try:
            registry.set_default(name, version)
        except ServeError:
            continue
    await asyncio.gather(*(version.unload() for version in removed))
    if wait and started and await wait_started(started) != 200:
        errors.append("workers failed to load")
    return errors


async def _upsert(host: ModelHost, state: Mapping[str, Any]) -> list[Any]:
    name, key = state["name"], state["version"]
    settings = state["settings"]
    count, maximum = state["target"]
    try:
        version = host.registry.resolve(name, key)
    except ServeError:
        version = await build(host, state["recipe"], settings)
    else:
        low, high = settings["minWorkers"], settings["maxWorkers"]
        if (version.spec.min_workers, version.spec.max_workers) != (low, high):
            version.spec = dataclasses.replace(version.spec, min_workers=low, max_workers=high)
        if version.pool.target == (count, maximum):
            return []
    return version.scale(count, maximum)


async def build(host: ModelHost, recipe: Mapping[str, Any], settings: Mapping[str, Any]) -> ModelVersion:
    """The version the recipe describes, added to the registry, with no worker yet."""
    properties = host.config.properties
    source = Path(recipe["source"])
    artifact = await asyncio.to_thread(open_artifact, source, recipe["name"], properties.get("default_service_handler"))
    artifact = with_overrides(artifact, recipe["handler"], recipe["runtime"])
    version = host.create_version(
        artifact,
        url=recipe["url"],
        api=recipe["api"],
        overrides=spec_overrides(settings),
        loaded_at_startup=bool(recipe["loaded_at_startup"]),
    )
    if recipe.get("downloaded"):  # the archive a registration downloaded: gone with the version, in every frontend
        version.downloaded = source
    return version
