"""The native HTTP/2 connection without I/O (modelserver.h2.connection): any split of the client's bytes gives the
same events and the same answer bytes; bad input ends the connection with GOAWAY and its error code, or resets one
stream while the others go on; flow control both ways."""

from __future__ import annotations

import struct

import pytest
from hpack import Encoder
from hypothesis import given, settings
from hypothesis import strategies as st

from modelserver.h2 import frames as f
from modelserver.h2.connection import Connection, H2ConnectionError

CALL = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/inference.GRPCInferenceService/ModelInfer"),
    (":authority", "localhost"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
    ("user-agent", "grpc-python/1.0 \u00e9"),
]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_headers(self, stream_id: int, headers: list[tuple[str, str]], end_stream: bool) -> None:
        self.events.append(("headers", stream_id, tuple(headers), end_stream))

    def on_data(self, stream_id: int, data: memoryview, end_stream: bool) -> None:
        self.events.append(("data", stream_id, bytes(data), end_stream))

    def on_data_run(self, stream_id: int, pieces: list[memoryview]) -> None:
        self.events.extend(("data", stream_id, bytes(piece), False) for piece in pieces)

    def on_reset(self, stream_id: int, code: int) -> None:
        self.events.append(("reset", stream_id, code))

    def on_window(self) -> None:
        self.events.append(("window",))

    def on_goaway(self, last_stream_id: int, code: int) -> None:
        self.events.append(("goaway", last_stream_id, code))


def client_start(settings_values: dict[int, int] | None = None) -> bytes:
    return f.PREFACE + f.settings(settings_values or {})


def headers_frame(encoder: Encoder, stream_id: int, end_stream: bool = False, headers: list | None = None) -> bytes:
    block = encoder.encode(headers or CALL, huffman=True)
    flags = f.END_HEADERS | (f.END_STREAM if end_stream else 0)
    return f.frame(f.HEADERS, flags, stream_id, block)


