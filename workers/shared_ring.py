"""Shared memory between the frontend and one worker: large bodies cross in a copy on each side instead of through
the socket (docs/protocol.md, "Shared memory").

Through the socket, a 100 KiB body costs a send into the kernel's buffers and a receive out of them on each side of
the hop, with the socket's own bookkeeping per piece (``python -m benchmarks.transfer_probe``: 36.5 us a round trip
against 9 us through a mapping). Here the sender copies the body into a ring in a shared mapping and sends, in its
place on the socket, a 12-byte reference (offset and length); the receiver copies it out into a ``bytearray`` of its
own, exactly what the socket would have given it.

One mapping (a ``memfd``, passed to the worker at its start) holds two rings: one the frontend writes and the worker
reads, one the other way. Each ring has one writer and one reader, and the reader takes the bodies in the order they
were written, because it meets their references in the order the frames were sent. So the ring's only shared state
is the reader's count of bytes taken (``tail``, an aligned 64-bit word the reader alone writes); the writer keeps its
own count of bytes given out (``head``). A writer that finds no room sends the body through the socket as before, so
a full ring slows nothing down but itself and never blocks.

Placement: a body goes after the last one, or at the start of the ring when it would not fit before the end (the
bytes skipped count as taken once the reader passes them) or when the ring is empty. Beginning again whenever the
ring empties keeps a light load on the same few pages; a sustained load of large bodies touches the whole ring, so
the memory it keeps resident is at most the ring's size.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from typing import Final

PAGE: Final = 4096
"""The mapping begins with one page for the two rings' ``tail`` words (each on its own cache line); data follows."""
_TAIL_OFFSETS: Final = (0, 64)
MIN_CAPACITY: Final = 64 * 1024
MAX_CAPACITY: Final = 1 << 31
"""A reference's offset and length are 32-bit: no ring is larger."""


class RingWriter:
    """The sending side of one ring: :meth:`put` copies a body in and says where it went."""

    __slots__ = ("_data", "_floor", "_tail", "capacity", "head")

    def __init__(self, data: memoryview, tail: memoryview) -> None:
        self._data = data
        self._tail = tail  # the reader's count of bytes taken, one native uint64
        self.capacity = len(data)
        self.head = 0
        """Bytes given out so far, skipped ones included (only this side knows it)."""
        self._floor = 0
        """Where the ring last began again while empty: the reader has taken everything before it (it skips the
        rest of that lap when it meets the next body), so no byte before it is in use."""

    def put(self, body: bytes | bytearray | memoryview) -> int:
        """Copy ``body`` into the ring; its offset there, or -1 when there is no room for it now."""
        size = len(body)
        capacity = self.capacity
        head = self.head
        tail = self._tail[0]
        used = head - max(tail, self._floor)
        if size > capacity or not 0 <= used <= capacity:  # too large, or a reader's count no writer gave
            return -1
        position = head % capacity
        if used == 0:
            start = 0  # empty: begin again at the start, which keeps a light load on the same few pages
            if position != 0:
                head += capacity - position
                self._floor = head
        elif position + size <= capacity:
            if used + size > capacity:
                return -1
            start = position
        elif used + capacity - position + size <= capacity:
            start = 0  # no room before the end: the rest of it is skipped, and in use until the reader passes it
            head += capacity - position
        else:
            return -1
        self._data[start : start + size] = body
        self.head = head + size
        return start

    def save(self) -> tuple[int, int]:
        """Where the writer is, for :meth:`restore`."""
        return self.head, self._floor

    def restore(self, saved: tuple[int, int]) -> None:
        """Take back what was put since :meth:`save` (a frame that will not be sent after all: the reader never
        meets those references)."""
        self.head, self._floor = saved


class RingReader:
    """The receiving side of one ring: :meth:`take` copies a body out and frees its place."""

    __slots__ = ("_data", "_tail", "capacity", "taken")

    def __init__(self, data: memoryview, tail: memoryview) -> None:
        self._data = data
        self._tail = tail
        self.capacity = len(data)
        self.taken = 0

    def take(self, offset: int, size: int) -> bytearray:
        """The body the next reference names, as a ``bytearray`` of its own; ``ValueError`` when the reference is
        not where the writer must have put the next body (a broken peer: the frame decoder makes it a protocol
        error)."""
        capacity = self.capacity
        taken = self.taken
        position = taken % capacity
        if offset != position:
            if offset != 0:
                raise ValueError(f"shared memory reference at {offset} where the next body is at {position}")
            taken += capacity - position  # the writer began again at the start
        if size <= 0 or offset + size > capacity:
            raise ValueError(f"shared memory reference of {size} bytes at {offset} outside a {capacity}-byte ring")
        body = bytearray(self._data[offset : offset + size])
        self.taken = taken + size
        self._tail[0] = self.taken
        return body


class SharedRings:
    """The mapping of one frontend-worker pair: a ring of ``capacity`` bytes each way, whose ends each side takes
    with :meth:`frontend_ends` or :meth:`worker_ends`. The frontend makes it (:meth:`create`) and passes :attr:`fd`
    to the worker, which maps the same memory (:meth:`attach`); each then closes its ``fd``. The mapping lasts as
    long as the rings' ends are referenced (and holds a descriptor of its own meanwhile: Python's ``mmap`` keeps
    one)."""

    def __init__(self, fd: int, capacity: int) -> None:
        if not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
            raise ValueError(f"a shared memory ring holds {MIN_CAPACITY} to {MAX_CAPACITY} bytes, not {capacity}")
        self.fd = fd
        self.capacity = capacity
        self._map = mmap.mmap(fd, PAGE + 2 * capacity)
        whole = memoryview(self._map)
        self._tails = [whole[at : at + 8].cast("Q") for at in _TAIL_OFFSETS]
        self._data = [whole[PAGE : PAGE + capacity], whole[PAGE + capacity : PAGE + 2 * capacity]]

    @classmethod
    def create(cls, capacity: int) -> SharedRings:
        """A new mapping (anonymous shared memory; its pages are taken only as bodies touch them).

        Its size is sealed: a worker (whose handler code may do anything) cannot shrink the memory under the
        frontend's mapping, which would kill the frontend with SIGBUS at its next copy."""
        fd = os.memfd_create("modelserver-worker-rings", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, PAGE + 2 * capacity)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            return cls(fd, capacity)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def attach(cls, fd: int, capacity: int) -> SharedRings:
        """The worker's side: map the memory the frontend passed as ``fd``, then close ``fd``."""
        try:
            size = os.fstat(fd).st_size
            if size != PAGE + 2 * capacity:
                raise ValueError(f"shared memory of {size} bytes, not {PAGE + 2 * capacity} for rings of {capacity}")
            rings = cls(fd, capacity)
        finally:
            os.close(fd)
        rings.fd = -1
        return rings

    def close_fd(self) -> None:
        """The mapping stays; the descriptor is no longer needed once the worker has its copy."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def frontend_ends(self) -> tuple[RingWriter, RingReader]:
        return RingWriter(self._data[0], self._tails[0]), RingReader(self._data[1], self._tails[1])

    def worker_ends(self) -> tuple[RingWriter, RingReader]:
        return RingWriter(self._data[1], self._tails[1]), RingReader(self._data[0], self._tails[0])


def supported() -> bool:
    """Whether this system has anonymous shared memory files that can be sealed (Linux)."""
    return hasattr(os, "memfd_create") and hasattr(fcntl, "F_ADD_SEALS")
