"""Downloads over HTTP(S) with aiohttp's client, imported only when a registration downloads (aiohttp is 13 MB of
the frontend's memory). Every hop is checked before it is requested, and the connector connects only to addresses
:class:`GuardedResolver` checked (no DNS-rebinding window)."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import IO, TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from .download_guard import forbidden_address, has_traversal, is_forbidden_text, parse_ip
from .errors import AddressRefused, DownloadFailed, RelativeUrl, UrlNotAllowed

if TYPE_CHECKING:
    from .download_policy import DownloadPolicy

logger = logging.getLogger("modelserver.downloads")

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 1 << 20
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30, sock_read=120)
_ANY_FAMILY = socket.AF_UNSPEC


async def download(url: str, out: IO[bytes], policy: DownloadPolicy) -> None:
    resolver = GuardedResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=_TIMEOUT, trust_env=False) as session:
        try:
            await _follow(session, resolver, url, out, policy)
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise DownloadFailed(url, str(err) or type(err).__name__) from None


async def _follow(
    session: aiohttp.ClientSession, resolver: GuardedResolver, url: str, out: IO[bytes], policy: DownloadPolicy
) -> None:
    """GET ``url``, following up to ``max_redirects`` redirects by hand, each hop checked before it is requested."""
    current = url
    for _ in range(policy.max_redirects + 1):
        await resolver.check_url(current)
        headers = {"Accept-Encoding": "identity"}
        async with session.get(URL(current), allow_redirects=False, headers=headers) as response:
            if response.status in _REDIRECTS:
                current = next_hop(current, response.headers.get("Location"), policy)
                continue
            if response.status != 200:
                raise DownloadFailed(url, f"HTTP {response.status}")
            await _save_body(response, out, policy.max_bytes, url)
            return
    raise DownloadFailed(url, f"more than {policy.max_redirects} redirects")


def next_hop(current: str, location: str | None, policy: DownloadPolicy) -> str:
    """The redirect target, held to the same rules as the URL the client gave."""
    if not location:
        raise DownloadFailed(current, "a redirect without a Location")
    if has_traversal(location):
        raise RelativeUrl(location)
    target = str(URL(current).join(URL(location)))
    if URL(target).scheme not in ("http", "https") or not policy.allows(target):
        raise UrlNotAllowed(target)
    logger.info("Download of %s redirected to %s", current, target)
    return target


async def _save_body(response: aiohttp.ClientResponse, out: IO[bytes], max_bytes: int, url: str) -> None:
    if response.content_length is not None and response.content_length > max_bytes:
        raise DownloadFailed(url, f"larger than the {max_bytes}-byte download limit")
    received = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        received += len(chunk)
        if received > max_bytes:
            raise DownloadFailed(url, f"larger than the {max_bytes}-byte download limit")
        await asyncio.to_thread(out.write, chunk)


class AddressForbidden(OSError):
    """Raised by :class:`GuardedResolver` for a name that resolves to a forbidden address."""


class GuardedResolver(AbstractResolver):
    """Resolves with getaddrinfo and refuses any answer holding a forbidden address.

    The connector connects only to the addresses this returns, so what was checked is what is used.
    """

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        bad = [r["host"] for r in results if is_forbidden_text(r["host"])]
        if bad:
            raise AddressForbidden(f"{host} resolves to forbidden address(es) {', '.join(bad)}")
        return results

    async def close(self) -> None:
        await self._inner.close()

    async def check_url(self, url: str) -> None:
        """Refuse (400) a URL whose host is, or resolves to, any forbidden address; before any request."""
        host = URL(url).raw_host
        if not host:
            raise DownloadFailed(url, "the URL has no host")
        literal = parse_ip(host)
        if literal is not None:
            if forbidden_address(literal):
                raise AddressRefused(url)
            return
        try:
            await self.resolve(host, 0, _ANY_FAMILY)
        except AddressForbidden:
            raise AddressRefused(url) from None
        except OSError as err:
            raise DownloadFailed(url, f"cannot resolve {host}: {err}") from None
