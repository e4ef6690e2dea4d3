"""Where a registration's ``url`` points, and fetching it into the model store without becoming an SSRF tool.

``POST /models?url=`` takes a model-store file name, a directory, a ``file://`` URL or an ``http(s)://`` URL
(TorchServe's ``ModelArchive.downloadModel``). A URL that matches one of the ``allowed_urls`` regexes (default
``file://.*|http(s)?://.*``) is copied into the model store under its file name; a URL that matches none is refused
(404 ``Given URL ... does not match any allowed URL(s)``); anything else is a name in the store (or a directory).

On top of TorchServe's rules (CVE-2023-43654 and the gaps after its fix), a download:

* refuses ``..`` anywhere in the URL, also percent-encoded (``%2e%2e``, ``%252e%252e``), before any request;
* refuses hosts that are, or resolve to, a link-local, metadata, multicast or unspecified address: every address a
  name resolves to is checked, and the connection uses only the addresses checked (no DNS-rebinding window);
  loopback and private addresses are allowed;
* follows redirects itself, at most ``MAX_REDIRECTS`` (:mod:`.download_policy`), each hop re-checked against
  ``allowed_urls``, the ``..`` rule and the address rules; a redirect never leaves http(s);
* stops at ``max_download_size`` bytes (default 10 GiB), streaming into a hidden temporary file in the store that
  becomes the archive only when complete; a failed or refused download leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from .download_guard import has_traversal
from .download_policy import DownloadPolicy
from .errors import (
    ArchiveNotFound,
    DownloadFailed,
    EmptyUrl,
    ModelFileExists,
    ModelFileNotFound,
    RelativeUrl,
    UrlNotAllowed,
)

logger = logging.getLogger("modelserver.downloads")

# TorchServe's VALID_URL_PATTERN ("file?" also matches "fil://"): a URL that must match allowed_urls.
_URL_LIKE = re.compile(r"file?://.*|http(s)?://.*", re.I | re.S)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSource:
    """What to open: ``path``, a file or directory; ``downloaded`` is set when the registration created it."""

    path: Path
    downloaded: Path | None = None


# -- the url parameter ---------------------------------------------------------------------------


async def resolve_source(url: str | None, store: str | None, policy: DownloadPolicy) -> ModelSource:
    """The model ``url`` names: fetched into the store when it is an allowed URL, else found locally."""
    if not url:
        raise EmptyUrl()
    if has_traversal(url):
        raise RelativeUrl(url)
    if store is None:
        raise ArchiveNotFound("Model store has not been configured.")
    if not _is_download(url, policy):
        return ModelSource(local_path(url, Path(store)))
    name = store_file_name(url)
    target = Path(store) / name
    if target.exists():
        raise ModelFileExists(name)
    try:
        await fetch(url, target, policy)
    except DownloadFailed as err:
        logger.warning("%s: %s", err.message, err.reason or "no reason given")
        raise
    return ModelSource(target, target)


def looks_like_url(url: str) -> bool:
    """Whether ``url`` is a URL that must match ``allowed_urls`` (TorchServe's ``VALID_URL_PATTERN``), not a name."""
    return _URL_LIKE.fullmatch(url) is not None


def _is_download(url: str, policy: DownloadPolicy) -> bool:
    """True for an allowed URL; 404 for a URL no pattern allows; False for a plain name (TorchServe's validateURL)."""
    if not looks_like_url(url):
        return False
    if not policy.allows(url):
        raise UrlNotAllowed(url)
    return True


def store_file_name(url: str) -> str:
    """The archive's name in the store: the last segment of the URL path, decoded; never a path of its own."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if not name or name.startswith(".") or any(c in name for c in "/\\\x00"):
        raise DownloadFailed(url, "the URL path does not end in a usable file name")
    return name


def local_path(url: str, store: Path) -> Path:
    """A store file named by the url's last segment, a directory (as given, or in the store), else 404."""
    in_store = store / Path(url).name
    if in_store.is_file():
        return in_store
    given = Path(url)
    if given.is_dir():
        return given
    if in_store.is_dir():
        return in_store
    raise ModelFileNotFound(url)


# -- fetching ------------------------------------------------------------------------------------


async def fetch(url: str, target: Path, policy: DownloadPolicy) -> None:
    """Copy ``url`` to ``target`` (which must not exist) through a hidden part file; nothing is left on failure."""
    part = target.with_name(f".{target.name}.{secrets.token_hex(8)}.part")
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as err:
        raise DownloadFailed(url, f"cannot write to the model store: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            if url.lower().startswith("file:"):
                await asyncio.to_thread(_copy_local, url, out, policy.max_bytes)
            else:
                from .download_client import download  # aiohttp (13 MB) only when a download happens

                await download(url, out, policy)
        _publish(part, target)
        logger.info("Downloaded %s to %s", url, target)
    finally:
        part.unlink(missing_ok=True)


def _publish(part: Path, target: Path) -> None:
    """Give the finished part file its name, never replacing a file that appeared meanwhile."""
    try:
        os.link(part, target)
    except FileExistsError:
        raise ModelFileExists(target.name) from None
    except OSError:  # a file system without hard links: the check and the rename are then two steps
        if target.exists():
            raise ModelFileExists(target.name) from None
        os.rename(part, target)


def _copy_local(url: str, out: IO[bytes], max_bytes: int) -> None:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise DownloadFailed(url, "a file URL must name a local file")
    try:
        with open(unquote(parts.path), "rb") as source:
            _copy_capped(source, out, max_bytes, url)
    except OSError as err:
        raise DownloadFailed(url, err.strerror or type(err).__name__) from None


def _copy_capped(source: IO[bytes], out: IO[bytes], max_bytes: int, url: str) -> None:
    copied = 0
    while chunk := source.read(_CHUNK):
        copied += len(chunk)
        if copied > max_bytes:
            raise DownloadFailed(url, f"larger than the {max_bytes}-byte download limit")
        out.write(chunk)
