"""The gRPC scenarios' load generator: ``h2load`` (nghttp2's HTTP/2 benchmark tool, C, one thread) sending unary
gRPC calls: a POST of the method's path with ``content-type: application/grpc`` and ``te: trailers``, whose body is
the serialized request behind gRPC's 5-byte message prefix.

One connection with ``concurrency`` calls in flight on it (``-c 1 -m <concurrency>``), as a gRPC channel carries
them, closed-loop for ``duration`` seconds. Latency percentiles come from h2load's per-request log.

h2load does not read gRPC's trailers: a call that failed with a gRPC status still has HTTP status 200. It does count
the DATA bytes it received, and a failed call has none, so every answer must bring the bytes of a good answer
(measured once before the run with a real gRPC call, :func:`benchmarks.grpc_probe.call`): the calls whose bytes
are missing are counted as errors. The runner checks a sample of answers' contents after each point too.
"""

from __future__ import annotations

import math
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .grpc_probe import call
from .loadgen import LoadResult, LoadSpec, percentile

EXTRA_WAIT_S = 30.0
HEADERS = ("content-type: application/grpc", "te: trailers")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_DATA = re.compile(r"\((\d+)\) data")


def available() -> bool:
    return shutil.which("h2load") is not None


def version() -> str:
    """``h2load nghttp2/<version>``, as it says."""
    try:
        done = subprocess.run(["h2load", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({err})"
    return done.stdout.strip() or "unknown"


def frame(message: bytes) -> bytes:
    """A gRPC message on the wire: not compressed (0), its length (4 bytes, big-endian), the message."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def command(spec: LoadSpec, body_file: Path, log_file: Path, seconds: float) -> list[str]:
    args = ["h2load", "-t", "1", "-c", "1", "-m", str(spec.concurrency), "-D", str(max(1, math.ceil(seconds)))]
    for header in HEADERS:
        args += ["-H", header]
    return [*args, "-d", str(body_file), "--log-file", str(log_file), spec.url]


def parse(stdout: str) -> dict[str, int]:
    """The counters of h2load's summary."""
    requests, status, data = _REQUESTS.search(stdout), _STATUS.search(stdout), _DATA.search(stdout)
    if requests is None or status is None or data is None:
        raise RuntimeError(f"h2load printed no summary:\n{stdout[-2000:]}")
    total, started, done, succeeded, failed, errored, timeout = (int(v) for v in requests.groups())
    ok, redirect, client_error, server_error = (int(v) for v in status.groups())
    return {
        "started": started,
        "done": done,
        "succeeded": succeeded,
        "failed": failed,
        "errored": errored,
        "timeout": timeout,
        "2xx": ok,
        "non_2xx": redirect + client_error + server_error,
        "data_bytes": int(data.group(1)),
    }


def latencies_us(log_file: Path) -> list[float]:
    """Durations of the requests answered with HTTP 200, from h2load's log (start, status, microseconds)."""
    found = []
    for line in log_file.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[1] == "200":
            found.append(float(fields[2]))
    return found


def measure(spec: LoadSpec) -> LoadResult:
    """One run of ``spec.duration`` seconds (after ``spec.warmup`` s of unrecorded calls): the fields of
    :func:`benchmarks.loadgen.measure`; ``errors`` counts failed calls (their answer bytes missing) and what h2load
    counts as failed (stream errors and timeouts; its failed count includes non-2xx statuses, counted apart)."""
    spec.validate()
    answer = len(frame(call(spec.url, spec.body, spec.timeout)))
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        body_file, log_file = Path(tmp) / "call.bin", Path(tmp) / "calls.log"
        body_file.write_bytes(frame(spec.body))
        if spec.warmup > 0:
            _run(command(spec, body_file, log_file, spec.warmup), spec.warmup)
        before, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        counts = parse(_run(command(spec, body_file, log_file, spec.duration), spec.duration))
        after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - wall
        durations = sorted(latencies_us(log_file))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return to_result(spec, counts, durations, answer, 100 * cpu / wall, math.ceil(spec.duration))


def to_result(
    spec: LoadSpec, counts: dict[str, int], durations: list[float], answer_bytes: int, cpu_pct: float, seconds: int
) -> LoadResult:
    """A :class:`LoadResult` from h2load's counters and per-request durations (sorted, microseconds)."""
    complete = counts["data_bytes"] // answer_bytes if answer_bytes else 0
    # h2load counts a status when an answer's headers come and its DATA bytes as they come: a call still in flight
    # when the run ends (started, not done) may have its status and part of its bytes. Such a call is not missing
    # its bytes, and the bytes it has are not a torn answer.
    in_flight = counts.get("started", counts["done"]) - counts["done"]
    with_status = max(0, counts["2xx"] + counts["non_2xx"] - counts["done"])  # in flight, their status come
    missing = max(0, counts["2xx"] - with_status - complete)
    torn = counts["data_bytes"] != complete * answer_bytes and not in_flight
    wrong_size = torn or complete > counts["2xx"]
    samples = []
    if missing:
        samples.append(f"{missing} calls answered without a good answer's bytes (a gRPC error status)")
    if wrong_size:
        samples.append(f"{counts['data_bytes']} bytes received: not a whole number of {answer_bytes}-byte answers")
    requests = min(len(durations), complete)

    def ms(value: float | None) -> float | None:
        return None if value is None or not requests else round(value / 1000, 3)

    return LoadResult(
        url=spec.url,
        concurrency=spec.concurrency,
        duration_s=float(seconds),
        requests=requests,
        requests_per_s=round(requests / seconds, 1),
        p50_ms=ms(percentile(durations, 50)),
        p90_ms=ms(percentile(durations, 90)),
        p99_ms=ms(percentile(durations, 99)),
        mean_ms=ms(sum(durations) / len(durations) if durations else None),
        max_ms=ms(durations[-1] if durations else None),
        errors=missing + int(wrong_size) + max(0, counts["failed"] - counts["non_2xx"]),
        non_2xx=counts["non_2xx"],
        status_counts={"200": counts["2xx"]} if counts["2xx"] else {},
        error_samples=samples,
        client_cpu_pct=round(cpu_pct, 1),
    )


def _run(args: list[str], seconds: float) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + EXTRA_WAIT_S, check=True)
    return done.stdout
