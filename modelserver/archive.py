"""Model artefacts: a model directory or a model archive read into a :class:`ModelArtifact`.

A model directory (TorchServe's ``no-archive`` format) holds the handler and weights at its root and
``MAR-INF/MANIFEST.json``: ``{"runtime": "python", "model": {"modelName", "modelVersion", "handler",
"serializedFile", "modelFile", "configFile", ...}, "archiverVersion": ...}``. ``configFile`` names a
``model-config.yaml`` read with ``yaml.safe_load``. Directories are served in place.

Archive files are recognised by their content, not their suffix: a zip (``.mar``, deflated or stored)
with the manifest at its root, or a gzip tar (``.tar.gz`` / ``.model``) whose entries sit under one
``model_name/`` directory. Each is unpacked into a fresh private directory (``ModelArtifact.workdir``,
mode 0700) that :func:`release` deletes. Unpacking refuses anything that could write outside that
directory (``..``, absolute paths, drive letters, links, devices) or fill the disk (caps on the bytes
really written, on each entry's compression ratio and on the number of entries); see docs/archives.md.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from .errors import BadRequest

MANIFEST_PATH = Path("MAR-INF") / "MANIFEST.json"
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")
ARCHIVE_SUFFIXES = (".tar.gz", ".mar", ".model")
WORKDIR_PREFIX = "modelserver-"

_CHUNK = 1 << 20
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
_DRIVE = re.compile(r"^[A-Za-z]:")
_TAR_META_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
_MAX_TAR_META_BYTES = 4 << 20


class InvalidModel(BadRequest):
    type_name = "InvalidModelException"


@dataclass(frozen=True)
class ExtractLimits:
    """Caps that keep a hostile archive from filling the disk or the inode table while it is unpacked."""

    max_total_bytes: int = 4 << 30
    """Bytes actually written, summed over all entries."""
    max_entries: int = 20_000
    max_ratio: int = 200
    """Uncompressed / compressed size of one entry, checked once the entry passes ``ratio_floor`` bytes."""
    ratio_floor: int = 1 << 20


DEFAULT_LIMITS = ExtractLimits()


@dataclass(frozen=True)
class ModelArtifact:
    name: str
    version: str
    model_dir: str
    handler: str
    manifest: Mapping[str, Any]
    yaml_config: Mapping[str, Any]
    workdir: str | None = None
    """The private directory an archive was unpacked into (delete with :func:`release`); None for directories."""
    source: str = ""
    """The path it was opened from: another frontend process opens the same archive again from it."""
    handler_override: str | None = None
    runtime_override: str | None = None
    """A registration's ``handler`` and ``runtime`` (:func:`with_overrides`), which replaced the manifest's."""


def name_from_path(path: Path) -> str:
    """TorchServe's fallback name: the file stem with every non-word character replaced by ``_``."""
    stem = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return re.sub(r"\W", "_", stem)


# -- reading a model directory -------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InvalidModel(f"Invalid model archive manifest {path}: {err}") from err
    if not isinstance(data, dict):
        raise InvalidModel(f"Invalid model archive manifest {path}: not a JSON object")
    return data


def _read_yaml(model_dir: Path, config_file: str) -> dict[str, Any]:
    path = (model_dir / config_file).resolve()
    if not path.is_relative_to(model_dir.resolve()):
        raise InvalidModel(f"configFile {config_file!r} is outside the model directory")
    import yaml  # here, not at start-up: most models have no model-config.yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise InvalidModel(f"Invalid model config {config_file}: {err}") from err
    if not isinstance(data, dict):
        raise InvalidModel(f"Invalid model config {config_file}: not a mapping")
    return data


