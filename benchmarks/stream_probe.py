"""Streaming latency: how long the pieces of a streamed answer take from the handler to the client.

The stream handler (``benchmarks/handlers/stream_handler.py``) sends ``CHUNKS`` pieces ``"<index> <monotonic_ns>\\n"``,
each stamped with ``time.monotonic_ns()`` as it is sent. This probe sends requests one after another on one
keep-alive connection with a raw asyncio client, reads the (chunked) body as it arrives, and notes when each piece's
last byte arrived on the same clock. From that: time to first piece from sending the request, the handler-to-client
delay of each piece, the gaps between arrivals, and whether the pieces really arrive apart (the first one before the
handler stamps the last one).

    python -m benchmarks.stream_probe --url http://127.0.0.1:PORT/predictions/stream
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import uvloop

from .loadgen import ALLOWED_HOSTS, percentile

CHUNKS = 10
READ_SIZE = 65536
REQUEST_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 65536


class ProtocolError(ValueError):
    """The answer is not a well-formed HTTP/1.1 response."""


@dataclass(frozen=True)
class Piece:
    index: int
    stamp_ns: int
    """When the handler sent it (its own ``time.monotonic_ns()``)."""
    arrival_ns: int
    """When its last byte reached the client."""


class ResponseParser:
    """Parses one HTTP/1.1 response fed in pieces as they arrive: the status line and headers, then a chunked or
    ``Content-Length`` body, whose complete lines it keeps with the arrival time of their last byte."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.lines: list[tuple[bytes, int]] = []
        self.chunks = 0
        """Non-empty chunks of a chunked body."""
        self.done = False
        self._buffer = bytearray()
        self._line = bytearray()
        self._state = "head"
        self._remaining = 0

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"

    def feed(self, data: bytes, now_ns: int) -> None:
        self._buffer += data
        while not self.done and self._step(now_ns):
            pass

    def _step(self, now_ns: int) -> bool:
        """Consume what the buffer allows in the current state; False when more bytes are needed."""
        if self._state == "head":
            return self._head()
        if self._state == "size":
            return self._chunk_size()
        if self._state in ("data", "length"):
            return self._data(now_ns)
        if self._state == "data_end":
            if len(self._buffer) < 2:
                return False
            if self._buffer[:2] != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF")
            del self._buffer[:2]
            self._state = "size"
            return True
        return self._trailer()

    def _take_line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("line too long")
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("head too long")
            return False
        status_line, *header_lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {status_line!r}")
        self.status = int(parts[1])
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._state = "size"
        elif "content-length" in self.headers:
            self._remaining = int(self.headers["content-length"])
            self._state = "length"
            self.done = self._remaining == 0
        else:
            raise ProtocolError("neither chunked nor Content-Length")
        return True

    def _chunk_size(self) -> bool:
        line = self._take_line()
        if line is None:
            return False
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size line {line!r}") from None
        if size == 0:
            self._state = "trailer"
        else:
            self.chunks += 1
            self._remaining = size
            self._state = "data"
        return True

    def _data(self, now_ns: int) -> bool:
        if not self._buffer:
            return False
        data = bytes(self._buffer[: self._remaining])
        del self._buffer[: len(data)]
        self._remaining -= len(data)
        self._body(data, now_ns)
        if self._remaining == 0:
            if self._state == "length":
                self.done = True
            else:
                self._state = "data_end"
        return True

    def _trailer(self) -> bool:
        line = self._take_line()
        if line is None:
            return False
        if line == b"":
            self.done = True
        return True

    def _body(self, data: bytes, now_ns: int) -> None:
        self._line += data
        while (end := self._line.find(b"\n")) >= 0:
            self.lines.append((bytes(self._line[:end]), now_ns))
            del self._line[: end + 1]


def pieces(lines: list[tuple[bytes, int]]) -> list[Piece]:
    """The stream handler's ``"<index> <stamp_ns>"`` lines; raises ValueError for anything else."""
    found = []
    for line, arrival in lines:
        index, stamp = line.split()
        found.append(Piece(int(index), int(stamp), arrival))
    return found


@dataclass
class RequestRecord:
    sent_ns: int
    status: int | None = None
    pieces: list[Piece] = field(default_factory=list)
    chunks: int = 0
    error: str | None = None

    def complete(self, expected: int) -> bool:
        return self.error is None and self.status == 200 and [p.index for p in self.pieces] == list(range(expected))


