"""The pure checks behind a safe download: ``..`` in a URL (also percent-encoded) and the addresses a download may
not reach (link-local, cloud metadata, multicast, unspecified, also when embedded in IPv6)."""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def has_traversal(url: str) -> bool:
    """``..`` in the URL as given or after percent-decoding it (repeatedly, so ``%252e`` counts too)."""
    text = url
    for _ in range(4):
        if ".." in text:
            return True
        decoded = unquote(text)
        if decoded == text:
            return False
        text = decoded
    return True  # still decoding after four rounds: nobody needs that


def forbidden_address(address: Address) -> bool:
    """Link-local (169.254/16, fe80::/10), cloud metadata, multicast or unspecified, also when embedded in IPv6."""
    embedded = _embedded_ipv4(address)
    if embedded is not None and forbidden_address(embedded):
        return True
    return (
        address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address in _METADATA_ADDRESSES
        or (address.version == 4 and address in _THIS_NETWORK)
    )


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if address.version != 6:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def is_forbidden_text(text: str) -> bool:
    address = parse_ip(text)
    return address is None or forbidden_address(address)
