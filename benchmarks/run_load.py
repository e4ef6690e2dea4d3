"""Benchmark the model server's echo model against a bare aiohttp echo, and write the results.

Steps: start ``python -m modelserver`` (echo model, 1 worker, batch 1, token auth off) on free ports in a temporary
directory and time it from spawn to its first answer; wait until the worker is READY; run the load generator at
each concurrency; read the frontend's and the worker's RSS; stop it. Then start ``benchmarks.bare_echo`` and run the
same points. Every process started here is stopped by PID in a ``finally``, children included.

    python -m benchmarks [--duration 8] [--warmup 2] [--concurrency 1,16,64] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import loadgen, wrk
from .bare_echo import READY_LINE as BARE_READY_LINE
from .loadgen import LoadResult, LoadSpec
from .procs import (
    CLOCK_TICKS,
    HOST,
    Managed,
    Pinning,
    choose_pinning,
    client_affinity,
    cpu_seconds,
    free_port,
    proc_start_ticks,
    rss_mb,
    spawn,
)

ROOT = Path(__file__).resolve().parent.parent
ECHO_MODEL = ROOT / "examples" / "model_store" / "echo"
DEFAULT_OUT = ROOT / "benchmarks" / "results"
STARTED_LINE = "Model server started."
BODY = b'{"id": 42, "name": "benchmark", "tags": ["echo", "json"], "values": [1, 2, 3, 4, 5], "text": "hello, world!"}'
BODY_JSON = json.loads(BODY)
CONTENT_TYPE = "application/json"
START_TIMEOUT_S = 60.0
CLIENTS: dict[str, tuple[str, Callable[[LoadSpec], LoadResult]]] = {
    "aiohttp": ("aiohttp client on uvloop (benchmarks.loadgen)", loadgen.measure),
    "wrk": ("wrk, one thread, Lua POST script (benchmarks.wrk)", wrk.measure),
}


# -- pinning and machine information --------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_state() -> dict[str, Any] | None:
    """The commit the server code comes from, and the server files that differ from it (a dirty tree)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "modelserver", "workers", "examples"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "changed_server_files": [line[3:] for line in status.splitlines()]}


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "aiohttp": version_of("aiohttp"),
        "uvloop": version_of("uvloop"),
        "msgpack": version_of("msgpack"),
    }


# -- HTTP probes (stdlib only, outside the measured windows) --------------------------------------------------------


def same_json(payload: bytes) -> bool:
    """Whether an answer is the request body: the bare echo returns the bytes, while the echo model re-serialises
    JSON the way TorchServe does (the worker decodes an ``application/json`` body and encodes the reply with
    ``indent=2``)."""
    if payload == BODY:
        return True
    try:
        return json.loads(payload) == BODY_JSON
    except ValueError:
        return False


def post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": CONTENT_TYPE})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for_answer(managed: Managed, url: str, timeout: float = START_TIMEOUT_S) -> float:
    """Seconds from spawn until ``url`` answered a POST with 200 and the echoed JSON."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if managed.process.poll() is not None:
            raise RuntimeError(f"{managed.name} exited with {managed.process.returncode}:\n{managed.log_tail()}")
        try:
            status, payload = post(url, BODY, timeout=max(0.1, deadline - time.monotonic()))
        except (OSError, urllib.error.URLError):
            time.sleep(0.005)
            continue
        if status == 200 and same_json(payload):
            return time.perf_counter() - managed.spawned_at
        time.sleep(0.005)
    raise TimeoutError(f"{managed.name} did not answer {url} within {timeout:.0f} s:\n{managed.log_tail()}")


def ready_worker_pid(management: str, model: str, timeout: float = START_TIMEOUT_S) -> int:
    """The pid of the model's single READY worker, from the describe API."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            workers = get_json(f"{management}/models/{model}")[0]["workers"]
            ready = [w["pid"] for w in workers if w["status"] == "READY"]
            if len(ready) == len(workers) == 1:
                return int(ready[0])
        time.sleep(0.05)
    raise TimeoutError(f"model {model} has no READY worker after {timeout:.0f} s")


