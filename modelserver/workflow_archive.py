"""Workflow archives (``.war``): where a registration's ``url`` points, unpacking, the manifest and the spec.

A ``.war`` is a zip made by ``torch-workflow-archiver``: ``WAR-INF/MANIFEST.json`` (``createdOn``,
``archiverVersion``, ``workflow: {workflowName, specFile, handler}``), the specification YAML and the handler file
at its root. As in TorchServe's ``WorkflowArchive``: the ``url`` is a file name in the workflow store
(``workflow_store``, default the model store) or an allowed URL, downloaded into the store as a model archive is
(:mod:`modelserver.downloads`); a ``workflow_name`` given at registration replaces the manifest's; the manifest must
name the workflow and carry ``archiverVersion`` and ``createdOn``. A file that is not a zip unpacks to nothing, so it
fails on those checks, as in TorchServe. Unpacking has the same guards as a model archive's (docs/archives.md).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .archive import InvalidModel, extract_archive
from .downloads import DownloadPolicy, looks_like_url, resolve_source
from .errors import ArchiveNotFound, InvalidWorkflow, ModelFileExists, ServeError, UrlRequired, WorkflowNotFound
from .workflow_spec import WorkflowSpec, parse_spec

MANIFEST_PATH = Path("WAR-INF") / "MANIFEST.json"
WORKDIR_PREFIX = "modelserver-war-"


class WorkflowFileExists(ServeError):
    """Downloading a ``.war`` whose name is already in the workflow store (TorchServe: FileAlreadyExistsException)."""

    type_name = "FileAlreadyExistsException"


@dataclass(frozen=True)
class WarSource:
    path: Path
    downloaded: Path | None
    """The file the registration downloaded into the store: deleted again when the workflow goes."""


@dataclass(frozen=True)
class WorkflowArchive:
    name: str
    url: str
    directory: Path
    """The private directory the archive was unpacked into; function nodes' workers run there."""
    spec_file: str
    handler_file: str
    downloaded: Path | None


async def locate_war(url: str | None, store: str | None, policy: DownloadPolicy) -> WarSource:
    """The ``.war`` a registration's ``url`` names, downloaded first when it is an allowed URL."""
    if url is None:
        raise UrlRequired()
    if store is None:
        raise WorkflowNotFound("Workflow store has not been configured.")
    if looks_like_url(url):
        try:
            source = await resolve_source(url, store, policy)
        except ArchiveNotFound as err:  # not allowed, or a relative path: TorchServe's WorkflowNotFoundException
            raise WorkflowNotFound(err.message) from None
        except ModelFileExists:
            raise WorkflowFileExists(Path(url).name) from None
        return WarSource(source.path, source.downloaded)
    if ".." in url:
        raise WorkflowNotFound(f"Relative path is not allowed in url: {url}")
    path = Path(store) / Path(url).name
    if "\x00" in url or not path.exists():
        raise WorkflowNotFound(f"Workflow not found in workflow store: {url}")
    if not path.is_file():
        raise WorkflowNotFound(f"Workflow not found at: {url}")
    return WarSource(path, None)


def open_war(source: WarSource, url: str, name: str | None) -> tuple[WorkflowArchive, WorkflowSpec]:
    """Unpack and read the archive (blocking: run it off the event loop); the directory is removed on failure."""
    directory = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    try:
        if zipfile.is_zipfile(source.path):
            try:
                extract_archive(source.path, directory)
            except InvalidModel as err:
                raise InvalidWorkflow(err.message.replace("model archive", "workflow archive", 1)) from None
        archive = _read_manifest(directory, url, name, source.downloaded)
        return archive, _read_spec(archive)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def release_war(archive: WorkflowArchive) -> None:
    """Remove the unpacked directory and a downloaded ``.war`` (TorchServe deletes only downloaded ones)."""
    if archive.directory.name.startswith(WORKDIR_PREFIX):
        shutil.rmtree(archive.directory, ignore_errors=True)
    if archive.downloaded is not None:
        archive.downloaded.unlink(missing_ok=True)


def _read_manifest(directory: Path, url: str, name: str | None, downloaded: Path | None) -> WorkflowArchive:
    manifest: dict[str, Any] = {"workflow": {}}
    manifest_file = directory / MANIFEST_PATH
    if manifest_file.is_file():
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InvalidWorkflow("Failed to parse signature.json.") from None  # TorchServe's text
        if not isinstance(manifest, dict):
            raise InvalidWorkflow("Failed to parse signature.json.")
    workflow = manifest.get("workflow")
    if not isinstance(workflow, dict):
        raise InvalidWorkflow("Missing Workflow entry in manifest file.")
    name = name or workflow.get("workflowName")
    if not name:
        raise InvalidWorkflow("Workflow name is not defined.")
    if manifest.get("archiverVersion") is None:
        raise InvalidWorkflow("Workflow archive version is not defined.")
    if manifest.get("createdOn") is None:
        raise InvalidWorkflow("Workflow archive createdOn is not defined.")
    spec_file = _member(directory, workflow.get("specFile"), "specification file")
    handler_file = _member(directory, workflow.get("handler"), "handler")
    return WorkflowArchive(str(name), url, directory, spec_file, handler_file, downloaded)


def _member(directory: Path, name: Any, what: str) -> str:
    """A file the manifest names, which must be in the archive (TorchServe fails on a missing one with a 500)."""
    if not isinstance(name, str) or not name:
        raise InvalidWorkflow(f"The workflow archive's manifest names no {what}.")
    path = (directory / name).resolve()
    if not path.is_relative_to(directory.resolve()) or not path.is_file():
        raise InvalidWorkflow(f"The workflow {what} {name} is not in the archive.")
    return name


def _read_spec(archive: WorkflowArchive) -> WorkflowSpec:
    import yaml  # only when a workflow is registered

    try:
        document = yaml.safe_load((archive.directory / archive.spec_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise InvalidWorkflow("Failed to parse yaml.") from None  # TorchServe's text
    return parse_spec(archive.name, document, archive.handler_file, archive.spec_file)
