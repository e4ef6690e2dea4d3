"""workers.buffers: a bytearray of the asked size, writable and resizable like any other, zeroed or not."""

from __future__ import annotations

import pytest

from workers.buffers import UNINITIALIZED_MIN, unfilled_bytearray


@pytest.mark.parametrize("size", [0, 1, UNINITIALIZED_MIN - 1, UNINITIALIZED_MIN, 3 * UNINITIALIZED_MIN + 7])
def test_a_bytearray_of_the_size_that_takes_every_byte(size: int) -> None:
    buffer = unfilled_bytearray(size)
    assert type(buffer) is bytearray and len(buffer) == size
    view = memoryview(buffer)
    view[:] = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    view.release()
    assert buffer[:256] == bytes(range(min(size, 256)))
    assert buffer[-1:] == (bytes([(size - 1) % 256]) if size else b"")
    buffer += b"more"  # an ordinary bytearray: it grows and shrinks
    assert len(buffer) == size + 4 and buffer.endswith(b"more")
    del buffer[:2]
    assert len(buffer) == size + 2
