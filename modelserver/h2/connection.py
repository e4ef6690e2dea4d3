"""One HTTP/2 connection, server side, without I/O: bytes in (:meth:`Connection.receive`), events out to a
:class:`Events` object, bytes to send collected in :attr:`Connection.out` for the caller to write.

It owns the connection's rules (the frames are cut by :mod:`.reader`): SETTINGS and their ACK, PING answers, header
blocks (HEADERS and CONTINUATION, padding, PRIORITY ignored) decoded in order, stream ids and states,
MAX_CONCURRENT_STREAMS, and flow control both ways. A connection error sends GOAWAY with its code and raises
:class:`H2ConnectionError`; a stream error sends RST_STREAM and tells :meth:`Events.on_reset`, and the other streams
go on.

Receiving, the connection gives its window back as DATA arrives (its buffers are bounded by the streams'); a
stream's window is given back by :meth:`Connection.consume`, when the stream's owner has taken the bytes.
Sending, :meth:`Connection.send_data` sends what the peer's windows allow and says how much that was.
"""

from __future__ import annotations

from typing import Any, NoReturn, Protocol

from . import frames as f
from .hpack_io import BlockDecoder, HPACKError
from .limits import MAX_QUEUED_ACKS, ResetRate
from .reader import FrameReader


class H2ConnectionError(Exception):
    """The connection is over: GOAWAY with :attr:`code` was queued in ``out``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _StreamError(Exception):
    def __init__(self, stream_id: int, code: int) -> None:
        self.stream_id = stream_id
        self.code = code


class Events(Protocol):
    """What the connection tells its owner."""

    def on_headers(self, stream_id: int, headers: list[tuple[str, str]], end_stream: bool) -> None: ...

    def on_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool) -> None:
        """DATA's payload, a view valid during the call only."""

    def on_data_run(self, stream_id: int, pieces: list[memoryview]) -> None:
        """The payloads of consecutive DATA frames of one stream, in order, none ending it: as many ``on_data``
        calls would tell, in one call. The views are valid during the call only."""

    def on_reset(self, stream_id: int, code: int) -> None:
        """The stream is gone: reset by the peer, or by this side for a stream error."""

    def on_window(self) -> None:
        """Send windows grew (WINDOW_UPDATE or SETTINGS): senders waiting for them may go on."""

    def on_goaway(self, last_stream_id: int, code: int) -> None: ...


class _Stream:
    __slots__ = ("send_window", "remote_closed", "local_closed", "outstanding", "credit")

    def __init__(self, send_window: int) -> None:
        self.send_window = send_window
        self.remote_closed = False
        self.local_closed = False
        self.outstanding = 0
        """Bytes of DATA received and not given back: at most the window we gave the stream."""
        self.credit = 0
        """Bytes the owner took and that are not given back yet (sent when they add up)."""


