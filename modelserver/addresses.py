"""Listening addresses as TorchServe writes them: ``http(s)://host[:port]`` (IPv6 in brackets) or ``unix:/path``."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from modelserver.properties import ConfigError

__all__ = ["Address", "parse_address"]

_TCP_ADDRESS = re.compile(r"(?P<scheme>https?)://(?P<host>\[[^\]]*\]|[\w.-]+)(?::(?P<port>[0-9]+))?", re.I)
_UNIX_ADDRESS = re.compile(r"unix:(?P<path>/.*)", re.I | re.S)
_MAX_PORT = 65535


@dataclass(frozen=True)
class Address:
    """A listening address: ``http``/``https`` with ``host`` and ``port``, or ``unix`` with ``path`` (port -1)."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def is_unix(self) -> bool:
        return self.scheme == "unix"

    @property
    def is_tls(self) -> bool:
        return self.scheme == "https"

    def __str__(self) -> str:
        if self.is_unix:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_address(key: str, value: str, default_http_port: int, default_https_port: int) -> Address:
    """Parse ``http://host[:port]``, ``https://host[:port]``, ``http://[::1]:8080`` or ``unix:/path/to.sock``."""
    text = value.strip()
    unix = _UNIX_ADDRESS.fullmatch(text)
    if unix is not None:
        return Address("unix", "", -1, unix["path"])
    tcp = _TCP_ADDRESS.fullmatch(text)
    if tcp is None:
        raise ConfigError(f"{key}: invalid address {value!r}; expected http(s)://host[:port] or unix:/path")
    scheme = tcp["scheme"].lower()
    host = _parse_host(key, value, tcp["host"])
    if tcp["port"] is None:
        return Address(scheme, host, default_https_port if scheme == "https" else default_http_port)
    port = int(tcp["port"])
    if port > _MAX_PORT:
        raise ConfigError(f"{key}: port {port} out of range in {value!r}")
    return Address(scheme, host, port)


def _parse_host(key: str, value: str, host: str) -> str:
    """Return the host, with an IPv6 literal's brackets removed after checking it."""
    if not host.startswith("["):
        return host
    literal = host[1:-1]
    try:
        ipaddress.IPv6Address(literal)
    except ValueError:
        raise ConfigError(f"{key}: invalid IPv6 address {host!r} in {value!r}") from None
    return literal
