"""The shared memory rings between the frontend and a worker (workers/shared_ring.py) and the frames that refer to
them: bodies arrive whole and in order whatever the sizes and the reader's pace, a full ring falls back to the
socket, a frame refused after its bodies were put leaves the ring as it was, and a broken reference is a protocol
error."""

from __future__ import annotations

import os
import random
import socket
import struct
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.frame_decoder import FrameDecoder
from workers.protocol import (
    ATTACH_MIN,
    RING_REFERENCE,
    RING_REFERENCE_HEADER,
    ProtocolError,
    attach,
    encode_parts,
)
from workers.shared_ring import MIN_CAPACITY, PAGE, RingReader, RingWriter, SharedRings
from workers.socket_channel import SocketChannel

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memfd_create is Linux-only")

CAPACITY = 1 << 20


def ring_pair(capacity: int = CAPACITY) -> tuple[RingWriter, RingReader]:
    """The frontend's writer and the worker's reader of the same ring (two processes would map it twice)."""
    rings = SharedRings.create(capacity)
    worker = SharedRings(os.dup(rings.fd), capacity)
    rings.close_fd()
    worker.close_fd()
    return rings.frontend_ends()[0], worker.worker_ends()[1]


def result(index: int, body: bytes) -> dict[str, Any]:
    return {"kind": "result", "items": [[index, 200, "", [], "", attach(body), None]]}


def joined(parts: list[Any]) -> bytes:
    return b"".join(bytes(part) for part in parts)


# --- the ring alone --------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, CAPACITY), min_size=1, max_size=60),
    paces=st.lists(st.integers(0, 8), min_size=1, max_size=60),
)
def test_bodies_come_out_whole_and_in_order_at_any_pace(sizes: list[int], paces: list[int]) -> None:
    writer, reader = ring_pair()
    in_ring: deque[tuple[int, bytes]] = deque()
    for index, size in enumerate(sizes):
        for _ in range(paces[index % len(paces)]):  # the reader takes some, at its own pace
            if in_ring:
                offset, body = in_ring.popleft()
                assert reader.take(offset, len(body)) == body
        body = random.Random(index).randbytes(size)
        offset = writer.put(body)
        if offset >= 0:
            assert 0 <= offset <= CAPACITY - size
            in_ring.append((offset, body))
        else:  # no room now: only when what is in the ring, and the end skipped (less than a body), leave too little
            held = [len(waiting) for _, waiting in in_ring]
            assert sum(held) + max(held, default=0) + size > CAPACITY
    while in_ring:
        offset, body = in_ring.popleft()
        assert reader.take(offset, len(body)) == body


def test_a_ring_that_empties_begins_again_at_the_start() -> None:
    writer, reader = ring_pair()
    for round_ in range(50):
        body = bytes([round_]) * 300_000
        offset = writer.put(body)
        assert offset == 0  # every body finds the ring empty: the same pages every time
        assert reader.take(offset, len(body)) == body


