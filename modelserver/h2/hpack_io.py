"""Header blocks both ways (RFC 7541).

Out: the server's answers carry few headers, most of them the same on every call, so it encodes them as literals
that never touch its dynamic table ("without indexing", no Huffman): the client's decoder has nothing to remember,
and a fixed block (the answer's ``:status 200`` and ``content-type``, a ``grpc-status: 0`` trailer) is bytes made
once.

In: the ``hpack`` package decodes a client's blocks (Huffman included, as gRPC's C core sends them). A client that
sends the same call again sends the same block: references to its tables, and literals it does not index (nghttp2,
h2load's and curl's library, never indexes ``:path`` or ``content-length``). Such a block changes no table, so its
headers are those of the last time it was decoded while the table has not changed since: kept, they cost a dict
lookup instead of a decode (~17 us for five headers; some 4,300 Python opcodes for h2load's block of a call).
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


KEPT_BLOCK_MAX = 512
"""Longer blocks are decoded each time: the blocks kept per connection stay small (64 of at most this size)."""


def _integer_at(block: bytes, index: int, prefix_bits: int) -> tuple[int, int]:
    """The integer with a ``prefix_bits``-bit prefix at ``index`` and the index after it (RFC 7541 5.1)."""
    limit = (1 << prefix_bits) - 1
    value = block[index] & limit
    index += 1
    if value < limit:
        return value, index
    shift = 0
    while True:
        byte = block[index]
        index += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7


def _changes_no_table(block: bytes) -> bool:
    """Whether decoding ``block`` leaves the dynamic table as it was: only indexed fields (RFC 7541 6.1) and literals
    without indexing or never indexed (6.2.2, 6.2.3); no incremental indexing (6.2.1), no size update (6.3). Called on
    a block that decoded, so it is well formed."""
    index = 0
    size = len(block)
    while index < size:
        byte = block[index]
        if byte & 0x80:  # an indexed field
            _, index = _integer_at(block, index, 7)
        elif byte & 0xE0:  # 01xxxxxx: a literal added to the table; 001xxxxx: a table size update
            return False
        else:  # 0000xxxx or 0001xxxx: a literal left out of the table; its name a reference or a string, then its value
            name_index, index = _integer_at(block, index, 4)
            if name_index == 0:
                length, index = _integer_at(block, index, 7)
                index += length
            length, index = _integer_at(block, index, 7)
            index += length
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
        if not _changes_no_table(block):  # the table changed: what was kept may no longer be what its blocks mean
            self._known.clear()
        elif len(block) <= KEPT_BLOCK_MAX:
            if len(self._known) > 64:
                self._known.clear()
            self._known[block] = headers
        return headers