def frames_of(out: list[bytes]) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each frame the server sent."""
    data = b"".join(out)
    found = []
    while data:
        word, flags, stream_id = f.HEADER.unpack_from(data)
        length = word >> 8
        found.append((word & 0xFF, flags, stream_id, data[9 : 9 + length]))
        data = data[9 + length :]
    return found


def connected() -> tuple[Connection, Recorder, Encoder]:
    recorder = Recorder()
    conn = Connection(recorder, max_concurrent_streams=2, stream_window=1000, connection_window=100_000)
    conn.receive(client_start())
    conn.out.clear()
    return conn, recorder, Encoder()


def goaway_code(conn: Connection) -> int:
    kinds = [(kind, payload) for kind, _, _, payload in frames_of(conn.out) if kind == f.GOAWAY]
    assert kinds, "no GOAWAY sent"
    return f.goaway_fields(kinds[-1][1])[1]


def conversation() -> bytes:
    """Two calls, one with a padded DATA and a header block in CONTINUATION frames, PING, PRIORITY and an
    unknown frame type between them."""
    encoder = Encoder()
    block = encoder.encode(CALL, huffman=True)
    return b"".join(
        [
            client_start({f.INITIAL_WINDOW_SIZE: 1 << 20}),
            f.frame(f.HEADERS, f.PRIORITY_FLAG, 1, b"\0\0\0\0\x10" + block[:5]),
            f.frame(f.CONTINUATION, f.END_HEADERS, 1, block[5:]),
            f.frame(f.DATA, 0, 1, b"\0\0\0\0\x03abc"),
            f.frame(f.PING, 0, 0, b"12345678"),
            f.frame(f.PRIORITY, 0, 3, b"\0\0\0\1\x10"),
            f.frame(0x42, 0, 0, b"ignored"),
            headers_frame(encoder, 3),
            f.frame(f.DATA, f.PADDED | f.END_STREAM, 3, b"\x04" + b"\0\0\0\0\x01z" + b"\0" * 4),
            f.frame(f.DATA, f.END_STREAM, 1, b""),
            f.frame(f.WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000)),
        ]
    )


def run(chunks: list[bytes]) -> tuple[list, bytes]:
    recorder = Recorder()
    conn = Connection(recorder)
    for chunk in chunks:
        conn.receive(chunk)
    return recorder.events, b"".join(conn.out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(conversation())), max_size=30))
def test_any_split_of_the_bytes_gives_the_same_events(cuts: list[int]) -> None:
    data = conversation()
    points = sorted({0, len(data), *cuts})
    whole_events, whole_out = run([data])
    events, out = run([data[a:b] for a, b in zip(points, points[1:], strict=False)])
    assert events == whole_events and out == whole_out


def runs_conversation() -> bytes:
    """Two calls whose messages come in several DATA frames each, runs of one stream broken by the other stream, a
    PING and the frames that end each stream."""
    encoder = Encoder()
    message_1 = b"\0\0\0\0\x20" + bytes(range(32))
    message_3 = b"\0\0\0\0\x10" + b"x" * 16
    return b"".join(
        [
            client_start({f.INITIAL_WINDOW_SIZE: 1 << 20}),
            headers_frame(encoder, 1),
            headers_frame(encoder, 3),
            *(f.frame(f.DATA, 0, 1, message_1[i : i + 5]) for i in range(0, 25, 5)),
            f.frame(f.DATA, 0, 3, message_3[:7]),
            f.frame(f.DATA, 0, 3, message_3[7:14]),
            f.frame(f.PING, 0, 0, b"12345678"),
            f.frame(f.DATA, 0, 3, message_3[14:]),
            *(f.frame(f.DATA, 0, 1, message_1[i : i + 5]) for i in range(25, len(message_1), 5)),
            f.frame(f.DATA, f.END_STREAM, 1, b""),
            f.frame(f.DATA, f.END_STREAM, 3, b""),
        ]
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(runs_conversation())), max_size=30))
def test_runs_of_data_frames_give_the_events_of_their_frames_in_order(cuts: list[int]) -> None:
    """However the reads cut them, consecutive DATA frames of a stream reach the owner as each frame's bytes, in
    the order sent; only the window updates may be gathered differently."""
    data = runs_conversation()
    points = sorted({0, len(data), *cuts})
    events, out = run([data[a:b] for a, b in zip(points, points[1:], strict=False)])
    frame_events = [event for event in events if event[0] == "data"]
    expected = [
        ("data", stream_id, payload, bool(flags & f.END_STREAM))
        for kind, flags, stream_id, payload in frames_of([data[len(f.PREFACE) :]])
        if kind == f.DATA
    ]
    assert frame_events == expected
    assert [frame for frame in frames_of([out]) if frame[0] != f.WINDOW_UPDATE] == [
        frame for frame in frames_of([run([data])[1]]) if frame[0] != f.WINDOW_UPDATE
    ]


def test_a_run_of_data_frames_past_the_stream_window_resets_the_stream() -> None:
    conn, recorder, encoder = connected()
    conn.receive(headers_frame(encoder, 1) + headers_frame(encoder, 3))
    conn.receive(b"".join(f.frame(f.DATA, 0, 1, b"x" * 400) for _ in range(3)))  # 1200 in one read: window 1000
    assert ("reset", 1, f.FLOW_CONTROL_ERROR) in recorder.events
    assert (f.RST_STREAM, 0, 1, struct.pack(">I", f.FLOW_CONTROL_ERROR)) in frames_of(conn.out)
    conn.receive(b"".join(f.frame(f.DATA, 0, 3, b"y" * 300) for _ in range(3)) + f.frame(f.DATA, f.END_STREAM, 3, b""))
    assert [event for event in recorder.events if event[:2] == ("data", 3)] == [("data", 3, b"y" * 300, False)] * 3 + [
        ("data", 3, b"", True)
    ]


def test_data_read_before_an_oversized_frame_is_handed_on_first() -> None:
    recorder = Recorder()
    conn = Connection(recorder, max_frame_size=16_384)
    encoder = Encoder()
    conn.receive(client_start() + headers_frame(encoder, 1))
    with pytest.raises(H2ConnectionError) as raised:
        conn.receive(
            f.frame(f.DATA, 0, 1, b"a") + f.frame(f.DATA, 0, 1, b"b") + f.HEADER.pack((20_000 << 8) | f.DATA, 0, 1)
        )
    assert raised.value.code == f.FRAME_SIZE_ERROR
    assert [event for event in recorder.events if event[0] == "data"] == [
        ("data", 1, b"a", False),
        ("data", 1, b"b", False),
    ]


def test_a_connection_window_set_below_the_default_still_takes_what_the_client_may_send() -> None:
    """A connection's window starts at 65,535 and cannot shrink: a client may send that much however small a window
    the server was configured with."""
    recorder = Recorder()
    conn = Connection(recorder, stream_window=1 << 20, connection_window=1000)
    encoder = Encoder()
    conn.receive(client_start() + headers_frame(encoder, 1))
    conn.receive(b"".join(f.frame(f.DATA, 0, 1, b"z" * 20_000) for _ in range(3)))
    assert [event for event in recorder.events if event[0] == "data"] == [("data", 1, b"z" * 20_000, False)] * 3
    assert not [kind for kind, *_ in frames_of(conn.out) if kind == f.GOAWAY]


def test_the_conversation_is_understood() -> None:
    events, out = run([conversation()])
    assert events[0] == ("window",)  # the client's SETTINGS grew the initial window
    headers = dict(events[1][2])
    assert events[1][:2] == ("headers", 1) and headers[":path"] == "/inference.GRPCInferenceService/ModelInfer"
    assert headers["user-agent"] == "grpc-python/1.0 \u00e9".encode().decode("latin-1")
    assert ("data", 1, b"\0\0\0\0\x03abc", False) in events
    assert ("data", 3, b"\0\0\0\0\x01z", True) in events  # padding removed
    assert ("data", 1, b"", True) in events
    assert events[-1] == ("window",)
    sent = frames_of([out])
    assert sent[0][0] == f.SETTINGS and (f.SETTINGS, f.ACK, 0, b"") in sent
    assert (f.PING, f.ACK, 0, b"12345678") in sent


@pytest.mark.parametrize(
    "data, code",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", f.PROTOCOL_ERROR),
        (client_start() + f.HEADER.pack((2_000_000 << 8) | f.DATA, 0, 1), f.FRAME_SIZE_ERROR),
        (client_start() + f.frame(f.HEADERS, f.END_HEADERS, 1, b"\xff\xff\xff\xff\x7f"), f.COMPRESSION_ERROR),
        (client_start() + headers_frame(Encoder(), 2), f.PROTOCOL_ERROR),  # a client opens odd streams only
        (client_start() + f.frame(f.DATA, 0, 5, b"x"), f.PROTOCOL_ERROR),  # DATA on an idle stream
        (client_start() + f.frame(f.DATA, 0, 0, b"x"), f.PROTOCOL_ERROR),
        (client_start() + f.frame(f.WINDOW_UPDATE, 0, 0, b"\0\0\0\0"), f.PROTOCOL_ERROR),
        (client_start() + f.frame(f.WINDOW_UPDATE, 0, 0, b"\x7f\xff\xff\xff"), f.FLOW_CONTROL_ERROR),
        (client_start() + f.frame(f.PING, 0, 0, b"short"), f.FRAME_SIZE_ERROR),
        (client_start() + f.frame(f.SETTINGS, 0, 0, b"12345"), f.FRAME_SIZE_ERROR),
        (client_start({f.MAX_FRAME_SIZE: 100}), f.PROTOCOL_ERROR),
        (client_start({f.INITIAL_WINDOW_SIZE: 1 << 31}), f.FLOW_CONTROL_ERROR),
        (client_start() + f.frame(f.PUSH_PROMISE, f.END_HEADERS, 1, b"\0\0\0\2"), f.PROTOCOL_ERROR),
        (client_start() + f.frame(f.HEADERS, 0, 1, b"") + f.frame(f.PING, 0, 0, b"12345678"), f.PROTOCOL_ERROR),
        (client_start() + f.frame(f.CONTINUATION, f.END_HEADERS, 1, b""), f.PROTOCOL_ERROR),
        (client_start() + f.frame(f.DATA, f.PADDED, 1, b"\x09abc"), f.PROTOCOL_ERROR),
    ],
    ids=[
        "garbage-preface",
        "oversized-frame",
        "bad-hpack",
        "even-stream",
        "idle-data",
        "data-on-0",
        "zero-window-update",
        "window-overflow",
        "short-ping",
        "bad-settings",
        "tiny-max-frame",
        "huge-initial-window",
        "push-promise",
        "interrupted-block",
        "lone-continuation",
        "overlong-padding",
    ],
)
def test_bad_input_ends_the_connection_with_goaway_and_its_code(data: bytes, code: int) -> None:
    recorder = Recorder()
    conn = Connection(recorder, max_frame_size=1 << 20)
    with pytest.raises(H2ConnectionError) as raised:
        conn.receive(data)
    assert raised.value.code == code
    assert goaway_code(conn) == code
    conn.out.clear()
    conn.receive(client_start())  # nothing more is read
    assert conn.out == []


def test_a_stream_error_resets_that_stream_only() -> None:
    conn, recorder, encoder = connected()
    conn.receive(headers_frame(encoder, 1) + headers_frame(encoder, 3))
    conn.receive(f.frame(f.DATA, 0, 1, b"x" * 1001))  # beyond the stream's window of 1000
    assert ("reset", 1, f.FLOW_CONTROL_ERROR) in recorder.events
    assert (f.RST_STREAM, 0, 1, struct.pack(">I", f.FLOW_CONTROL_ERROR)) in frames_of(conn.out)
    conn.receive(f.frame(f.DATA, f.END_STREAM, 3, b"fine"))
    assert recorder.events[-1] == ("data", 3, b"fine", True)


def test_streams_beyond_the_maximum_are_refused() -> None:
    conn, recorder, encoder = connected()
    conn.receive(headers_frame(encoder, 1) + headers_frame(encoder, 3) + headers_frame(encoder, 5))
    assert [e[1] for e in recorder.events if e[0] == "headers"] == [1, 3]
    assert (f.RST_STREAM, 0, 5, struct.pack(">I", f.REFUSED_STREAM)) in frames_of(conn.out)
    conn.receive(f.frame(f.RST_STREAM, 0, 1, struct.pack(">I", f.CANCEL)))
    assert recorder.events[-1] == ("reset", 1, f.CANCEL)
    conn.receive(headers_frame(encoder, 7))  # room again
    assert recorder.events[-1][:2] == ("headers", 7)


def test_the_stream_window_is_given_back_as_the_owner_takes_the_bytes() -> None:
    conn, recorder, encoder = connected()
    conn.receive(headers_frame(encoder, 1) + f.frame(f.DATA, 0, 1, b"x" * 1000))
    conn.out.clear()
    conn.consume(1, 100)  # less than a quarter of the window: kept
    assert conn.out == []
    conn.consume(1, 900)
    assert frames_of(conn.out) == [(f.WINDOW_UPDATE, 0, 1, struct.pack(">I", 1000))]
    conn.receive(f.frame(f.DATA, 0, 1, b"y" * 1000))  # the window is whole again
    assert recorder.events[-1] == ("data", 1, b"y" * 1000, False)


def test_sending_respects_the_peers_windows_and_frame_size() -> None:
    recorder = Recorder()
    conn = Connection(recorder)
    conn.receive(client_start({f.INITIAL_WINDOW_SIZE: 40_000}) + headers_frame(Encoder(), 1, end_stream=True))
    conn.out.clear()
    assert conn.send_data(1, b"a" * 100_000) == 40_000
    sizes = [len(payload) for kind, _, _, payload in frames_of(conn.out) if kind == f.DATA]
    assert sizes == [16_384, 16_384, 7_232]
    assert conn.send_data(1, b"more") == 0
    conn.receive(f.frame(f.WINDOW_UPDATE, 0, 1, struct.pack(">I", 30_000)))
    assert recorder.events[-1] == ("window",)
    assert conn.send_data(1, b"b" * 30_000) == 25_535  # now the connection's window (65,535) is the limit
    conn.receive(f.window_update(0, 10_000))
    conn.out.clear()
    assert conn.send_data(1, b"c" * 10, end_stream=True) == 10
    assert frames_of(conn.out) == [(f.DATA, f.END_STREAM, 1, b"c" * 10)]
    assert 1 not in conn.streams  # both sides ended


def test_a_settings_change_of_the_initial_window_moves_open_streams_windows() -> None:
    conn, recorder, encoder = connected()
    conn.receive(headers_frame(encoder, 1))
    conn.receive(f.settings({f.INITIAL_WINDOW_SIZE: 10}))
    assert conn.send_data(1, b"z" * 100) == 10
    conn.receive(f.settings({f.INITIAL_WINDOW_SIZE: 30}))
    assert recorder.events[-1] == ("window",)
    assert conn.send_data(1, b"z" * 100) == 20


def test_an_answer_before_the_request_ends_resets_what_the_client_still_sends() -> None:
    conn, recorder, encoder = connected()
    conn.receive(headers_frame(encoder, 1))
    conn.out.clear()
    conn.send_headers(1, b"\x88", end_stream=True)
    assert frames_of(conn.out) == [
        (f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, b"\x88"),
        (f.RST_STREAM, 0, 1, struct.pack(">I", f.NO_ERROR)),
    ]
    conn.receive(f.frame(f.DATA, 0, 1, b"late"))  # in flight before the client knew: dropped
    assert recorder.events[-1][0] == "headers"


def test_goaway_refuses_new_streams_and_keeps_the_open_ones() -> None:
    conn, recorder, encoder = connected()
    conn.receive(headers_frame(encoder, 1))
    conn.goaway()
    assert frames_of(conn.out)[-1] == (f.GOAWAY, 0, 0, struct.pack(">II", 1, f.NO_ERROR))
    conn.receive(headers_frame(encoder, 3))
    assert (f.RST_STREAM, 0, 3, struct.pack(">I", f.REFUSED_STREAM)) in frames_of(conn.out)
    conn.receive(f.frame(f.DATA, f.END_STREAM, 1, b"last"))
    assert recorder.events[-1] == ("data", 1, b"last", True)


def test_data_beyond_the_connections_window_ends_the_connection() -> None:
    recorder = Recorder()
    conn = Connection(recorder, stream_window=1 << 20, connection_window=100_000)
    encoder = Encoder()
    conn.receive(client_start() + headers_frame(encoder, 1) + headers_frame(encoder, 3))
    conn.out.clear()
    conn.receive(f.frame(f.DATA, 0, 1, b"a" * 24_000))  # under a quarter of the window: not given back yet
    assert not [kind for kind, *_ in frames_of(conn.out) if kind == f.WINDOW_UPDATE]
    conn.receive(f.frame(f.DATA, 0, 3, b"b" * 2_000))  # a quarter reached: the connection's window is given back
    assert (f.WINDOW_UPDATE, 0, 0, struct.pack(">I", 26_000)) in frames_of(conn.out)
    conn.out.clear()
    conn.receive(f.frame(f.DATA, 0, 1, b"c" * 24_000))  # 24,000 of the window used, not given back yet
    assert not frames_of(conn.out)
    with pytest.raises(H2ConnectionError) as raised:
        conn.receive(f.frame(f.DATA, 0, 3, b"d" * 76_001))  # one byte beyond the window
    assert raised.value.code == f.FLOW_CONTROL_ERROR
    assert goaway_code(conn) == f.FLOW_CONTROL_ERROR


@pytest.mark.parametrize(
    "frame", [f.frame(f.PING, 0, 0, b"12345678"), f.frame(f.SETTINGS, 0, 0)], ids=["ping", "settings"]
)
def test_answers_the_client_does_not_read_are_bounded(frame: bytes) -> None:
    """PING and SETTINGS ask for answers; the owner says when what it wrote was taken (acks_read). Past
    MAX_QUEUED_ACKS answers not taken, the connection ends with ENHANCE_YOUR_CALM."""
    from modelserver.h2.limits import MAX_QUEUED_ACKS

    conn, _recorder, _encoder = connected()
    conn.acks_read()  # the answer to the client's first SETTINGS was written with the rest
    for _ in range(3):  # a client that reads: any number, in batches the owner writes out
        conn.receive(frame * MAX_QUEUED_ACKS)
        conn.out.clear()
        conn.acks_read()
    conn.receive(frame * MAX_QUEUED_ACKS)
    with pytest.raises(H2ConnectionError) as raised:
        conn.receive(frame)
    assert raised.value.code == f.ENHANCE_YOUR_CALM
    assert goaway_code(conn) == f.ENHANCE_YOUR_CALM


def test_streams_reset_by_the_client_faster_than_the_rate_end_the_connection() -> None:
    """Rapid reset: each stream the client opens and resets at once takes a token; RESET_BURST of them at once
    pass, the next one ends the connection with ENHANCE_YOUR_CALM. Resets of streams already closed take none."""
    from modelserver.h2.limits import RESET_BURST

    recorder = Recorder()
    conn = Connection(recorder, max_concurrent_streams=100)
    conn.receive(client_start())
    encoder = Encoder()
    burst = b"".join(
        headers_frame(encoder, 2 * index + 1) + f.rst_stream(2 * index + 1, f.CANCEL) for index in range(RESET_BURST)
    )
    conn.receive(burst)
    conn.receive(f.rst_stream(1, f.CANCEL) * 5)  # closed streams: no token
    assert ("reset", 2 * RESET_BURST - 1, f.CANCEL) in recorder.events
    with pytest.raises(H2ConnectionError) as raised:
        conn.receive(headers_frame(encoder, 2 * RESET_BURST + 1) + f.rst_stream(2 * RESET_BURST + 1, f.CANCEL))
    assert raised.value.code == f.ENHANCE_YOUR_CALM