def _read_manifest(root: Path, label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and its model section; an archive without a manifest gets an empty one, as in TorchServe."""
    manifest_file = root / MANIFEST_PATH
    if not manifest_file.is_file():
        return {"model": {}}, {}
    manifest = _read_json(manifest_file)
    if not manifest.get("runtime"):
        raise InvalidModel(f"Invalid model archive {label}: runtime is not defined in the manifest")
    model = manifest.get("model")
    if not isinstance(model, dict):
        raise InvalidModel(f"Invalid model archive {label}: manifest has no model section")
    return manifest, model


def _handler(root: Path, model: Mapping[str, Any], default_handler: str | None, label: str) -> str:
    handler = model.get("handler") or default_handler
    if handler:
        return str(handler)
    if not (root / MANIFEST_PATH).is_file():
        raise InvalidModel(
            f"Invalid model archive {label}: it has no {MANIFEST_PATH.as_posix()} and no default_service_handler "
            "is configured to handle it"
        )
    raise InvalidModel(f"Invalid model archive {label}: no handler in the manifest")


def _read_root(root: Path, name: str | None, default_handler: str | None, source: Path) -> ModelArtifact:
    """Read the model at ``root``; ``source`` (the directory or archive file given) names it in messages."""
    manifest, model = _read_manifest(root, source.name)
    model_name = name or model.get("modelName") or name_from_path(source)
    if not MODEL_NAME_PATTERN.match(model_name):
        raise InvalidModel(f"Invalid model name: {model_name}")
    handler = _handler(root, model, default_handler, source.name)
    config_file = model.get("configFile")
    yaml_config = _read_yaml(root, config_file) if config_file else {}
    return ModelArtifact(
        name=model_name,
        version=str(model.get("modelVersion") or "1.0"),
        model_dir=str(root.resolve()),
        handler=handler,
        manifest=MappingProxyType(manifest),
        yaml_config=MappingProxyType(yaml_config),
    )


def read_model_dir(model_dir: Path, name: str | None = None, default_handler: str | None = None) -> ModelArtifact:
    """Read a model directory's manifest and config; ``name`` overrides the manifest's model name."""
    return _read_root(model_dir, name, default_handler, model_dir)


def _model_root(directory: Path) -> Path:
    """Where the model is: TorchServe steps into a lone subdirectory (the tgz ``model_name/`` layout)."""
    if (directory / MANIFEST_PATH).is_file():
        return directory
    entries = list(directory.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return directory


# -- unpacking archives --------------------------------------------------------------------------


class _Refused(Exception):
    """An archive entry we will not unpack; becomes an :class:`InvalidModel` naming the archive."""


class _Budget:
    """Counts what unpacking really wrote, so lying headers cannot get past the caps."""

    def __init__(self, limits: ExtractLimits) -> None:
        self.limits = limits
        self.written = 0
        self.entries = 0

    @property
    def remaining(self) -> int:
        return self.limits.max_total_bytes - self.written

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise _Refused(f"more than {self.limits.max_entries} entries")

    def add(self, size: int, entry_written: int, compressed: int) -> None:
        self.written += size
        if self.written > self.limits.max_total_bytes:
            raise _Refused(f"uncompressed size exceeds the limit of {self.limits.max_total_bytes} bytes")
        if entry_written > self.limits.ratio_floor and entry_written > self.limits.max_ratio * max(compressed, 1):
            raise _Refused(f"an entry's compression ratio exceeds the limit of {self.limits.max_ratio}")

    def check_declared(self, name: str, size: int) -> None:
        """Refuse early on a declared size; headers are only ever trusted to refuse, never to accept."""
        if size > self.remaining:
            limit = self.limits.max_total_bytes
            raise _Refused(f"uncompressed size exceeds the limit of {limit} bytes (entry {name!r} declares {size})")


def _safe_parts(name: str) -> list[str]:
    """Split an entry name into path components, refusing any name that could point outside the target."""
    if "\x00" in name:
        raise _Refused(f"entry name {name!r} contains a NUL byte")
    text = name.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise _Refused(f"entry {name!r} has an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _Refused(f"entry {name!r} points outside the archive")
    return parts


def _file_target(dest: Path, name: str) -> Path:
    parts = _safe_parts(name)
    if not parts:
        raise _Refused(f"file entry {name!r} has no name")
    return dest.joinpath(*parts)


def _make_dir(dest: Path, name: str) -> None:
    parts = _safe_parts(name)
    if parts:
        dest.joinpath(*parts).mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_entry(source: IO[bytes], target: Path, budget: _Budget, compressed: Callable[[], int]) -> None:
    """Copy one entry, counting every byte; never follows or replaces anything already there."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise _Refused(f"duplicate entry {target.as_posix()!r}") from None
    written = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            budget.add(len(chunk), written, compressed())
            out.write(chunk)


def _check_zip_kind(info: zipfile.ZipInfo) -> None:
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        what = "a symbolic link" if kind == stat.S_IFLNK else "a device, fifo or socket"
        raise _Refused(f"entry {info.filename!r} is {what}")
    if info.flag_bits & 0x1:
        raise _Refused(f"entry {info.filename!r} is encrypted")


def _extract_zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: _Budget, size: int) -> None:
    budget.entry()
    _check_zip_kind(info)
    if info.filename.endswith("/"):
        _make_dir(dest, info.filename)
        return
    target = _file_target(dest, info.filename)
    budget.check_declared(info.filename, info.file_size)
    compressed = min(info.compress_size, size)
    with zf.open(info) as source:
        _write_entry(source, target, budget, lambda: compressed)


