"""A closed-loop HTTP load generator on aiohttp's client and uvloop.

``concurrency`` tasks share one ``TCPConnector(limit=concurrency)``, so each task keeps one keep-alive
connection busy: it POSTs the body, reads the whole answer, and POSTs again at once. The run has a warm-up
(requests are sent but not recorded) and then a measured window of ``duration`` seconds. A request counts when it
completes inside the window; its latency is taken with ``time.perf_counter``. No request starts after the window,
and the total number of attempts is capped, so a run is bounded in time and in count.

Only ``127.0.0.1`` is accepted as a target: this is a local benchmark, not a tool to load other hosts.

    python -m benchmarks.loadgen --url http://127.0.0.1:8080/predictions/echo --concurrency 16 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import aiohttp
import uvloop

ALLOWED_HOSTS = frozenset({"127.0.0.1"})
MAX_CONCURRENCY = 1024
MAX_SECONDS = 600.0
DEFAULT_MAX_REQUESTS = 10_000_000
ERROR_SAMPLES = 5
ERROR_PAUSE_S = 0.005
"""After a failed request a connection pauses this long, so a refused port is not hammered in a tight loop."""


@dataclass(frozen=True)
class LoadSpec:
    """What to send, how many at once, and for how long."""

    url: str
    body: bytes
    content_type: str = "application/json"
    concurrency: int = 1
    duration: float = 8.0
    warmup: float = 2.0
    timeout: float = 10.0
    max_requests: int = DEFAULT_MAX_REQUESTS
    check: Callable[[bytes], bool] | None = None
    """When set, a 2xx answer whose body it rejects counts as an error (``mismatch``)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Request headers besides ``Content-Type``."""
    header_check: Callable[[Mapping[str, str], bytes], bool] | None = None
    """When set, a 2xx answer whose headers and body it rejects counts as an error (``mismatch``) too."""

    def answer_ok(self, headers: Mapping[str, str], payload: bytes) -> bool:
        """Whether a 2xx answer passes both checks."""
        if self.check is not None and not self.check(payload):
            return False
        return self.header_check is None or self.header_check(headers, payload)

    def validate(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or parts.hostname not in ALLOWED_HOSTS:
            raise ValueError(f"only http://127.0.0.1 targets are allowed, got {self.url!r}")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be in 1..{MAX_CONCURRENCY}, got {self.concurrency}")
        if not 0 < self.duration <= MAX_SECONDS or not 0 <= self.warmup <= MAX_SECONDS:
            raise ValueError(f"duration must be in (0, {MAX_SECONDS}] and warm-up in [0, {MAX_SECONDS}]")
        if not 0 < self.timeout <= MAX_SECONDS or self.max_requests < 1:
            raise ValueError("timeout must be positive and max_requests at least 1")


@dataclass
class LoadResult:
    """One measured point. Latencies are in milliseconds; None when nothing completed."""

    url: str
    concurrency: int
    duration_s: float
    requests: int
    requests_per_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    errors: int
    non_2xx: int
    status_counts: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    client_cpu_pct: float = 0.0
    """CPU time of this process over wall time, warm-up included: near 100 means the client was the limit."""
    capped: bool = False
    """True when ``max_requests`` stopped the run early."""


@dataclass(frozen=True)
class _Window:
    start: float
    end: float


class _Recorder:
    """Latencies, status codes and errors of the requests that complete inside the window."""

    def __init__(self, window: _Window, max_requests: int) -> None:
        self.window = window
        self.latencies = array("d")
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.error_samples: list[str] = []
        self.attempts = 0
        self.max_requests = max_requests

    def may_start(self, now: float) -> bool:
        if now >= self.window.end or self.attempts >= self.max_requests:
            return False
        self.attempts += 1
        return True

    def answer(self, started: float, ended: float, status: int, payload: bytes) -> None:
        if self.window.start <= ended <= self.window.end:
            self.latencies.append(ended - started)
            self.statuses[status] += 1
            if not 200 <= status < 300 and len(self.error_samples) < ERROR_SAMPLES:
                self.error_samples.append(f"HTTP {status}: {payload[:200]!r}")

    def error(self, ended: float, reason: str) -> None:
        if self.window.start <= ended <= self.window.end:
            self.errors += 1
            if len(self.error_samples) < ERROR_SAMPLES:
                self.error_samples.append(reason)


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of sorted values, interpolating linearly between ranks."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def _connection(session: aiohttp.ClientSession, spec: LoadSpec, recorder: _Recorder) -> None:
    """One closed loop: send, read the whole answer, record, repeat until the window closes."""
    headers = {"Content-Type": spec.content_type, **dict(spec.headers)}
    checked = spec.check is not None or spec.header_check is not None
    clock = time.perf_counter
    while recorder.may_start(started := clock()):
        try:
            async with session.post(spec.url, data=spec.body, headers=headers) as response:
                payload = await response.read()
                status = response.status
                answer_headers = response.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            recorder.error(clock(), f"{type(err).__name__}: {err}")
            await asyncio.sleep(ERROR_PAUSE_S)
            continue
        ended = clock()
        if checked and 200 <= status < 300 and not spec.answer_ok(answer_headers, payload):
            recorder.error(ended, f"mismatch: got {len(payload)} bytes")
            continue
        recorder.answer(started, ended, status, payload)


async def run_load(spec: LoadSpec) -> LoadResult:
    """Run one point on the running event loop and summarise it."""
    spec.validate()
    connector = aiohttp.TCPConnector(limit=spec.concurrency, limit_per_host=spec.concurrency)
    timeout = aiohttp.ClientTimeout(total=spec.timeout)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False, trust_env=False
    ) as session:
        start = time.perf_counter() + spec.warmup
        recorder = _Recorder(_Window(start, start + spec.duration), spec.max_requests)
        await asyncio.gather(*(_connection(session, spec, recorder) for _ in range(spec.concurrency)))
    cpu_pct = 100 * (time.process_time() - cpu_before) / max(time.perf_counter() - wall_before, 1e-9)
    return summarise(spec, recorder, cpu_pct)


def summarise(spec: LoadSpec, recorder: _Recorder, client_cpu_pct: float) -> LoadResult:
    ordered = sorted(recorder.latencies)
    count = len(ordered)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return LoadResult(
        url=spec.url,
        concurrency=spec.concurrency,
        duration_s=spec.duration,
        requests=count,
        requests_per_s=round(count / spec.duration, 1),
        p50_ms=ms(percentile(ordered, 50)),
        p90_ms=ms(percentile(ordered, 90)),
        p99_ms=ms(percentile(ordered, 99)),
        mean_ms=ms(sum(ordered) / count if count else None),
        max_ms=ms(ordered[-1] if count else None),
        errors=recorder.errors,
        non_2xx=sum(n for status, n in recorder.statuses.items() if not 200 <= status < 300),
        status_counts={str(status): n for status, n in sorted(recorder.statuses.items())},
        error_samples=recorder.error_samples,
        client_cpu_pct=round(client_cpu_pct, 1),
        capped=recorder.attempts >= spec.max_requests,
    )


def measure(spec: LoadSpec) -> LoadResult:
    """Run one point on a fresh uvloop event loop."""
    return uvloop.run(run_load(spec))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT/path")
    parser.add_argument("--body", default='{"x": 1}', help="request body; @FILE reads it from a file")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument(
        "--header", action="append", default=[], metavar="NAME:VALUE", help="another request header (repeatable)"
    )
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds sent before measuring")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds")
    parser.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.body.startswith("@"):
        with open(args.body[1:], "rb") as handle:
            body = handle.read()
    else:
        body = args.body.encode()
    spec = LoadSpec(
        url=args.url,
        body=body,
        content_type=args.content_type,
        headers=tuple((name.strip(), value.strip()) for name, _, value in (h.partition(":") for h in args.header)),
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        timeout=args.timeout,
        max_requests=args.max_requests,
    )
    try:
        result = measure(spec)
    except ValueError as err:
        print(f"loadgen: {err}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
