"""Header blocks both ways (RFC 7541).

Out: the server's answers carry few headers, most of them the same on every call, so it encodes them as literals
that never touch its dynamic table ("without indexing", no Huffman): the client's decoder has nothing to remember,
and a fixed block (the answer's ``:status 200`` and ``content-type``, a ``grpc-status: 0`` trailer) is bytes made
once.

In: the ``hpack`` package decodes a client's blocks (Huffman included, as gRPC's C core sends them). A client that
sends the same call again sends the same block, made of references to its tables only; such a block changes no
table, so its headers are those of the last time it was decoded while the table has not changed since: kept, they
cost a dict lookup instead of a decode (~17 us for five headers).
"""

from __future__ import annotations

from hpack import Decoder
from hpack.exceptions import HPACKError

__all__ = ["BlockDecoder", "HPACKError", "encode_literal", "encode_block"]

STATUS_200 = b"\x88"
"""``:status: 200``, the static table's entry 8."""


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """HPACK's integer with a ``prefix_bits``-bit prefix, the high bits of the first byte being ``first``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_literal(name: bytes, value: bytes) -> bytes:
    """One header as a literal field without indexing, with a new name (the name is a literal too)."""
    return b"\x00" + _integer(len(name), 7, 0) + name + _integer(len(value), 7, 0) + value


def encode_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """A header block: ``:status: 200`` when first, the other headers as literals."""
    return b"".join(STATUS_200 if (n, v) == (b":status", b"200") else encode_literal(n, v) for n, v in headers)


def _only_references(block: bytes) -> bool:
    """Whether ``block`` is only indexed fields (each byte's top bit set, or a continuation of its index)."""
    index = 0
    size = len(block)
    while index < size:
        byte = block[index]
        if not byte & 0x80:
            return False
        index += 1
        if byte & 0x7F == 0x7F:  # a multi-byte index: continuation bytes up to one without the top bit
            while index < size and block[index] & 0x80:
                index += 1
            index += 1
    return True


class BlockDecoder:
    """The client's header blocks to (name, value) pairs as text (Latin-1: any bytes decode; gRPC's metadata is
    ASCII), with the repeated-block shortcut above."""

    def __init__(self, max_header_list_size: int) -> None:
        self._decoder = Decoder()
        self._decoder.max_header_list_size = max_header_list_size
        self._known: dict[bytes, list[tuple[str, str]]] = {}

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """Raises :class:`HPACKError` on a block that cannot be decoded (the connection is then unusable)."""
        known = self._known.get(block)
        if known is not None:
            return known
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in self._decoder.decode(block, raw=True)
        ]
        if _only_references(block):
            if len(self._known) > 64:
                self._known.clear()
            self._known[block] = headers
        else:  # the table may have changed: what was kept may no longer be what its blocks mean
            self._known.clear()
        return headers
