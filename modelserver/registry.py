"""The registry: model name -> versions -> :class:`~modelserver.model_version.ModelVersion`.

Each model name has a default version: the first one registered, until ``set_default`` changes it.
The management API mutates the registry (register, scale, set-default, unregister) only through the
methods here, so the rules (409 on a duplicate version, 403 on removing the default while other
versions exist) hold for every caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .archive import ModelArtifact
from .errors import (
    CannotRemoveDefault,
    DefaultVersionNotFound,
    ModelNotFound,
    ModelVersionNotFound,
    VersionAlreadyRegistered,
)
from .model_version import ModelVersion
from .worker_connection import WorkerConnection

if TYPE_CHECKING:
    from .config import ServerConfig

logger = logging.getLogger("modelserver.registry")


async def wait_started(workers: Iterable[WorkerConnection]) -> int:
    """200 once every worker has loaded its model; the first failure's status (500, 507) as soon as one fails."""
    pending = {asyncio.ensure_future(worker.wait_ready()) for worker in workers}
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            failed = [task.result() for task in done if task.result() != 200]
            if failed:
                return failed[0]
        return 200
    finally:
        for task in pending:
            task.cancel()


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order of version strings: numeric parts as numbers (``1.2.1`` < ``1.11``), other parts as text after them."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in version.replace("-", ".").split("."))


class PeerView(Protocol):
    """The other frontend processes, for the answers that speak for the whole server."""

    async def all_are(self, what: str) -> bool:
        """Whether every other frontend is ``healthy`` (or ``ready``); one that does not answer is not."""
        ...

    async def workers(self, name: str, versions: list[str]) -> list[dict[str, Any]]:
        """Each other frontend's workers and queue of these versions: ``{version: {"workers": [...],
        "remainingCapacity": n, "pendingRequests": n}}`` per frontend."""
        ...