# -- the two targets ------------------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    pids: dict[str, int]
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)


def write_server_config(workdir: Path) -> tuple[Path, dict[str, str]]:
    store = workdir / "model_store"
    shutil.copytree(ECHO_MODEL, store / "echo", ignore=shutil.ignore_patterns("__pycache__"))
    addresses = {key: f"http://{HOST}:{free_port()}" for key in ("inference", "management", "metrics")}
    models = {"echo": {"1.0": {"minWorkers": 1, "maxWorkers": 1, "batchSize": 1, "maxBatchDelay": 100}}}
    properties = {
        "inference_address": addresses["inference"],
        "management_address": addresses["management"],
        "metrics_address": addresses["metrics"],
        "model_store": str(store),
        "load_models": "echo",
        "default_workers_per_model": "1",
        "disable_token_authorization": "true",
        "models": json.dumps(models),
    }
    config = workdir / "config.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    return config, addresses


def child_env(workdir: Path) -> dict[str, str]:
    """Our environment, with TMPDIR in the run's directory (the server's pid file goes there) and unbuffered output."""
    env = {**os.environ, "TMPDIR": str(workdir), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def start_model_server(workdir: Path, pinning: Pinning, started: list[Managed]) -> Target:
    config, addresses = write_server_config(workdir)
    command = [*pinning.server_prefix, sys.executable, "-m", "modelserver", "--start", "--foreground", "--ncs"]
    managed = spawn("modelserver", [*command, "--ts-config", str(config)], workdir, child_env(workdir))
    started.append(managed)
    url = f"{addresses['inference']}/predictions/echo"
    start_s = wait_for_answer(managed, url)
    worker = ready_worker_pid(addresses["management"], "echo")
    managed.known_children.append((worker, proc_start_ticks(worker) or 0))
    pids = {"frontend": managed.pid, "worker": worker}
    extra = {"start_s": round(start_s, 3), "rss_idle_mb": {role: rss_mb(pid) for role, pid in pids.items()}}
    return Target("modelserver", url, pids, managed.log, extra)


def start_bare_echo(workdir: Path, pinning: Pinning, started: list[Managed]) -> Target:
    port = free_port()
    command = [*pinning.server_prefix, sys.executable, "-m", "benchmarks.bare_echo", "--host", HOST]
    command += ["--port", str(port)]
    managed = spawn("bare_echo", command, workdir, child_env(workdir))
    started.append(managed)
    url = f"http://{HOST}:{port}/predictions/echo"
    start_s = wait_for_answer(managed, url)
    if BARE_READY_LINE not in managed.log_tail():
        raise RuntimeError(f"bare echo answered but did not print {BARE_READY_LINE!r}")
    pids = {"server": managed.pid}
    extra = {"start_s": round(start_s, 3), "rss_idle_mb": {"server": rss_mb(managed.pid)}}
    return Target("bare aiohttp", url, pids, managed.log, extra)


# -- measuring ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU counters at one moment: the whole machine's busy seconds, ours (load generator, wrk included once it has
    been waited for), and each server process's."""

    wall: float
    machine: float
    client: float
    servers: dict[str, float | None]

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSnapshot:
        times = os.times()
        client = times.user + times.system + times.children_user + times.children_system
        servers = {role: cpu_seconds(pid) for role, pid in pids.items()}
        return cls(time.perf_counter(), machine_busy_seconds(), client, servers)