def test_a_ring_holds_what_fits_and_refuses_the_rest_until_the_reader_takes() -> None:
    writer, reader = ring_pair()
    body = b"x" * (CAPACITY // 4)
    offsets = [writer.put(body) for _ in range(4)]
    assert offsets == [0, CAPACITY // 4, CAPACITY // 2, 3 * CAPACITY // 4]
    assert writer.put(b"y") == -1  # full
    assert reader.take(0, len(body)) == body
    assert writer.put(b"z" * 1000) == 0  # the start is free again; the end had no room
    assert writer.put(b"w" * (CAPACITY // 4)) == -1  # only CAPACITY / 4 - 1000 bytes are free
    for offset in offsets[1:]:
        assert reader.take(offset, len(body)) == body
    assert reader.take(0, 1000) == b"z" * 1000


def test_a_body_larger_than_the_ring_is_refused() -> None:
    writer, _ = ring_pair()
    assert writer.put(bytes(CAPACITY + 1)) == -1
    assert writer.put(bytes(CAPACITY)) == 0


def test_a_reference_out_of_order_is_a_protocol_error() -> None:
    writer, reader = ring_pair()
    first, second = writer.put(b"a" * 1000), writer.put(b"b" * 1000)
    with pytest.raises(ProtocolError, match="where the next body is"):
        reader.take(second, 1000)  # the first was never taken
    assert reader.take(first, 1000) == b"a" * 1000
    with pytest.raises(ProtocolError, match="outside"):
        reader.take(1000, CAPACITY)


def test_restore_takes_back_what_was_put() -> None:
    writer, reader = ring_pair()
    reader.take(writer.put(b"a" * 700_000), 700_000)
    saved = writer.save()
    assert writer.put(b"b" * 500_000) == 0  # the ring was empty: it began again at the start
    writer.restore(saved)
    assert writer.put(b"c" * 200_000) == 0
    assert reader.take(0, 200_000) == b"c" * 200_000


def test_the_mapping_must_have_the_size_of_its_rings() -> None:
    rings = SharedRings.create(MIN_CAPACITY)
    with pytest.raises(ValueError, match="shared memory of"):
        SharedRings.attach(os.dup(rings.fd), 2 * MIN_CAPACITY)
    with pytest.raises(ValueError, match="holds"):
        SharedRings.create(MIN_CAPACITY - 1)
    assert os.fstat(rings.fd).st_size == PAGE + 2 * MIN_CAPACITY
    rings.close_fd()


# --- frames that refer to the ring ------------------------------------------------------------------------------


def test_a_large_body_travels_as_a_twelve_byte_reference() -> None:
    writer, reader = ring_pair()
    body = os.urandom(300_000)
    parts = encode_parts(result(1, body), ring=writer)
    wire = joined(parts)
    assert len(wire) < 200  # the body is not in the frame
    assert wire.startswith(RING_REFERENCE_HEADER + RING_REFERENCE.pack(0, len(body)))
    (message,) = FrameDecoder(ring=reader).feed(wire)
    assert message["items"][0][5] == body


def test_a_body_below_the_attachment_size_stays_in_the_frame() -> None:
    writer, _ = ring_pair()
    body = b"q" * (ATTACH_MIN - 1)
    wire = joined(encode_parts(result(1, body), ring=writer))
    assert body in wire and writer.head == 0


def test_a_full_ring_sends_the_body_in_the_socket() -> None:
    writer, reader = ring_pair(MIN_CAPACITY * 2)
    bodies = [os.urandom(MIN_CAPACITY + 1000) for _ in range(3)]
    wires = [joined(encode_parts(result(index, body), ring=writer)) for index, body in enumerate(bodies)]
    assert [len(wire) < 200 for wire in wires] == [True, False, False]  # only the first fitted
    decoder = FrameDecoder(ring=reader)
    got = [message["items"][0][5] for wire in wires for message in decoder.feed(wire)]
    assert got == bodies


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([10, ATTACH_MIN, 100_000, 300_000, 700_000]), min_size=1, max_size=12),
    cuts=st.lists(st.integers(1, 5000), min_size=1, max_size=20),
)
def test_frames_with_references_decode_when_split_anywhere(sizes: list[int], cuts: list[int]) -> None:
    writer, reader = ring_pair()
    bodies = [random.Random(index).randbytes(size) for index, size in enumerate(sizes)]
    wire = b"".join(joined(encode_parts(result(index, body), ring=writer)) for index, body in enumerate(bodies))
    decoder = FrameDecoder(ring=reader)
    got: list[bytes] = []
    at = 0
    for cut in cuts * (len(wire) // sum(cuts) + 1):
        if at >= len(wire):
            break
        got += [message["items"][0][5] for message in decoder.feed(wire[at : at + cut])]
        at += cut
    assert got == bodies


def test_a_frame_refused_after_its_bodies_were_put_leaves_the_ring_as_it_was() -> None:
    writer, reader = ring_pair()
    body = os.urandom(200_000)
    with pytest.raises(ProtocolError, match="exceeds"):
        encode_parts(result(1, body), max_frame_size=100_000, ring=writer)
    with pytest.raises(ProtocolError, match="cannot pack"):
        encode_parts({"kind": "result", "items": [[1, 200, "", [], "", attach(body), object()]]}, ring=writer)
    assert writer.head == 0
    wire = joined(encode_parts(result(2, body), ring=writer))
    (message,) = FrameDecoder(ring=reader).feed(wire)
    assert message["items"][0][5] == body


def test_a_reference_without_shared_memory_is_a_protocol_error() -> None:
    writer, _ = ring_pair()
    wire = joined(encode_parts(result(1, os.urandom(100_000)), ring=writer))
    with pytest.raises(ProtocolError, match="no shared memory"):
        FrameDecoder().feed(wire)


def test_a_reference_counts_toward_the_frame_limit() -> None:
    writer, reader = ring_pair()
    wire = joined(encode_parts(result(1, os.urandom(100_000)), ring=writer))
    with pytest.raises(ProtocolError, match="exceed max_frame_size"):
        FrameDecoder(max_frame_size=50_000, ring=reader).feed(wire)


def test_a_forged_reference_is_a_protocol_error() -> None:
    _, reader = ring_pair()
    forged = RING_REFERENCE_HEADER + RING_REFERENCE.pack(CAPACITY - 10, 100) + struct.pack("!I", 1) + b"\x80"
    with pytest.raises(ProtocolError):
        FrameDecoder(ring=reader).feed(forged)


# --- the worker's socket channel with rings ----------------------------------------------------------------------


@contextmanager
def channels() -> Iterator[tuple[SocketChannel, SocketChannel]]:
    """A worker's channel and a frontend-like peer, sharing rings as a spawned worker does."""
    left, right = socket.socketpair()
    left.settimeout(10)
    right.settimeout(10)
    rings = SharedRings.create(CAPACITY)
    theirs = SharedRings.attach(os.dup(rings.fd), CAPACITY)
    rings.close_fd()
    try:
        yield SocketChannel(left, rings=theirs.worker_ends()), SocketChannel(right, rings=rings.frontend_ends())
    finally:
        left.close()
        right.close()


def test_a_socket_channel_sends_large_bodies_through_the_ring() -> None:
    body = os.urandom(500_000)
    with channels() as (worker, frontend):
        worker.send(result(1, body))
        raw = frontend.sock.recv(1 << 20)  # what crossed the socket, read past the frontend's channel
        assert len(raw) < 200  # only the reference and the frame
        (message,) = FrameDecoder(ring=frontend._decoder._ring).feed(raw)
    assert message["items"][0][5] == body


def test_held_frames_with_references_keep_their_order() -> None:
    bodies = [os.urandom(100_000 + index) for index in range(5)]
    with channels() as (worker, frontend):
        for index, body in enumerate(bodies):
            worker.send(result(index, body), hold=True)  # small on the wire: held, to leave together
        assert worker.held_bytes > 0
        worker.flush()
        got = [frontend.recv() for _ in bodies]
    assert [message["items"][0][5] for message in got if message is not None] == bodies