class ModelRegistry:
    def __init__(self) -> None:
        self._models: dict[str, dict[str, ModelVersion]] = {}
        self._defaults: dict[str, str] = {}
        self._latest: dict[str, ModelVersion] = {}  # remembered answers of latest(name); a change forgets them
        self.peers: PeerView | None = None
        """With several frontend processes: what the other frontends say (:class:`modelserver.cluster.Cluster`)."""

    def add(self, version: ModelVersion) -> None:
        """Register a version; the first version of a name becomes its default. 409 if it is already there."""
        spec = version.spec
        versions = self._models.setdefault(spec.name, {})
        if spec.version in versions:
            raise VersionAlreadyRegistered(spec.name, spec.version)
        versions[spec.version] = version
        self._defaults.setdefault(spec.name, spec.version)
        self._latest.pop(spec.name, None)

    def remove(self, name: str, version: str | None = None, force: bool = False) -> ModelVersion:
        """Take a version (default: the default version) out of the registry; the caller unloads it.

        403 when it is the default version and other versions remain, as TorchServe refuses; with ``force``
        (undoing a failed registration) the oldest remaining version becomes the default instead.
        """
        found = self.resolve(name, version)
        versions = self._models[name]
        is_default = found.spec.version == self._defaults[name]
        if is_default and len(versions) > 1 and not force:
            raise CannotRemoveDefault(name)
        del versions[found.spec.version]
        self._latest.pop(name, None)
        if not versions:
            del self._models[name], self._defaults[name]
        elif is_default:
            self._defaults[name] = next(iter(versions))
        return found

    def set_default(self, name: str, version: str) -> None:
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name)
        if version not in versions:
            raise DefaultVersionNotFound(name, version)
        self._defaults[name] = version

    def holds(self, version: ModelVersion) -> bool:
        """Whether this very version object is registered (not merely one with its name and version)."""
        return self._models.get(version.spec.name, {}).get(version.spec.version) is version

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name`` in registration order; 404 if the name is unknown."""
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name)
        return list(versions.values())

    def versions_in_order(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, lowest first as versions compare (1.2.1 before 1.11); 404 if unknown."""
        return sorted(self.versions(name), key=lambda version: version_key(version.spec.version))

    def default_version(self, name: str) -> str:
        self.resolve(name)
        return self._defaults[name]

    def resolve(self, name: str, version: str | None = None) -> ModelVersion:
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(name)
        if not version:
            return versions[self._defaults[name]]
        found = versions.get(version)
        if found is None:
            raise ModelVersionNotFound(name, version)
        return found

    def latest(self, name: str, version: str | None = None) -> ModelVersion:
        """``version`` if given, else the highest version (by :func:`version_key`): what the protocols without a
        default version (KServe, the Open Inference Protocol, Angel, MindSpore) mean by none. 404 if unknown."""
        if version:
            return self.resolve(name, version)
        found = self._latest.get(name)
        if found is None:
            versions = self._models.get(name)
            if versions is None:
                raise ModelNotFound(name)
            found = self._latest[name] = versions[max(versions, key=version_key)]
        return found

    def registration_order(self) -> list[str]:
        """Model names in the order they were first registered (KServe lists models that way)."""
        return list(self._models)

    def __iter__(self) -> Iterator[ModelVersion]:
        for versions in self._models.values():
            yield from versions.values()

    def defaults(self) -> Iterator[ModelVersion]:
        for name, version in self._defaults.items():
            yield self._models[name][version]

    def names(self) -> list[str]:
        return sorted(self._models)

    def protocol_of(self, name: str) -> str | None:
        """The protocol of the model's default version (what shared routes mean for it); None for an unknown name."""
        versions = self._models.get(name)
        if versions is None:
            return None
        return versions[self._defaults[name]].spec.protocol

    def healthy(self) -> bool:
        """``/ping``: every model's default version has at least ``minWorkers`` healthy workers."""
        return all(version.healthy() for version in self.defaults())

    def ready(self) -> bool:
        """``/v2/health/ready`` (a Kubernetes readiness probe): every model can answer on every route now.

        Each model's latest version (what KServe's routes mean) needs a worker that loaded it, as the Open Inference
        Protocol says; so do its default version (what TorchServe's routes mean) and every version loaded at startup,
        unless scaled to no workers on purpose (``minWorkers`` 0).
        """
        for name, versions in self._models.items():
            if not self.latest(name).ready:
                return False
            default = self._defaults[name]
            needed = (v for v in versions.values() if v.spec.loaded_at_startup or v.spec.version == default)
            if any(v.spec.min_workers > 0 and not v.ready for v in needed):
                return False
        return True

    async def server_healthy(self) -> bool:
        """``/ping`` of the whole server: this process :meth:`healthy`, and every other frontend process too."""
        return self.healthy() and (self.peers is None or await self.peers.all_are("healthy"))

    async def server_ready(self) -> bool:
        """``/v2/health/ready`` of the whole server: this process :meth:`ready`, and every other frontend too."""
        return self.ready() and (self.peers is None or await self.peers.all_are("ready"))

    async def stop(self) -> None:
        await asyncio.gather(*(version.stop() for version in self))


class ModelHost(Protocol):
    """What the management API and snapshot restore need from the server: its config, registry and model factory."""

    config: ServerConfig
    registry: ModelRegistry

    def create_version(
        self,
        artifact: ModelArtifact,
        *,
        url: str,
        api: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        loaded_at_startup: bool = False,
    ) -> ModelVersion:
        """Build a version from an opened artifact and add it to the registry (409 if it is there already).

        ``api`` holds a registration's settings, merged by TorchServe's precedence (:func:`build_spec`);
        ``overrides`` are ModelSpec fields set last, whatever the archive says. The artifact is released on failure.
        """
        ...

    def save_snapshot(self, kind: str = "snapshot") -> None:
        """Write a config snapshot, unless snapshots are off."""
        ...

    async def models_changed(self, wait: bool = False) -> None:
        """A management call changed the models: write a config snapshot and, with several frontend processes, make
        every other frontend apply the change (``wait``: until the workers it started have loaded)."""
        ...
