"""The shared memory rings between the frontend and a worker (workers/shared_ring.py) and the frames that refer to
them: bodies arrive whole and in order whatever the sizes and the reader's pace, a full ring falls back to the
socket, a frame refused after its bodies were put leaves the ring as it was, and a broken reference is a protocol
error."""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import example, given, settings
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


Span = tuple[int, int, "bytes | None"]
"""A stretch of the ring in use, in the reader's order: a body (offset, length, its bytes), or the end the writer
skipped to begin again at the start (offset, length, None), in use until the reader passes it, with the body that
follows it."""


def expected_place(in_ring: deque[Span], end: int, size: int, capacity: int) -> int:
    """Where the design puts a body, from the stretches in use as intervals (no counters): at the start when the
    ring is empty; else right after the last body if it fits before the end without touching a stretch in use; else
    at the start if that is free (the end after the last body is then skipped); else nowhere (-1)."""

    def free(start: int) -> bool:
        return start + size <= capacity and all(
            start + size <= offset or offset + length <= start for offset, length, _ in in_ring
        )

    if size > capacity:
        return -1
    if not in_ring:
        return 0
    if free(end):
        return end
    return 0 if free(0) else -1


def take_one(reader: RingReader, in_ring: deque[Span]) -> None:
    """The reader takes the next body: it passes a skipped end before it, and what it takes is the body put."""
    while in_ring and in_ring[0][2] is None:
        in_ring.popleft()
    if in_ring:
        offset, length, body = in_ring.popleft()
        assert reader.take(offset, length) == body


def place_and_take(writer: RingWriter, reader: RingReader, sizes: list[int], paces: list[int], capacity: int) -> None:
    """Put a body of each size, the reader taking ``paces`` bodies in turn before each put: every body goes exactly
    where :func:`expected_place` says, and comes out whole and in order."""
    in_ring: deque[Span] = deque()
    end = 0
    for index, size in enumerate(sizes):
        for _ in range(paces[index % len(paces)]):  # the reader takes some, at its own pace
            take_one(reader, in_ring)
        body = random.Random(index).randbytes(size)
        expected = expected_place(in_ring, end, size, capacity)
        assert writer.put(body) == expected
        if expected >= 0:
            if expected == 0 and in_ring and end < capacity:  # began again at the start: the end is skipped
                in_ring.append((end, capacity - end, None))
            in_ring.append((expected, size, body))
            end = expected + size
    while in_ring:
        take_one(reader, in_ring)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4096), min_size=1, max_size=80),
    paces=st.lists(st.integers(0, 4), min_size=1, max_size=80),
    capacity=st.sampled_from([MIN_CAPACITY // 64, 4096, 5000]),
)
@example(  # the skipped end stays in use until the reader passes it, though no body is in it
    sizes=[3349, 4095, 2, 4095, 2620, 2, 1678, 1678], paces=[2, 4, 3, 3, 1, 0, 1, 1], capacity=4096
)
def test_each_body_goes_exactly_where_the_design_says(sizes: list[int], paces: list[int], capacity: int) -> None:
    """Checked against a model that knows only the bodies in the ring as intervals (no counters): wrap-around,
    beginning again when empty, the skipped end, bodies of exactly the ring's size and larger."""
    data = memoryview(bytearray(capacity))
    tail = memoryview(bytearray(8)).cast("Q")
    place_and_take(RingWriter(data, tail), RingReader(data, tail), sizes, paces, capacity)


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(1, CAPACITY), min_size=1, max_size=60),
    paces=st.lists(st.integers(0, 8), min_size=1, max_size=60),
)
def test_bodies_come_out_whole_and_in_order_at_any_pace(sizes: list[int], paces: list[int]) -> None:
    place_and_take(*ring_pair(), sizes, paces, CAPACITY)


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


def test_a_reference_out_of_order_is_refused() -> None:
    writer, reader = ring_pair()
    first, second = writer.put(b"a" * 1000), writer.put(b"b" * 1000)
    with pytest.raises(ValueError, match="where the next body is"):
        reader.take(second, 1000)  # the first was never taken
    assert reader.take(first, 1000) == b"a" * 1000
    with pytest.raises(ValueError, match="outside"):
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


@pytest.mark.parametrize(
    ("offset", "size", "error"),
    [
        (0, CAPACITY + 1, "outside"),  # where the next body is, but longer than the ring
        (0, 0, "outside"),
        (4096, 100, "where the next body is"),
    ],
)
def test_a_forged_reference_is_a_protocol_error(offset: int, size: int, error: str) -> None:
    _, reader = ring_pair()
    forged = RING_REFERENCE_HEADER + RING_REFERENCE.pack(offset, size) + struct.pack("!I", 1) + b"\x80"
    with pytest.raises(ProtocolError, match=error):
        FrameDecoder(max_frame_size=4 * CAPACITY, ring=reader).feed(forged)