class Connection:
    """A server's HTTP/2 connection state (RFC 9113)."""

    def __init__(
        self,
        events: Events,
        *,
        max_concurrent_streams: int = 100,
        stream_window: int = 1 << 20,
        connection_window: int = 16 << 20,
        max_frame_size: int = 1 << 20,
        max_header_list_size: int = 64 << 10,
    ) -> None:
        self.events = events
        self.out: list[bytes | memoryview] = []
        self.out_size = 0
        """Bytes of DATA payloads in :attr:`out` (its owner resets it when it writes them)."""
        self.streams: dict[int, _Stream] = {}
        self.last_stream_id = 0
        """The highest stream id the peer opened: lower ids not in :attr:`streams` are closed."""
        self.max_concurrent = max_concurrent_streams
        self.recv_stream_window = stream_window
        self.max_frame = max_frame_size
        self.max_header_block = max_header_list_size
        self.decoder = BlockDecoder(max_header_list_size)
        self._recv_window_full = max(connection_window, f.DEFAULT_WINDOW)
        """The window the client has: a connection's starts at 65,535 and only grows (RFC 9113 section 6.9.2)."""
        self._recv_quarter = connection_window >> 2
        """The connection's window is given back once this much of it is used."""
        self._recv_unacked = 0
        self.send_window = f.DEFAULT_WINDOW
        self.peer_initial_window = f.DEFAULT_WINDOW
        self.peer_max_frame = f.DEFAULT_MAX_FRAME
        self.reader = FrameReader(max_frame_size, self._dispatch, self._data, self._fail, self._data_run)
        self._block: bytearray | None = None
        """A header block whose END_HEADERS has not come: its stream, flags and bytes so far."""
        self._block_stream = 0
        self._block_end_stream = False
        self.goaway_sent = False
        self.closed = False
        self.acks_queued = 0
        """Frames the client's own frames made this side queue (PING and SETTINGS answers, resets of streams it
        erred on), in :attr:`out` or in a write the client has not read (:meth:`acks_read`)."""
        self._resets = ResetRate()
        self.out.append(
            f.settings(
                {
                    f.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
                    f.INITIAL_WINDOW_SIZE: stream_window,
                    f.MAX_FRAME_SIZE: max_frame_size,
                    f.MAX_HEADER_LIST_SIZE: max_header_list_size,
                    f.ENABLE_PUSH: 0,
                }
            )
        )
        if connection_window > f.DEFAULT_WINDOW:
            self.out.append(f.window_update(0, connection_window - f.DEFAULT_WINDOW))

    # -- receiving -----------------------------------------------------------------------------------

    @property
    def preface_received(self) -> bool:
        """Whether the client's connection preface has come (before it, nothing is an HTTP/2 connection yet)."""
        return self.reader.preface_seen

    def receive(self, data: bytes | memoryview) -> None:
        """Parse ``data`` (any split of the stream) and tell the events of each whole frame (:mod:`.reader`: a
        DATA frame's payload is a view of ``data``, valid during the call: the owner copies what it keeps)."""
        if not self.closed:
            self.reader.feed(data)

    def _dispatch(self, kind: int, flags: int, stream_id: int, payload: memoryview) -> None:
        """Every frame but DATA (:meth:`_data`)."""
        try:
            self._frame(kind, flags, stream_id, payload.tobytes())
        except _StreamError as err:
            self._reset(err.stream_id, err.code)

    def _fail(self, code: int, message: str) -> NoReturn:
        """A connection error: GOAWAY, and nothing more is read."""
        self.out.append(f.goaway(self.last_stream_id, code, message.encode()[:200]))
        self.goaway_sent = True
        self.closed = True
        raise H2ConnectionError(code, message)

    def _reset(self, stream_id: int, code: int) -> None:
        """A stream error the client caused: its RST_STREAM counts with the answers it must read back."""
        self._queue_ack(f.rst_stream(stream_id, code))
        if self.streams.pop(stream_id, None) is not None:
            self.events.on_reset(stream_id, code)

    def _frame(self, kind: int, flags: int, stream_id: int, payload: Any) -> None:
        if self._block is not None and kind != f.CONTINUATION:
            self._block_interrupted()
        if kind == f.HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == f.CONTINUATION:
            if self._block is None or stream_id != self._block_stream:
                self._fail(f.PROTOCOL_ERROR, "CONTINUATION without a header block to continue")
            self._add_to_block(payload, flags)
        elif kind == f.SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == f.WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == f.PING:
            if stream_id:
                self._fail(f.PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                self._fail(f.FRAME_SIZE_ERROR, "PING of a length other than 8")
            if not flags & f.ACK:
                self._queue_ack(f.ping_ack(payload))
        elif kind == f.RST_STREAM:
            if len(payload) != 4:
                self._fail(f.FRAME_SIZE_ERROR, "RST_STREAM of a length other than 4")
            self._check_not_idle(stream_id, "RST_STREAM")
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                self._count_reset()
                self.events.on_reset(stream_id, f.u32(payload))
        elif kind == f.PRIORITY:
            if not stream_id:
                self._fail(f.PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                raise _StreamError(stream_id, f.FRAME_SIZE_ERROR)
        elif kind == f.GOAWAY:
            if stream_id or len(payload) < 8:
                self._fail(f.PROTOCOL_ERROR, "a malformed GOAWAY")
            self.events.on_goaway(*f.goaway_fields(payload))
        elif kind == f.PUSH_PROMISE:
            self._fail(f.PROTOCOL_ERROR, "a client cannot push")
        # Frames of unknown types are ignored (RFC 9113 section 4.1).

    def _queue_ack(self, frame: bytes) -> None:
        self.acks_queued += 1
        if self.acks_queued > MAX_QUEUED_ACKS:
            self._fail(
                f.ENHANCE_YOUR_CALM, f"more than {MAX_QUEUED_ACKS} PING, SETTINGS or RST_STREAM answers not read back"
            )
        self.out.append(frame)

    def acks_read(self) -> None:
        """The owner wrote :attr:`out` to a socket that takes it (the client reads): the answers count no more."""
        self.acks_queued = 0

    def refund_reset(self) -> None:
        """The owner knows the last reset for an ordinary cancel (a call's deadline passed): it takes no token."""
        self._resets.refund()

    def _count_reset(self) -> None:
        if not self._resets.take():
            self._fail(f.ENHANCE_YOUR_CALM, "streams reset by the client faster than it may open them")

    def _check_not_idle(self, stream_id: int, what: str) -> None:
        if stream_id == 0:
            self._fail(f.PROTOCOL_ERROR, f"{what} on stream 0")
        if stream_id > self.last_stream_id:
            self._fail(f.PROTOCOL_ERROR, f"{what} on idle stream {stream_id}")

    def _block_interrupted(self) -> NoReturn:
        self._fail(f.PROTOCOL_ERROR, "a header block was interrupted by another frame")

    def _data(self, flags: int, stream_id: int, payload: memoryview) -> None:
        """DATA, the common frame (64 of them in a 1 MiB message): on an open stream, without flags, in a few steps;
        everything else in :meth:`_data_in_general`."""
        stream = self.streams.get(stream_id)
        if flags or stream is None or stream.remote_closed or self._block is not None:
            self._data_in_general(flags, stream_id, payload, stream)
            return
        if self._took_window(stream_id, stream, len(payload)):
            self.events.on_data(stream_id, payload, False)

    def _data_run(self, stream_id: int, pieces: list[memoryview]) -> None:
        """Consecutive DATA frames without flags on one stream (the reader's run): the checks of :meth:`_data` once
        for them all. A run that would pass a window is an error just as its first frame past the window is; the
        frames before that one go nowhere then, as the stream (or connection) ends."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed or self._block is not None:
            for piece in pieces:
                self._data_in_general(0, stream_id, piece, stream)
                stream = self.streams.get(stream_id)
            return
        if self._took_window(stream_id, stream, sum(map(len, pieces))):
            self.events.on_data_run(stream_id, pieces)

    def _took_window(self, stream_id: int, stream: _Stream, size: int) -> bool:
        """``size`` bytes of DATA on an open stream counted against both windows (the connection's is given back
        once a quarter of it is used); False when they pass the stream's window, and the stream was reset."""
        unacked = self._recv_unacked + size
        if unacked >= self._recv_quarter:
            unacked = self._give_back_window(unacked)
        self._recv_unacked = unacked
        outstanding = stream.outstanding + size
        if outstanding > self.recv_stream_window:
            self._reset(stream_id, f.FLOW_CONTROL_ERROR)
            return False
        stream.outstanding = outstanding
        return True

    def _give_back_window(self, unacked: int) -> int:
        """The connection's window used by ``unacked`` bytes: given back (WINDOW_UPDATE) once a quarter of it is
        used; more than all of it is the peer's error. What stays unacknowledged."""
        if unacked > self._recv_window_full:
            self._fail(f.FLOW_CONTROL_ERROR, "DATA beyond the connection's window")
        if unacked >= self._recv_quarter:
            self.out.append(f.window_update(0, unacked))
            return 0
        return unacked

    def _data_in_general(self, flags: int, stream_id: int, payload: memoryview, stream: _Stream | None) -> None:
        if self._block is not None:
            self._block_interrupted()
        if stream is None and (stream_id == 0 or stream_id > self.last_stream_id):
            self._check_not_idle(stream_id, "DATA")
        size = len(payload)
        self._recv_unacked = self._give_back_window(self._recv_unacked + size)
        if flags & f.PADDED:
            data = f.unpad(payload, flags)
            if data is None:
                self._fail(f.PROTOCOL_ERROR, "padding longer than the frame")
        else:
            data = payload
        if stream is None:  # closed here (answered, or reset): DATA the peer sent before it knew is dropped
            return
        if stream.remote_closed:
            self._reset(stream_id, f.STREAM_CLOSED)
            return
        stream.outstanding += size
        if stream.outstanding > self.recv_stream_window:
            self._reset(stream_id, f.FLOW_CONTROL_ERROR)
            return
        end = flags & f.END_STREAM
        if end:
            stream.remote_closed = True
        elif size > len(data):  # padding is the owner's to take: given back at once
            self.consume(stream_id, size - len(data))
        self.events.on_data(stream_id, data, bool(end))
        if end:
            self._forget_if_done(stream_id, stream)

    def consume(self, stream_id: int, size: int) -> None:
        """The owner took ``size`` bytes of the stream's DATA: give them back to the peer (WINDOW_UPDATE) once
        they add up to a quarter of the stream's window. Nothing once the peer has ended the stream."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed or size <= 0:
            return
        stream.credit += size
        if stream.credit >= self.recv_stream_window >> 2:
            self.out.append(f.window_update(stream_id, stream.credit))
            stream.outstanding -= stream.credit
            stream.credit = 0

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or not stream_id & 1:
            self._fail(f.PROTOCOL_ERROR, f"HEADERS on stream {stream_id}")
        data = f.unpad(payload, flags)
        if data is None:
            self._fail(f.PROTOCOL_ERROR, "padding longer than the frame")
        if flags & f.PRIORITY_FLAG:
            if len(data) < 5:
                self._fail(f.FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            data = data[5:]
        self._block = bytearray()
        self._block_stream = stream_id
        self._block_end_stream = bool(flags & f.END_STREAM)
        self._add_to_block(data, flags)

    def _add_to_block(self, data: bytes | memoryview, flags: int) -> None:
        block = self._block
        assert block is not None
        block += data
        if len(block) > self.max_header_block:
            self._fail(f.ENHANCE_YOUR_CALM, "a header block larger than the maximum")
        if flags & f.END_HEADERS:
            self._block = None
            self._header_block(self._block_stream, bytes(block), self._block_end_stream)

    def _header_block(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        try:  # decoded always, in order: the decoder's table must follow the peer's encoder
            headers = self.decoder.decode(block)
        except HPACKError as err:
            self._fail(f.COMPRESSION_ERROR, f"a header block that cannot be decoded: {err}")
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id <= self.last_stream_id:  # trailers of a stream closed here before they came: dropped
                return
            self.last_stream_id = stream_id
            if self.goaway_sent:
                raise _StreamError(stream_id, f.REFUSED_STREAM)
            if len(self.streams) >= self.max_concurrent:
                raise _StreamError(stream_id, f.REFUSED_STREAM)
            stream = self.streams[stream_id] = _Stream(self.peer_initial_window)
        elif stream.remote_closed:
            raise _StreamError(stream_id, f.STREAM_CLOSED)
        elif not end_stream:  # trailers must end the stream
            raise _StreamError(stream_id, f.PROTOCOL_ERROR)
        if end_stream:
            stream.remote_closed = True
        self.events.on_headers(stream_id, headers, end_stream)
        self._forget_if_done(stream_id, stream)

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            self._fail(f.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & f.ACK:
            if payload:
                self._fail(f.FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            self._fail(f.FRAME_SIZE_ERROR, "a SETTINGS payload not a multiple of 6")
        grew = False
        for key, value in f.parse_settings(payload):
            if key == f.INITIAL_WINDOW_SIZE:
                if value > f.MAX_WINDOW:
                    self._fail(f.FLOW_CONTROL_ERROR, "an initial window larger than 2^31-1")
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > f.MAX_WINDOW:
                        self._fail(f.FLOW_CONTROL_ERROR, "a stream window beyond 2^31-1")
                grew = grew or delta > 0
            elif key == f.MAX_FRAME_SIZE:
                if not f.DEFAULT_MAX_FRAME <= value <= f.MAX_FRAME_LIMIT:
                    self._fail(f.PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value} out of range")
                self.peer_max_frame = value
            elif key == f.ENABLE_PUSH and value > 1:
                self._fail(f.PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH other than 0 or 1")
        self._queue_ack(f.SETTINGS_ACK)
        if grew:
            self.events.on_window()

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            self._fail(f.FRAME_SIZE_ERROR, "WINDOW_UPDATE of a length other than 4")
        increment = f.u32(payload) & f.MAX_WINDOW
        if stream_id == 0:
            if increment == 0:
                self._fail(f.PROTOCOL_ERROR, "a WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > f.MAX_WINDOW:
                self._fail(f.FLOW_CONTROL_ERROR, "the connection's window beyond 2^31-1")
        else:
            self._check_not_idle(stream_id, "WINDOW_UPDATE")
            stream = self.streams.get(stream_id)
            if stream is None:
                return  # a stream closed here: the peer's update crossed our end
            if increment == 0:
                raise _StreamError(stream_id, f.PROTOCOL_ERROR)
            stream.send_window += increment
            if stream.send_window > f.MAX_WINDOW:
                raise _StreamError(stream_id, f.FLOW_CONTROL_ERROR)
        self.events.on_window()

    # -- sending -------------------------------------------------------------------------------------

    def send_headers(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        """A header block (the answer's headers, or its trailers with ``end_stream``), split into CONTINUATION
        frames when longer than the peer's maximum frame."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed:
            return
        limit = self.peer_max_frame
        first, rest = block[:limit], block[limit:]
        flags = (f.END_STREAM if end_stream else 0) | (0 if rest else f.END_HEADERS)
        self.out.append(f.frame(f.HEADERS, flags, stream_id, first))
        while rest:
            piece, rest = rest[:limit], rest[limit:]
            self.out.append(f.frame(f.CONTINUATION, 0 if rest else f.END_HEADERS, stream_id, piece))
        if end_stream:
            self._end_local(stream_id, stream)

    def send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool = False) -> int:
        """Send as much of ``data`` as the windows allow (END_STREAM with its last byte when ``end_stream``): the
        count of bytes sent. -1 when the stream is gone (reset by the peer). The frames' payloads are slices of
        ``data``: a memoryview's are views, and must not change until written."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed:
            return -1
        total = len(data)
        sent = 0
        limit = self.peer_max_frame
        full = min(self.send_window, stream.send_window, total - (1 if end_stream else 0)) // limit
        if full > 1:  # the frames of the peer's maximum size that fit: one header for all, the payloads are views
            sent = full * limit
            frames: list[bytes | memoryview] = [f.HEADER.pack((limit << 8) | f.DATA, 0, stream_id)] * (2 * full)
            frames[1::2] = [data[start : start + limit] for start in range(0, sent, limit)]
            self.out += frames
            self.send_window -= sent
            self.out_size += sent
            stream.send_window -= sent
        while True:
            room = min(self.send_window, stream.send_window, limit, total - sent)
            if room <= 0 and not (sent == total and end_stream):
                break
            last = sent + room == total
            flags = f.END_STREAM if last and end_stream else 0
            self.out.append(f.HEADER.pack((room << 8) | f.DATA, flags, stream_id))
            self.out.append(data[sent : sent + room])  # a view of a memoryview: not copied
            self.send_window -= room
            self.out_size += room
            stream.send_window -= room
            sent += room
            if last:
                if end_stream:
                    self._end_local(stream_id, stream)
                break
        return sent

    def reset(self, stream_id: int, code: int) -> None:
        """This side ends the stream (e.g. CANCEL); the owner is not told."""
        if self.streams.pop(stream_id, None) is not None:
            self.out.append(f.rst_stream(stream_id, code))

    def _end_local(self, stream_id: int, stream: _Stream) -> None:
        stream.local_closed = True
        if not stream.remote_closed:  # the answer is complete: what the client still sends is not wanted
            self.out.append(f.rst_stream(stream_id, f.NO_ERROR))
            stream.remote_closed = True
        self._forget_if_done(stream_id, stream)

    def _forget_if_done(self, stream_id: int, stream: _Stream) -> None:
        if stream.local_closed and stream.remote_closed:
            self.streams.pop(stream_id, None)

    def goaway(self, code: int = f.NO_ERROR) -> None:
        """No new streams (drain): the ones open go on."""
        if not self.goaway_sent:
            self.goaway_sent = True
            self.out.append(f.goaway(self.last_stream_id, code))
