"""A model version from a registration's ``url``: the archive found in the model store or downloaded
(:mod:`.downloads`), unpacked off the event loop, its worker counts settled, and the version added to the registry
with no worker yet. The management API's register and a workflow's model nodes both make their versions here."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .archive import ModelArtifact, open_artifact, release, with_overrides
from .download_policy import DownloadPolicy
from .downloads import resolve_source
from .model_version import ModelVersion
from .registry import ModelHost


async def version_from_url(
    host: ModelHost,
    url: str,
    policy: DownloadPolicy,
    *,
    name: str | None,
    api: Mapping[str, Any],
    initial_workers: int,
    handler: str | None = None,
    runtime: str | None = None,
) -> ModelVersion:
    """The version of the archive at ``url`` (``handler`` and ``runtime`` replacing the manifest's), registered with
    the worker counts of :func:`register_workers`. A download is deleted if anything fails."""
    source = await resolve_source(url, host.config.model_store, policy)
    try:
        artifact = await open_off_loop(source.path, name, host.config.properties.get("default_service_handler"))
        artifact = with_overrides(artifact, handler, runtime)
        low, high = register_workers(artifact.yaml_config, initial_workers)
        version = host.create_version(artifact, url=url, api=api, overrides={"min_workers": low, "max_workers": high})
    except BaseException:
        if source.downloaded is not None:
            source.downloaded.unlink(missing_ok=True)
        raise
    version.downloaded = source.downloaded
    return version


def register_workers(yaml: Mapping[str, Any], initial: int) -> tuple[int, int]:
    """A model-config.yaml with minWorkers > 0 and maxWorkers >= minWorkers wins over ``initial_workers``."""
    low, high = yaml.get("minWorkers"), yaml.get("maxWorkers")
    if isinstance(low, int) and isinstance(high, int) and 0 < low <= high:
        return low, high
    count = max(initial, 0)
    return count, count


async def open_off_loop(path: Path, name: str | None, default_handler: str | None) -> ModelArtifact:
    """Unpack off the event loop; if the caller goes away meanwhile, the unpacked directory is still removed."""
    task = asyncio.ensure_future(asyncio.to_thread(open_artifact, path, name, default_handler))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_release_result)
        raise


def _release_result(task: asyncio.Future[ModelArtifact]) -> None:
    if not task.cancelled() and task.exception() is None:
        release(task.result())