def test_a_peer_cannot_shrink_the_shared_memory() -> None:
    """A worker's handler could otherwise truncate the file under the frontend's mapping (SIGBUS there)."""
    rings = SharedRings.create(MIN_CAPACITY)
    theirs = os.dup(rings.fd)
    try:
        with pytest.raises(PermissionError):
            os.ftruncate(theirs, 0)
        with pytest.raises(PermissionError):
            os.ftruncate(theirs, PAGE + 4 * MIN_CAPACITY)
    finally:
        os.close(theirs)
        rings.close_fd()


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


def test_held_frames_with_references_keep_their_order_and_count_their_bytes() -> None:
    bodies = [os.urandom(100_000 + index) for index in range(5)]
    small = [[index, 200, "", [], "", b"s" * 5000, None] for index in range(2)]
    with channels() as (worker, frontend):
        for index, body in enumerate(bodies):  # small on the wire: held, to leave together
            worker.send({"kind": "result", "items": [[index, 200, "", [], "", attach(body), None], *small]}, hold=True)
        wire = worker.held_bytes
        assert 5 * 10_000 < wire < 5 * 11_000  # the frames' own bytes: the small items, not the bodies in the ring
        worker.flush()
        raw = b""
        while len(raw) < wire:
            raw += frontend.sock.recv(1 << 20)
        assert len(raw) == wire
        got = FrameDecoder(ring=frontend._decoder._ring).feed(raw)
    assert [message["items"][0][5] for message in got] == bodies


def test_threads_sending_at_once_keep_each_body_with_its_frame() -> None:
    """The worker's handler threads send while its reader thread does: each frame's bodies enter the ring in the
    order the frames reach the socket."""
    threads, per_thread = 4, 40
    with channels() as (worker, frontend):

        def send(thread: int) -> None:
            for number in range(per_thread):
                size = 70_000 + 1000 * thread + number
                worker.send(result(thread * 1000 + number, bytes([thread]) * size), hold=number % 3 == 0)
            worker.flush()

        senders = [threading.Thread(target=send, args=(thread,)) for thread in range(threads)]
        for sender in senders:
            sender.start()
        got = [frontend.recv() for _ in range(threads * per_thread)]
        for sender in senders:
            sender.join(10)
    for message in got:
        assert message is not None
        ident, body = message["items"][0][0], message["items"][0][5]
        thread, number = divmod(ident, 1000)
        assert body == bytes([thread]) * (70_000 + 1000 * thread + number)


# --- the frontend's side of a spawn ------------------------------------------------------------------------------


def test_a_spawn_that_fails_for_want_of_descriptors_closes_its_shared_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of file descriptors, each retry of a worker's start must not leave one more open."""
    import asyncio
    import errno

    from modelserver import worker_process

    def no_descriptors(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    async def spawn_five() -> None:
        monkeypatch.setattr(worker_process.socket, "socketpair", no_descriptors)  # the loop has its own pair
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(5):
            rings = worker_process.shared_rings(MIN_CAPACITY)
            assert rings is not None
            with pytest.raises(OSError, match="Too many open files"):
                await worker_process.spawn_worker("W-test", "cpu", "/tmp", 1 << 20, rings=rings)
            assert rings.fd == -1
            del rings  # the mapping (whose mmap object holds a descriptor of its own) goes with the last reference
        assert len(os.listdir("/proc/self/fd")) == before

    asyncio.run(spawn_five())


def test_a_batch_of_large_bodies_in_one_frame_keeps_each_in_its_place() -> None:
    """A batch's job frame (or its result) holds several bodies: some in the ring, the one that no longer fits in the
    socket, each claimed by its own mark in order."""
    writer, reader = ring_pair(MIN_CAPACITY * 4)
    bodies = [os.urandom(MIN_CAPACITY + index * 1000) for index in range(5)]
    message = {
        "kind": "result",
        "items": [[index, 200, "", [], "", attach(body), None] for index, body in enumerate(bodies)],
    }
    wire = joined(encode_parts(message, ring=writer))
    assert 2 * MIN_CAPACITY < len(wire) < 3 * MIN_CAPACITY  # three bodies fitted; two went in the socket
    (decoded,) = FrameDecoder(ring=reader).feed(wire)
    assert [item[5] for item in decoded["items"]] == bodies
