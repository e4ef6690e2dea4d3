"""The client's byte stream cut into frames, without copying them: first the connection preface, then each frame's
header and payload, in any split of the stream across reads.

A frame that lies whole in one read is handed on as a view of that read; only a frame split across two reads is
gathered in a buffer of its own. The reader checks what needs no connection state: the preface, and a frame's
length against the maximum this side announced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from . import frames as f

OnFrame = Callable[[int, int, int, memoryview], None]
"""(type, flags, stream id, payload): the payload is valid during the call only."""
OnData = Callable[[int, int, memoryview], None]
"""A DATA frame's (flags, stream id, payload): the common frame has a callback of its own."""
OnDataRun = Callable[[int, list[memoryview]], None]
"""(stream id, payloads) of consecutive DATA frames without flags on one stream, whole in one read: a large message
arrives as many 16 KiB frames, and each would otherwise cost its own trip through the connection and the call."""
OnError = Callable[[int, str], NoReturn]
"""(HTTP/2 error code, message): the stream cannot be read on; it must raise."""


class FrameReader:
    def __init__(
        self, max_frame: int, on_frame: OnFrame, on_data: OnData, on_error: OnError, on_data_run: OnDataRun
    ) -> None:
        self.max_frame = max_frame
        self._on_frame = on_frame
        self._on_data = on_data
        self._on_data_run = on_data_run
        self._on_error = on_error
        self._buffer = bytearray()
        """The start of a frame (or of the preface) whose rest has not been read yet."""
        self.preface_seen = False

    def feed(self, data: bytes | memoryview) -> None:
        if not self.preface_seen:
            data = self._preface(data)
            if not data:
                return
        view = memoryview(data)
        offset, size = 0, len(view)
        if self._buffer:
            offset = self._complete_split_frame(view)
            if offset < 0:
                return
        unpack = f.HEADER.unpack_from
        on_data = self._on_data
        max_word = (self.max_frame << 8) | 0xFF  # a header word above it is a frame longer than the maximum
        head = f.HEADER_SIZE
        last_head = size - head  # where the last whole header of this read may start
        run: list[memoryview] = []  # flag-less DATA of one stream, not handed on yet
        run_stream = -1
        while offset <= last_head:  # the loop of every frame (64 a MiB of DATA): kept to few operations
            word, flags, stream_id = unpack(view, offset)
            start = offset + head
            end = start + (word >> 8)
            if word > max_word:
                if run:  # what came before the bad frame is handed on first, as frame by frame
                    self._hand_on(run_stream, run)
                self._too_long(word >> 8)
            if end > size:
                break
            if flags or word & 0xFF:
                if run:  # frames are handed on in their order
                    self._hand_on(run_stream, run)
                    run = []
                    run_stream = -1
                if word & 0xFF == f.DATA:
                    on_data(flags, stream_id & f.MAX_WINDOW, view[start:end])
                else:
                    self._on_frame(word & 0xFF, flags, stream_id & f.MAX_WINDOW, view[start:end])
            else:  # DATA (type 0) without flags: may join a run
                if stream_id != run_stream:
                    if run:
                        self._hand_on(run_stream, run)
                        run = []
                    run_stream = stream_id
                run.append(view[start:end])
            offset = end
        if run:
            self._hand_on(run_stream, run)
        if offset < size:
            self._buffer += view[offset:]

    def _hand_on(self, stream_id: int, run: list[memoryview]) -> None:
        """A run as read: its stream id keeps the reserved bit, which is masked here (once per run)."""
        if len(run) == 1:
            self._on_data(0, stream_id & f.MAX_WINDOW, run[0])
        else:
            self._on_data_run(stream_id & f.MAX_WINDOW, run)

    def _too_long(self, length: int) -> NoReturn:
        self._on_error(f.FRAME_SIZE_ERROR, f"a frame of {length} bytes (the maximum is {self.max_frame})")

    def _preface(self, data: bytes | memoryview) -> bytes:
        """What follows the client's preface in ``data`` (nothing while the preface is incomplete)."""
        buffer = self._buffer
        buffer += data
        if len(buffer) < len(f.PREFACE):
            if not f.PREFACE.startswith(bytes(buffer)):
                self._on_error(f.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            return b""
        if not buffer.startswith(f.PREFACE):
            self._on_error(f.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
        self.preface_seen = True
        rest = bytes(buffer[len(f.PREFACE) :])
        buffer.clear()
        return rest

    def _complete_split_frame(self, view: memoryview) -> int:
        """Add to the buffered start of a frame what it lacks from ``view``; once whole, hand it on. Returns where
        ``view``'s own frames start, or -1 when the frame is still incomplete (all of ``view`` taken)."""
        buffer = self._buffer
        taken = 0
        if len(buffer) < f.HEADER_SIZE:
            taken = min(f.HEADER_SIZE - len(buffer), len(view))
            buffer += view[:taken]
            if len(buffer) < f.HEADER_SIZE:
                return -1
        word, flags, stream_id = f.HEADER.unpack_from(buffer)
        length = word >> 8
        if length > self.max_frame:
            self._too_long(length)
        more = min(f.HEADER_SIZE + length - len(buffer), len(view) - taken)
        buffer += view[taken : taken + more]
        taken += more
        if len(buffer) < f.HEADER_SIZE + length:
            return -1
        self._buffer = bytearray()  # the frame's own now: handed on as a view, not copied to bytes
        if word & 0xFF == f.DATA:
            self._on_data(flags, stream_id & f.MAX_WINDOW, memoryview(buffer)[f.HEADER_SIZE :])
        else:
            self._on_frame(word & 0xFF, flags, stream_id & f.MAX_WINDOW, memoryview(buffer)[f.HEADER_SIZE :])
        return taken
