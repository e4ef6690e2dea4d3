"""Optional: the same closed-loop measurement with ``wrk`` (C, one thread), when it is on PATH.

The aiohttp client spends roughly 70 us of CPU per request, so on one core it tops out near 13k requests/s: enough
for the model server, but it can hide the bare aiohttp ceiling. ``wrk`` costs a fraction of that. A Lua script
makes it POST the body (read from a file, so binary bodies are sent byte for byte) with one thread, and print its
summary as JSON; ``python -m benchmarks run --client wrk`` uses it. wrk does not read the answers' bodies: the runner
checks a sample afterwards (:func:`benchmarks.probes.check_sample`).
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .loadgen import LoadResult, LoadSpec

RESULT_PREFIX = "WRK_RESULT "
EXTRA_WAIT_S = 30.0

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "%s{\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p90_us\\": %d, \\"p99_us\\": %d, "
    .. "\\"mean_us\\": %f, \\"max_us\\": %d, \\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, "
    .. "\\"status\\": %d, \\"timeout\\": %d}\\n",
    "RESULT_PREFIX", summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def lua_string(text: str) -> str:
    """``text`` as a double-quoted Lua string literal (for paths and header values)."""
    if any(ord(char) < 32 for char in text):
        raise ValueError(f"control characters are not allowed here: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def script(spec: LoadSpec, body_file: Path) -> str:
    """The Lua setup: POST the bytes of ``body_file``, read in binary mode (a body inlined in the script would be
    decoded as text, and Lua normalises line ends inside long strings), with the spec's headers, and print the
    summary as JSON."""
    setup = (
        f'local body_file = assert(io.open({lua_string(str(body_file))}, "rb"))\n'
        'wrk.body = body_file:read("*a")\n'
        "body_file:close()\n"
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = {lua_string(spec.content_type)}\n'
    )
    for name, value in spec.headers:
        setup += f"wrk.headers[{lua_string(name)}] = {lua_string(value)}\n"
    return setup + _DONE.replace("RESULT_PREFIX", RESULT_PREFIX)


def _seconds(value: float) -> str:
    """wrk takes whole seconds."""
    return f"{max(1, math.ceil(value))}s"


def _run_wrk(spec: LoadSpec, lua: Path, seconds: float) -> str:
    command = ["wrk", "-t1", f"-c{spec.concurrency}", f"-d{_seconds(seconds)}", f"--timeout={_seconds(spec.timeout)}"]
    command += ["-s", str(lua), spec.url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + EXTRA_WAIT_S, check=True)
    return done.stdout


def parse(stdout: str) -> dict[str, float]:
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(f"wrk printed no result line:\n{stdout[-2000:]}")


def measure(spec: LoadSpec) -> LoadResult:
    """Warm up, then measure; the fields of :func:`benchmarks.loadgen.measure`, but the body is not checked and
    ``non_2xx`` counts only what wrk counts: statuses of 400 and above."""
    spec.validate()
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        body_file, lua = Path(tmp) / "body.bin", Path(tmp) / "post.lua"
        body_file.write_bytes(spec.body)
        lua.write_text(script(spec, body_file))
        if spec.warmup > 0:
            _run_wrk(spec, lua, spec.warmup)
        before, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        raw = parse(_run_wrk(spec, lua, spec.duration))
        after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - wall
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return to_result(spec, raw, 100 * cpu / wall)


def to_result(spec: LoadSpec, raw: dict[str, float], client_cpu_pct: float) -> LoadResult:
    duration = raw["duration_us"] / 1e6
    requests = int(raw["requests"])

    def ms(key: str) -> float | None:
        return round(raw[key] / 1000, 3) if requests else None

    return LoadResult(
        url=spec.url,
        concurrency=spec.concurrency,
        duration_s=round(duration, 3),
        requests=requests,
        requests_per_s=round(requests / duration, 1) if duration else 0.0,
        p50_ms=ms("p50_us"),
        p90_ms=ms("p90_us"),
        p99_ms=ms("p99_us"),
        mean_ms=ms("mean_us"),
        max_ms=ms("max_us"),
        errors=int(raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]),
        non_2xx=int(raw["status"]),
        status_counts={},
        error_samples=[],
        client_cpu_pct=round(client_cpu_pct, 1),
    )