def summarise(records: list[RequestRecord], expected: int = CHUNKS) -> dict[str, Any]:
    """Milliseconds: time to first piece from sending the request; handler-to-client delay of the first piece and,
    averaged over all pieces, of every piece; mean gap between consecutive arrivals (and between the handler's stamps,
    for comparison); the share of answers whose first piece arrived before the handler stamped the last one."""
    good = [r for r in records if r.complete(expected)]
    errors = [r.error or f"status {r.status}, {len(r.pieces)} pieces" for r in records if not r.complete(expected)]

    def ms(values: list[int | float]) -> list[float]:
        return sorted(value / 1e6 for value in values)

    first = ms([r.pieces[0].arrival_ns - r.sent_ns for r in good])
    first_delay = ms([r.pieces[0].arrival_ns - r.pieces[0].stamp_ns for r in good])
    mean_delay = ms([statistics.fmean(p.arrival_ns - p.stamp_ns for p in r.pieces) for r in good])
    gaps = [_mean_gap([p.arrival_ns for p in r.pieces]) for r in good]
    stamp_gaps = [_mean_gap([p.stamp_ns for p in r.pieces]) for r in good]
    total = ms([r.pieces[-1].arrival_ns - r.sent_ns for r in good])
    apart = [r.pieces[0].arrival_ns < r.pieces[-1].stamp_ns for r in good]
    return {
        "requests": len(records),
        "complete": len(good),
        "errors": len(errors),
        "error_samples": errors[:5],
        "first_piece_ms": _stats(first),
        "first_piece_delay_ms": _stats(first_delay),
        "piece_delay_mean_ms": _stats(mean_delay),
        "arrival_gap_mean_ms": round(statistics.fmean(gaps) / 1e6, 4) if gaps else None,
        "handler_gap_mean_ms": round(statistics.fmean(stamp_gaps) / 1e6, 4) if stamp_gaps else None,
        "total_ms": _stats(total),
        "separate_share": round(sum(apart) / len(apart), 4) if apart else None,
        "chunks_mean": round(statistics.fmean(r.chunks for r in good), 2) if good else None,
    }


def _mean_gap(times: list[int]) -> float:
    return statistics.fmean(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 1 else 0.0


def _stats(ordered: list[float]) -> dict[str, float | None]:
    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return {
        "p50": r(percentile(ordered, 50)),
        "p99": r(percentile(ordered, 99)),
        "mean": r(statistics.fmean(ordered)) if ordered else None,
    }


class _Connection:
    """One keep-alive connection, reopened after the server closes it or an error."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self.reader, self.writer

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _one(connection: _Connection, request: bytes) -> RequestRecord:
    reader, writer = await connection.open()
    parser = ResponseParser()
    record = RequestRecord(sent_ns=time.monotonic_ns())
    writer.write(request)
    while not parser.done:
        data = await asyncio.wait_for(reader.read(READ_SIZE), REQUEST_TIMEOUT_S)
        now = time.monotonic_ns()
        if not data:
            raise ConnectionError("connection closed mid-answer")
        parser.feed(data, now)
    record.status, record.chunks = parser.status, parser.chunks
    record.pieces = pieces(parser.lines)
    if not parser.keep_alive:
        await connection.close()
    return record


async def run_probe(
    url: str, body: bytes, content_type: str, requests: int, warmup: int, max_seconds: float
) -> list[RequestRecord]:
    """``warmup`` unrecorded requests, then up to ``requests`` recorded ones, one at a time, for at most
    ``max_seconds`` in all."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ALLOWED_HOSTS or parts.port is None:
        raise ValueError(f"only http://127.0.0.1:PORT targets are allowed, got {url!r}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    request = head.encode("latin-1") + body
    connection = _Connection(parts.hostname, parts.port)
    records: list[RequestRecord] = []
    deadline = time.monotonic() + max_seconds
    try:
        for number in range(warmup + requests):
            if time.monotonic() >= deadline:
                break
            try:
                record = await _one(connection, request)
            except (OSError, TimeoutError, ValueError) as err:
                record = RequestRecord(sent_ns=time.monotonic_ns(), error=f"{type(err).__name__}: {err}")
                await connection.close()
            if number >= warmup:
                records.append(record)
    finally:
        await connection.close()
    return records


def probe(
    url: str, body: bytes, content_type: str, requests: int = 200, warmup: int = 20, max_seconds: float = 60.0
) -> dict[str, Any]:
    """Run the probe on a fresh uvloop event loop and summarise it."""
    records = uvloop.run(run_probe(url, body, content_type, requests, warmup, max_seconds))
    return {**summarise(records), "warmup_requests": warmup}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream_probe", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT/predictions/stream")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    body = b'{"stream": true}'
    print(json.dumps(probe(args.url, body, "application/json", args.requests, args.warmup, args.max_seconds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
