"""Collect a model's files and write them as a ``.mar`` zip, a ``.tar.gz`` or a plain directory.

The layout follows torch-model-archiver 0.12.0: every file given by a flag lands in the archive root
under its own name; ``--extra-files`` takes a comma list of files, directories and glob patterns, and a
directory's *contents* are flattened into the root (its subdirectories keep their shape). Directories
named ``__pycache__`` or ``__MACOSX`` or starting with ``.`` are left out at any depth below the root;
files are never filtered (the real tool keeps ``.pyc`` and hidden *files*). Unlike the real tool we
never stage copies under ``/tmp/<model_name>``: files are read straight from where they are.
"""

from __future__ import annotations

import contextlib
import glob
import io
import logging
import os
import re
import secrets
import shutil
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .manifest import MANIFEST_ENTRY, build_manifest, manifest_text
from .options import ARCHIVE_FORMATS, BUILTIN_HANDLERS, RUNTIMES, ArchiveOptions, ArchiverError

logger = logging.getLogger("modelserver.model_archiver")

MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")
SKIPPED_DIRS = frozenset({"__pycache__", "__MACOSX"})

Files = dict[str, Path]
"""Archive name (``/``-separated, relative to the model root) to the file it is read from."""


# -- validation ----------------------------------------------------------------------------------


def output_path(options: ArchiveOptions) -> Path:
    return Path(options.export_path) / f"{options.model_name}{ARCHIVE_FORMATS[options.archive_format]}"


def validate(options: ArchiveOptions) -> None:
    """The real tool's checks, in its order and with its messages."""
    if not MODEL_NAME_PATTERN.match(options.model_name):
        raise ArchiverError(
            "Model name contains special characters.\n"
            "The allowed regular expression filter for model name is: ^[A-Za-z0-9][A-Za-z0-9_\\-.]*$"
        )
    if options.archive_format not in ARCHIVE_FORMATS:
        raise ArchiverError(f"Unknown archive format {options.archive_format!r}")
    if options.runtime not in RUNTIMES:
        raise ArchiverError(f"Unsupported runtime {options.runtime!r}: use one of {', '.join(RUNTIMES)}")
    if not Path(options.export_path).is_dir():
        raise ArchiverError(
            f"Given export-path {options.export_path} is not a directory. Point to a valid export-path directory."
        )


def check_existing(options: ArchiveOptions) -> None:
    out = os.path.join(options.export_path, output_path(options).name)
    if not os.path.lexists(out):
        return
    if not options.force:
        raise ArchiverError(
            f"{out} already exists.\n"
            "Please specify --force/-f option to overwrite the model archive output file.\n"
            "See -h/--help for more details."
        )
    logger.warning("Overwriting %s ...", out)


# -- collecting files ----------------------------------------------------------------------------


def _require_file(path: str) -> Path:
    source = Path(path)
    if not source.exists():
        raise ArchiverError(f"File does not exist: {path}")
    if not source.is_file():
        raise ArchiverError(f"Not a regular file: {path}")
    return source


def _is_pattern(item: str) -> bool:
    return "*" in item or "?" in item or ("[" in item and "]" in item)


def _kept_dir(name: str) -> bool:
    return name not in SKIPPED_DIRS and not name.startswith(".")


def handler_file(handler: str) -> Path | None:
    """The file a ``--handler`` names: ``x.py[:fn]`` or ``x[:fn]`` (``.py`` added); None for a built-in."""
    if handler in BUILTIN_HANDLERS:
        return None
    path = handler.split(":", 1)[0]
    return _require_file(path if path.endswith(".py") else f"{path}.py")


def _add_tree(files: Files, directory: Path, prefix: str, ancestors: frozenset[str] = frozenset()) -> None:
    """Add a directory's files under ``prefix``, following links but never around a loop."""
    real = os.path.realpath(directory)
    if real in ancestors:
        return
    for name in sorted(os.listdir(directory)):
        source = directory / name
        if source.is_dir():
            if _kept_dir(name):
                _add_tree(files, source, f"{prefix}/{name}", ancestors | {real})
        elif source.is_file():
            files[f"{prefix}/{name}"] = source
        else:
            logger.warning("Skipping %s: not a regular file or directory", source)


