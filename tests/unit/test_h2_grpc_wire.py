"""gRPC's framing and words on the native transport (modelserver.h2.grpc_wire): messages out of any split of the
stream, size limits, ``grpc-timeout``, ``grpc-message``'s percent-encoding, trailers and metadata."""

from __future__ import annotations

import base64
import itertools
import random

import pytest
from hpack import Decoder
from hypothesis import given, settings
from hypothesis import strategies as st

from modelserver.h2 import grpc_wire as w

BIG_MESSAGES = st.builds(
    lambda size, seed: random.Random(seed).randbytes(size),
    st.integers(w.BIG_MESSAGE, w.BIG_MESSAGE + 10),
    st.integers(),
)
"""Messages of 64 KiB from a seed: drawn byte by byte they fail Hypothesis's data_too_large health check at times."""


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(max_size=300) | BIG_MESSAGES, max_size=4),
    st.lists(st.integers(min_value=0, max_value=3 * w.BIG_MESSAGE), max_size=12),
)
def test_any_split_gives_the_same_messages(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(w.frame(message) for message in messages)
    points = sorted({0, len(stream), *(cut for cut in cuts if cut < len(stream))})
    reader = w.MessageReader(1 << 20)
    found: list[bytes | bytearray] = []
    for start, end in zip(points, points[1:], strict=False):
        found += reader.feed(memoryview(stream)[start:end])
    assert found == messages and not reader.partial


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(max_size=300) | BIG_MESSAGES, max_size=4),
    st.lists(st.integers(min_value=0, max_value=3 * w.BIG_MESSAGE), max_size=40),
    st.lists(st.integers(min_value=0, max_value=40), max_size=6),
    st.booleans(),
)
def test_pieces_fed_in_runs_give_the_same_messages(
    messages: list[bytes], cuts: list[int], groups: list[int], cut_at_ends: bool
) -> None:
    """feed_many over any grouping of the pieces finds what feed finds piece by piece, a piece that ends a message
    exactly included (``cut_at_ends``)."""
    stream = b"".join(w.frame(message) for message in messages)
    ends = list(itertools.accumulate(w.PREFIX_SIZE + len(message) for message in messages)) if cut_at_ends else []
    points = sorted({0, len(stream), *ends, *(cut for cut in cuts if cut < len(stream))})
    pieces = [memoryview(stream)[start:end] for start, end in zip(points, points[1:], strict=False)]
    bounds = sorted({0, len(pieces), *(group for group in groups if group < len(pieces))})
    reader = w.MessageReader(1 << 20)
    found: list[bytes | bytearray] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        found += reader.feed_many(pieces[start:end])
    assert found == messages and not reader.partial


def test_a_big_message_is_its_own_bytearray_and_a_small_one_bytes() -> None:
    big, small = bytes(range(256)) * 300, b"tiny"
    stream = w.frame(big) + w.frame(small)
    reader = w.MessageReader(1 << 20)
    found = reader.feed(stream[:1000]) + reader.feed(stream[1000:])
    assert found == [big, small] and type(found[0]) is bytearray and type(found[1]) is bytes


def test_a_message_over_the_limit_is_refused_from_its_prefix() -> None:
    with pytest.raises(w.MessageTooLarge, match=r"Received message larger than max \(1001 vs. 1000\)"):
        w.MessageReader(1000).feed(w.PREFIX.pack(0, 1001))


def test_a_compressed_message_is_refused() -> None:
    with pytest.raises(w.CompressedMessage):
        w.MessageReader(1000).feed(w.PREFIX.pack(1, 3) + b"abc")


@pytest.mark.parametrize(
    "value, seconds",
    [("1S", 1.0), ("250m", 0.25), ("2M", 120.0), ("1H", 3600.0), ("7u", 7e-6), ("99999999n", 0.099999999)],
)
def test_grpc_timeout(value: str, seconds: float) -> None:
    assert w.timeout_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "S", "123456789S", "1s", "1.5S", "-1S"])
def test_a_malformed_grpc_timeout_is_none(value: str) -> None:
    assert w.timeout_seconds(value) is None


def test_grpc_message_is_percent_encoded_utf8() -> None:
    assert w.percent_encode("50% off\nnaïve") == b"50%25 off%0Ana%C3%AFve"


def decoded(block: bytes) -> list[tuple[str, str]]:
    return [(name, value) for name, value in Decoder().decode(block)]


def test_trailers_and_a_trailers_only_answer() -> None:
    assert decoded(w.trailers(0)) == [("grpc-status", "0")]
    expected = [("grpc-status", "5"), ("grpc-message", "no such model: x%25")]
    assert decoded(w.trailers(5, "no such model: x%")) == expected
    block = w.trailers(12, "nope", (("grpc-accept-encoding", "identity"), ("detail-bin", b"\x00\xff")), only=True)
    assert decoded(block) == [
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", "12"),
        ("grpc-message", "nope"),
        ("grpc-accept-encoding", "identity"),
        ("detail-bin", base64.b64encode(b"\x00\xff").decode().rstrip("=")),
    ]


def test_invocation_metadata_leaves_out_pseudo_and_grpc_headers_and_decodes_binary_values() -> None:
    headers = [
        (":path", "/x/y"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", "1S"),
        ("authorization", "Bearer k"),
        ("trace-bin", "AP8"),
    ]
    assert w.invocation_metadata(headers) == (("authorization", "Bearer k"), ("trace-bin", b"\x00\xff"))


def test_pieces_are_coalesced_and_large_ones_kept_as_byte_views() -> None:
    floats = memoryview(bytearray(range(256)) * 64).cast("f")  # a float view: its length counts floats, not bytes
    pieces, size = w.coalesce([b"ab", b"cd", floats, b"e", bytearray(b"f")])
    assert size == 2 + 2 + 16384 + 1 + 1
    assert [bytes(p) for p in pieces] == [b"abcd", bytes(floats), b"ef"]
    assert isinstance(pieces[1], memoryview) and pieces[1].obj is floats.obj  # not copied