def _extract_zip(archive: Path, dest: Path, limits: ExtractLimits) -> None:
    budget = _Budget(limits)
    size = archive.stat().st_size
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise _Refused(f"{len(infos)} entries, more than the limit of {limits.max_entries}")
        for info in infos:
            _extract_zip_entry(zf, info, dest, budget, size)


class _CountingReader(io.RawIOBase):
    """Counts the compressed bytes read so far, to measure a tar entry's share of the gzip stream."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return n or 0


class _GuardedTarInfo(tarfile.TarInfo):
    """Refuses, before tarfile reads them into memory, huge pax / GNU long-name headers and sparse maps.

    These hook tarfile's private per-header methods (stable since Python 3.2); the refusals of links,
    devices and sizes in :func:`_extract_tar_member` do not depend on them.
    """

    def _proc_member(self, archive: Any) -> Any:  # type: ignore[override]
        if self.size < 0:
            raise _Refused(f"entry {self.name!r} has a negative size")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _Refused(f"entry {self.name!r} is a sparse file")
        if self.type in _TAR_META_TYPES:
            archive.meta_bytes += self.size
            if archive.meta_bytes > _MAX_TAR_META_BYTES:
                raise _Refused(f"tar metadata headers exceed {_MAX_TAR_META_BYTES} bytes")
        return super()._proc_member(archive)

    def _proc_gnusparse_10(self, *args: Any) -> Any:
        raise _Refused(f"entry {self.name!r} is a sparse file")


class _GuardedTarFile(tarfile.TarFile):
    tarinfo = _GuardedTarInfo
    meta_bytes = 0


def _check_tar_kind(member: tarfile.TarInfo) -> None:
    if member.issym() or member.islnk():
        raise _Refused(f"entry {member.name!r} is a {'symbolic' if member.issym() else 'hard'} link")
    if member.ischr() or member.isblk() or member.isfifo():
        raise _Refused(f"entry {member.name!r} is a device or fifo")
    if member.issparse():
        raise _Refused(f"entry {member.name!r} is a sparse file")
    if not (member.isreg() or member.isdir()):
        raise _Refused(f"entry {member.name!r} has unsupported type {member.type!r}")


def _extract_tar_member(
    tf: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, budget: _Budget, counter: _CountingReader
) -> None:
    budget.entry()
    _check_tar_kind(member)
    if member.isdir():
        _make_dir(dest, member.name)
        return
    target = _file_target(dest, member.name)
    budget.check_declared(member.name, member.size)
    source = tf.extractfile(member)
    if source is None:
        raise _Refused(f"entry {member.name!r} has no data")
    start = counter.count
    _write_entry(source, target, budget, lambda: counter.count - start)


def _extract_tar(archive: Path, dest: Path, limits: ExtractLimits, compressed: bool) -> None:
    """Stream the tar once, front to back: nothing is read twice and members are never trusted to seek."""
    budget = _Budget(limits)
    with archive.open("rb") as raw:
        counter = _CountingReader(raw)
        stream: IO[bytes] = gzip.GzipFile(fileobj=counter, mode="rb") if compressed else counter  # type: ignore[assignment]
        with stream, _GuardedTarFile.open(fileobj=stream, mode="r|") as tf:
            for member in tf:
                _extract_tar_member(tf, member, dest, budget, counter)


def _archive_kind(archive: Path) -> str:
    with archive.open("rb") as fh:
        head = fh.read(512)
    if head.startswith(_ZIP_MAGICS):
        return "zip"
    if head.startswith(_GZIP_MAGIC):
        return "tgz"
    if head[257:262] == b"ustar":
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    raise _Refused("not a zip (.mar) or gzip tar (.tar.gz, .model) file")


def extract_archive(archive: Path, dest: Path, limits: ExtractLimits = DEFAULT_LIMITS) -> None:
    """Unpack ``archive`` into the existing directory ``dest``; on InvalidModel the caller removes ``dest``."""
    try:
        kind = _archive_kind(archive)
        if kind == "zip":
            _extract_zip(archive, dest, limits)
        else:
            _extract_tar(archive, dest, limits, compressed=kind == "tgz")
    except _Refused as err:
        raise InvalidModel(f"Invalid model archive {archive.name}: {err}") from None
    except Exception as err:  # zipfile, tarfile, gzip and zlib raise many types on malformed input: none may escape
        raise InvalidModel(f"Invalid model archive {archive.name}: {type(err).__name__}: {err}") from err


def _make_workdir(archive: Path) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    except OSError as err:
        raise InvalidModel(f"Cannot create a directory to unpack {archive.name}: {err}") from err


def _open_archive(archive: Path, name: str | None, default_handler: str | None, limits: ExtractLimits) -> ModelArtifact:
    workdir = _make_workdir(archive)
    try:
        extract_archive(archive, workdir, limits)
        artifact = _read_root(_model_root(workdir), name, default_handler, archive)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return dataclasses.replace(artifact, workdir=str(workdir))


# -- public entry points -------------------------------------------------------------------------


def open_artifact(
    path: Path, name: str | None = None, default_handler: str | None = None, limits: ExtractLimits = DEFAULT_LIMITS
) -> ModelArtifact:
    """Open a model directory in place, or unpack an archive file into a private directory first.

    The model name is ``name`` if given, else the manifest's ``modelName``, else the file stem with
    non-word characters replaced by ``_``. Call :func:`release` when the model version goes away.
    """
    path = Path(path)
    if path.is_dir():
        artifact = _read_root(_model_root(path), name, default_handler, path)
    elif not path.exists():
        raise InvalidModel(f"Model not found at: {path}")
    elif not path.is_file():
        raise InvalidModel(f"Invalid model archive {path.name}: not a regular file")
    else:
        artifact = _open_archive(path, name, default_handler, limits)
    return dataclasses.replace(artifact, source=str(path.absolute()))


def with_overrides(artifact: ModelArtifact, handler: str | None, runtime: str | None) -> ModelArtifact:
    """A registration's ``handler`` and ``runtime`` replace the manifest's."""
    if handler is None and runtime is None:
        return artifact
    manifest = dict(artifact.manifest)
    if handler is not None:
        manifest["model"] = {**manifest.get("model", {}), "handler": handler}
    if runtime is not None:
        manifest["runtime"] = runtime
    return dataclasses.replace(
        artifact,
        handler=handler or artifact.handler,
        manifest=MappingProxyType(manifest),
        handler_override=handler,
        runtime_override=runtime,
    )


def release(artifact: ModelArtifact) -> None:
    """Delete the directory an archive was unpacked into; idempotent, and never touches a served-in-place directory."""
    if artifact.workdir and Path(artifact.workdir).name.startswith(WORKDIR_PREFIX):
        shutil.rmtree(artifact.workdir, ignore_errors=True)


def list_store(store: Path) -> list[Path]:
    """What ``load_models=all`` loads: non-hidden archives and directories in the model store, sorted."""
    entries = []
    for entry in sorted(store.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.name.endswith(ARCHIVE_SUFFIXES):
            entries.append(entry)
    return entries
