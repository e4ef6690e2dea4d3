"""modelserver.h2.hpack_io's decoder: a kept block's headers are always what decoding it again would give, whatever
mix of indexed fields, indexed and unindexed literals and table size updates the client sends."""

from __future__ import annotations

from hpack import Decoder, Encoder, HeaderTuple, NeverIndexedHeaderTuple
from hypothesis import given, settings
from hypothesis import strategies as st

from modelserver.h2.hpack_io import BlockDecoder, _changes_no_table, _integer

NAMES = [":path", "content-type", "te", "grpc-timeout", "x-request-id", "user-agent"]
VALUES = ["/a", "/inference.GRPCInferenceService/ModelInfer", "application/grpc", "trailers", "1S", "x" * 130]


def unindexed(static_name_index: int, value: bytes) -> bytes:
    """A literal without indexing (RFC 7541 6.2.2) whose name is a static entry, as nghttp2 sends ``:path``."""
    return _integer(static_name_index, 4, 0x00) + _integer(len(value), 7, 0x00) + value


def unindexed_new_name(name: bytes, value: bytes) -> bytes:
    return b"\x00" + _integer(len(name), 7, 0x00) + name + _integer(len(value), 7, 0x00) + value


field = st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES), st.sampled_from(["indexed", "never"]))
step = st.tuples(
    st.lists(field, min_size=1, max_size=4),
    st.sampled_from([None, "path", "length", "new-name"]),  # an unindexed literal at the end
    st.sampled_from([None, None, None, 256, 4096]),  # a table size update before the block
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, min_size=1, max_size=12), st.integers(0, 3))
def test_kept_blocks_decode_as_a_fresh_decoder_does(steps: list, repeat: int) -> None:
    encoder, reference, ours = Encoder(), Decoder(), BlockDecoder(64 << 10)
    for fields, extra, table_size in steps + steps[:repeat]:
        if table_size is not None:
            encoder.header_table_size = table_size
        headers = [HeaderTuple(n, v) if kind == "indexed" else NeverIndexedHeaderTuple(n, v) for n, v, kind in fields]
        block = encoder.encode(headers, huffman=True)
        if extra == "path":  # after the encoder's fields: a table size update must come first
            block += unindexed(4, b"/inference.GRPCInferenceService/ModelInfer")
        elif extra == "length":
            block += unindexed(28, b"1048621")
        elif extra == "new-name":
            block += unindexed_new_name(b"x-trace", b"abc")
        expected = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in reference.decode(block, raw=True)]
        assert ours.decode(block) == expected


def test_nghttp2s_repeated_block_changes_no_table() -> None:
    encoder = Encoder()
    call = [(":method", "POST"), ("content-type", "application/grpc"), ("te", "trailers")]
    first = unindexed(4, b"/inference.GRPCInferenceService/ModelInfer") + encoder.encode(call)
    again = unindexed(4, b"/inference.GRPCInferenceService/ModelInfer") + encoder.encode(call)
    assert not _changes_no_table(first)  # the first time, content-type and te go into the table
    assert _changes_no_table(again)  # then they are references; :path stays a literal left out of the table
    assert _changes_no_table(unindexed(28, b"1048621") + unindexed_new_name(b"x-" * 70, b"v" * 200))
    assert not _changes_no_table(b"\x3f\xe1\x1f")  # a table size update (to 4096)