def machine_busy_seconds() -> float:
    """Busy time of all CPUs from /proc/stat: user, nice, system, irq, softirq and steal (not idle or iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def cpu_shares(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, Any]:
    """Percentages of one core over the interval: each server process, and whatever else ran on the machine."""
    wall = max(after.wall - before.wall, 1e-9)
    servers: dict[str, float | None] = {}
    for role, start in before.servers.items():
        end = after.servers.get(role)
        servers[role] = None if start is None or end is None else round(100 * (end - start) / wall, 1)
    ours = sum(v for v in servers.values() if v is not None) + 100 * (after.client - before.client) / wall
    other = 100 * (after.machine - before.machine) / wall - ours
    return {"server_cpu_pct": servers, "other_cpu_pct": round(max(other, 0.0), 1)}


def measure_point(target: Target, client: str, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    spec = LoadSpec(
        url=target.url,
        body=BODY,
        content_type=CONTENT_TYPE,
        concurrency=concurrency,
        duration=duration,
        warmup=warmup,
        check=same_json,
    )
    before = CpuSnapshot.take(target.pids)
    result = CLIENTS[client][1](spec)
    shares = cpu_shares(before, CpuSnapshot.take(target.pids))
    return {"target": target.name, **asdict(result), **shares}


def measure_settled(
    target: Target, args: argparse.Namespace, concurrency: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Measure one point; while other processes took more than ``--max-other-cpu``, measure it again, up to
    ``--retries`` times, and keep the least disturbed attempt."""
    best: dict[str, Any] | None = None
    for attempt in range(1, args.retries + 2):
        point = measure_point(target, args.client, concurrency, args.duration, args.warmup)
        point["attempt"] = attempt
        log(
            f"  {target.name:<12} c={concurrency:<4} {point['requests_per_s']:>9.1f} req/s  "
            f"p50 {_ms(point['p50_ms'])} ms  p99 {_ms(point['p99_ms'])} ms  "
            f"errors {point['errors']}  non-2xx {point['non_2xx']}  other CPU {point['other_cpu_pct']:.0f}%"
        )
        if best is None or point["other_cpu_pct"] < best["other_cpu_pct"]:
            best = point
        if point["other_cpu_pct"] <= args.max_other_cpu:
            break
    assert best is not None
    return best


def measure_target(target: Target, args: argparse.Namespace, log: Callable[[str], None]) -> list[dict[str, Any]]:
    points = [measure_settled(target, args, concurrency, log) for concurrency in args.concurrency]
    target.extra["rss_after_load_mb"] = {role: rss_mb(pid) for role, pid in target.pids.items()}
    if any(point["errors"] or point["non_2xx"] for point in points):
        target.extra["log_tail"] = target.log.read_text(errors="replace")[-5000:]
        log(f"  {target.name}: failed requests; its log ends with:\n{target.extra['log_tail']}")
    return points


# -- the report -----------------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cpu(point: dict[str, Any]) -> str:
    values = [v for v in point["server_cpu_pct"].values() if v is not None]
    return " + ".join(f"{v:.0f}" for v in values) if values else "-"


def _git_line(git: dict[str, Any] | None) -> str:
    if not git:
        return "unknown (no git)"
    changed = git["changed_server_files"]
    dirty = f", plus uncommitted changes to {', '.join(changed)}" if changed else ""
    return f"commit {git['commit'][:12]}{dirty}"