def _add_flattened(files: Files, directory: Path) -> None:
    """An extra directory's contents go to the root: files by name, subdirectories as trees."""
    for name in sorted(os.listdir(directory)):
        source = directory / name
        if source.is_file():
            files[name] = source
        elif source.is_dir():
            if _kept_dir(name):
                _add_tree(files, source, name, frozenset({os.path.realpath(directory)}))
        else:
            logger.warning("Skipping %s: not a regular file or directory", source)


def _extra_matches(item: str) -> list[str]:
    if not _is_pattern(item):
        if not os.path.exists(item):
            raise ArchiverError(f"File does not exist: {item}")
        return [item]
    matches = sorted(glob.glob(item))
    if not matches:
        logger.warning("Given wildcard pattern did not match any file: %s", item)
    return matches


def _add_extra(files: Files, extra_files: str) -> None:
    for item in (part.strip() for part in extra_files.split(",")):
        for match in _extra_matches(item) if item else []:
            source = Path(match)
            if source.is_file():
                files[source.name] = source
            elif source.is_dir():
                _add_flattened(files, source)
            else:
                raise ArchiverError(f"Invalid extra file given {match}")


def collect_files(options: ArchiveOptions) -> Files:
    """Every file of the archive; later inputs win a name clash, in the real tool's copy order."""
    files: Files = {}
    for path in (options.model_file, options.serialized_file):
        if path:
            source = _require_file(path)
            files[source.name] = source
    handler = handler_file(options.handler)
    if handler is not None:
        files[handler.name] = handler
    if options.extra_files:
        _add_extra(files, options.extra_files)
    for path in (options.requirements_file, options.config_file):
        if path:
            source = _require_file(path)
            files[source.name] = source
    files.pop(MANIFEST_ENTRY, None)
    return dict(sorted(files.items()))


# -- writing -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_output(out: Path) -> Iterator[BinaryIO]:
    """Write beside ``out`` and rename over it, so a model store never shows half an archive."""
    part = out.with_name(f".{out.name}.{secrets.token_hex(6)}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def write_zip(out: Path, files: Files, manifest: str, compression: int) -> None:
    with _atomic_output(out) as fh, zipfile.ZipFile(fh, "w", compression) as zf:
        for name, source in files.items():
            zf.write(source, name)
        zf.writestr(MANIFEST_ENTRY, manifest)


def write_tgz(out: Path, files: Files, manifest: str, root: str) -> None:
    """Every entry under ``root/``, as TorchServe's tgz format (and SageMaker) expect."""
    data = manifest.encode("utf-8")
    with _atomic_output(out) as fh, tarfile.open(str(out), "w:gz", fileobj=fh, dereference=True) as tf:
        for name, source in files.items():
            tf.add(source, arcname=f"{root}/{name}", recursive=False)
        info = tarfile.TarInfo(f"{root}/{MANIFEST_ENTRY}")
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tf.addfile(info, io.BytesIO(data))


def _replace_with_copy(source: Path, target: Path) -> None:
    """Copy into an existing tree without writing through a link that happens to be there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        if target.exists() and os.path.samefile(source, target):
            return
        target.unlink()
    shutil.copy(source, target)


def write_directory(out: Path, files: Files, manifest: str) -> None:
    """``no-archive``: with --force an existing directory is updated in place, as the real tool does."""
    for name, source in files.items():
        _replace_with_copy(source, out / name)
    target = out / MANIFEST_ENTRY
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    target.write_text(manifest, encoding="utf-8")


def create_archive(options: ArchiveOptions) -> Path:
    """Validate, collect and write; returns what was written (``<name>.mar``, ``<name>.tar.gz`` or ``<name>/``)."""
    validate(options)
    check_existing(options)
    files = collect_files(options)
    manifest = manifest_text(build_manifest(options))
    out = output_path(options)
    if options.archive_format == "tgz":
        write_tgz(out, files, manifest, options.model_name)
    elif options.archive_format == "no-archive":
        write_directory(out, files, manifest)
    else:
        compression = zipfile.ZIP_STORED if options.archive_format == "zip-store" else zipfile.ZIP_DEFLATED
        write_zip(out, files, manifest, compression)
    logger.info("Successfully exported model %s to file %s", options.model_name, out)
    return out
