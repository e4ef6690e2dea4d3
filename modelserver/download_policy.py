"""What a registration may download: ``allowed_urls``, ``max_download_size`` and the redirect limit, read from the
configuration properties (:mod:`.downloads` applies them; :mod:`.download_client` fetches under them)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger("modelserver.downloads")

DEFAULT_ALLOWED_URLS = r"file://.*|http(s)?://.*"
DEFAULT_MAX_DOWNLOAD_SIZE = 10 << 30
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class DownloadPolicy:
    """``allowed_urls`` and the download size cap, read from the configuration properties."""

    allowed: tuple[re.Pattern[str], ...]
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_SIZE
    max_redirects: int = MAX_REDIRECTS

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> DownloadPolicy:
        patterns = properties.get("allowed_urls", DEFAULT_ALLOWED_URLS).split(",")
        return cls(tuple(_compile(p.strip()) for p in patterns if p.strip()), _max_bytes(properties))

    def allows(self, url: str) -> bool:
        return any(pattern.fullmatch(url) for pattern in self.allowed)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.I | re.S)
    except re.error as err:
        logger.error("allowed_urls: ignoring invalid regex %r (%s); it matches nothing", pattern, err)
        return re.compile(r"(?!)")


def _max_bytes(properties: Mapping[str, str]) -> int:
    value = properties.get("max_download_size", "")
    try:
        return int(value) if int(value) > 0 else DEFAULT_MAX_DOWNLOAD_SIZE
    except ValueError:
        return DEFAULT_MAX_DOWNLOAD_SIZE
