"""The stream probe's HTTP response parser (fed as bytes arrive) and its summary of the pieces' timings."""

from __future__ import annotations

import pytest

from benchmarks.stream_probe import Piece, ProtocolError, RequestRecord, ResponseParser, pieces, summarise

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes, extension: bytes = b"") -> bytes:
    return b"%x%s\r\n%s\r\n" % (len(data), extension, data)


def test_chunked_body_lines_get_the_arrival_time_of_their_last_byte() -> None:
    parser = ResponseParser()
    parser.feed(HEAD + chunk(b"0 100\n"), now_ns=1000)
    parser.feed(chunk(b"1 2")[:5], now_ns=2000)  # "1 2" split across reads
    parser.feed(chunk(b"1 2")[5:] + chunk(b"00\n", b";ext=1"), now_ns=3000)
    assert not parser.done
    parser.feed(b"0\r\nX-Trailer: yes\r\n\r\n", now_ns=4000)
    assert parser.done and parser.status == 200 and parser.chunks == 3
    assert parser.lines == [(b"0 100", 1000), (b"1 200", 3000)]
    assert pieces(parser.lines) == [Piece(0, 100, 1000), Piece(1, 200, 3000)]


def test_byte_by_byte_feeding_gives_the_same_lines() -> None:
    raw = HEAD + chunk(b"0 5\n1 6\n") + chunk(b"2 7\n") + b"0\r\n\r\n"
    parser = ResponseParser()
    for offset, byte in enumerate(raw):
        parser.feed(bytes([byte]), now_ns=offset)
    assert parser.done and [line for line, _ in parser.lines] == [b"0 5", b"1 6", b"2 7"]
    assert parser.chunks == 2 and parser.keep_alive


def test_content_length_body_and_connection_close() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nno\n!", now_ns=7)
    assert parser.done and parser.status == 503 and not parser.keep_alive
    assert parser.lines == [(b"no", 7)]


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\n\r\n",  # neither chunked nor a length
        b"SPDY 200 OK\r\nContent-Length: 0\r\n\r\n",
        HEAD + b"zz\r\n",
        HEAD + b"2\r\nabXY",
    ],
)
def test_malformed_answers_raise(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        ResponseParser().feed(raw, now_ns=0)


def record(sent: int, stamps_and_arrivals: list[tuple[int, int]], status: int = 200) -> RequestRecord:
    found = [Piece(i, stamp, arrival) for i, (stamp, arrival) in enumerate(stamps_and_arrivals)]
    return RequestRecord(sent_ns=sent, status=status, pieces=found, chunks=len(found))


def test_summary_times_in_milliseconds() -> None:
    ms = 1_000_000
    apart = record(0, [(1 * ms, 2 * ms), (3 * ms, 4 * ms), (5 * ms, 6 * ms)])  # first arrives before last is sent
    together = record(0, [(1 * ms, 4 * ms), (2 * ms, 4 * ms), (3 * ms, 4 * ms)])
    summary = summarise([apart, together], expected=3)
    assert summary["complete"] == 2 and summary["errors"] == 0
    assert summary["first_piece_ms"]["p50"] == 3.0  # 2 ms and 4 ms after sending
    assert summary["first_piece_delay_ms"]["mean"] == 2.0  # 1 ms and 3 ms from the handler's stamp
    assert summary["piece_delay_mean_ms"]["mean"] == 1.5  # 1 ms, and (3 + 2 + 1) / 3 ms
    assert summary["arrival_gap_mean_ms"] == 1.0  # 2 ms gaps and 0 ms gaps
    assert summary["handler_gap_mean_ms"] == 1.5
    assert summary["separate_share"] == 0.5
    assert summary["total_ms"]["p50"] == 5.0


def test_incomplete_answers_are_errors_and_not_timed() -> None:
    ms = 1_000_000
    short = record(0, [(1 * ms, 2 * ms)])
    failed = RequestRecord(sent_ns=0, error="ConnectionError: closed")
    wrong_status = record(0, [(1, 2), (3, 4)], status=500)
    summary = summarise([short, failed, wrong_status], expected=2)
    assert summary["complete"] == 0 and summary["errors"] == 3
    assert summary["first_piece_ms"]["p50"] is None and summary["separate_share"] is None
    assert "ConnectionError: closed" in summary["error_samples"]