def render_markdown(report: dict[str, Any]) -> str:
    machine, settings = report["machine"], report["settings"]
    server, bare = report["targets"]["modelserver"], report["targets"]["bare aiohttp"]
    bare_rps = {p["concurrency"]: p["requests_per_s"] for p in report["points"] if p["target"] == "bare aiohttp"}
    lines = [
        f"# Echo benchmark ({report['generated_at']})",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores; Python {machine['python']}; "
        f"aiohttp {machine['aiohttp']}, uvloop {machine['uvloop']}, msgpack {machine['msgpack']}",
        f"- Server code: {_git_line(report.get('git'))}",
        f"- Pinning: {settings['pinning']}",
        f"- Load: closed loop, keep-alive, {settings['body_bytes']}-byte JSON body, "
        f"{settings['warmup_s']:g} s warm-up + {settings['duration_s']:g} s measured per point; "
        f"client: {settings['client']}",
        f"- Noise: a point during which other processes used more than {settings['max_other_cpu_pct']:g}% of a core is "
        f"measured again, up to {settings['retries']} more time(s); the least disturbed attempt is kept",
        "",
        "| target | conc. | req/s | % of bare | p50 ms | p90 ms | p99 ms | errors | non-2xx "
        "| server CPU | client CPU | other CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in report["points"]:
        ceiling = bare_rps.get(point["concurrency"])
        share = f"{100 * point['requests_per_s'] / ceiling:.0f}%" if ceiling else "-"
        lines.append(
            f"| {point['target']} | {point['concurrency']} | {point['requests_per_s']:.0f} | {share} "
            f"| {_ms(point['p50_ms'])} | {_ms(point['p90_ms'])} | {_ms(point['p99_ms'])} "
            f"| {point['errors']} | {point['non_2xx']} | {_cpu(point)} | {point['client_cpu_pct']:.0f} "
            f"| {point['other_cpu_pct']:.0f} |"
        )
    idle, after = server["rss_idle_mb"], server["rss_after_load_mb"]
    lines += [
        "",
        "| model server | value |",
        "|---|---:|",
        f"| start: spawn to first `POST /predictions/echo` answer | {server['start_s']:.2f} s |",
        f"| RSS frontend, idle / after load | {idle['frontend']} / {after['frontend']} MB |",
        f"| RSS echo worker, idle / after load | {idle['worker']} / {after['worker']} MB |",
        f"| RSS bare aiohttp echo, after load (for scale) | {bare['rss_after_load_mb']['server']} MB |",
        "",
        "CPU columns are % of one core, averaged over warm-up and measurement: server CPU is frontend + worker for",
        "the model server; client CPU near 100 means the load generator set the pace; other CPU is everything else",
        "that ran on the machine meanwhile (more than a few % means the numbers are disturbed).",
    ]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "echo-latest.json").write_text(json.dumps(report, indent=2) + "\n")
    table = render_markdown(report)
    (out / "echo-latest.md").write_text(table)
    return table


# -- the command line -----------------------------------------------------------------------------------------------


def parse_concurrency(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per point (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per point (default 2)")
    parser.add_argument("--concurrency", type=parse_concurrency, default=[1, 16, 64], help="e.g. 1,16,64")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for echo-latest.json and .md")
    parser.add_argument(
        "--max-other-cpu",
        type=float,
        default=10.0,
        help="a point during which other processes used more CPU than this (%% of one core) is disturbed (default 10)",
    )
    parser.add_argument(
        "--retries", type=int, default=1, help="how many times a disturbed point is measured again (default 1)"
    )
    parser.add_argument(
        "--client", choices=sorted(CLIENTS), default="aiohttp", help="load generator (wrk only if it is on PATH)"
    )
    args = parser.parse_args(argv)
    if args.client == "wrk" and not wrk.available():
        parser.error("--client wrk: wrk is not on PATH")
    if args.retries < 0 or args.duration <= 0 or args.warmup < 0:
        parser.error("--retries and --warmup must not be negative, --duration must be positive")
    return args


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    pinning = choose_pinning()
    log(f"Pinning: {pinning.note}")
    report: dict[str, Any] = {
        "generated_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": machine_info(),
        "git": git_state(),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "body_bytes": len(BODY),
            "content_type": CONTENT_TYPE,
            "pinning": pinning.note,
            "max_other_cpu_pct": args.max_other_cpu,
            "retries": args.retries,
            "client": CLIENTS[args.client][0],
        },
        "targets": {},
        "points": [],
    }
    with tempfile.TemporaryDirectory(prefix="modelserver-bench-") as tmp:
        for starter in (start_model_server, start_bare_echo):
            started: list[Managed] = []
            workdir = Path(tmp) / starter.__name__
            workdir.mkdir()
            try:
                target = starter(workdir, pinning, started)
                log(f"{target.name}: answering {target.extra['start_s']:.2f} s after spawn; pids {target.pids}")
                with client_affinity(pinning.client_cpus):
                    points = measure_target(target, args, log)
                report["points"].extend(points)
                report["targets"][target.name] = {"url": target.url, **target.extra}
            finally:
                for managed in reversed(started):
                    managed.stop()
    return report


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the finally blocks stop the servers

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = run(args, log)
    table = write_report(report, args.out)
    print(table, end="")
    log(f"Wrote {args.out / 'echo-latest.json'} and {args.out / 'echo-latest.md'}")
    return 0
