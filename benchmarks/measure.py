"""One point: a warm-up, then ``repeats`` measured runs, each between two CPU snapshots; the median run (by
requests/s, or by time to first piece for streaming) is the point's result, and every run is kept.

CPU per request comes from /proc over all measured runs: each server process's CPU seconds divided by the requests
answered. ``other CPU`` is what the rest of the machine used meanwhile (busy time from /proc/stat minus the servers'
and the load generator's), the sign of a disturbed point.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from . import grpc_probe
from .clients import Client
from .loadgen import LoadSpec
from .probes import check_sample, post
from .procs import CLOCK_TICKS, cpu_times
from .scenarios import Scenario
from .stream_probe import probe
from .targets.base import Target

SAMPLE_CHECKS = 20
"""Answers checked after a point measured with a client that does not read bodies."""


@dataclass(frozen=True)
class Settings:
    duration: float
    warmup: float
    repeats: int
    stream_requests: int
    stream_warmup: int
    start_warmup: float = 0.0
    """Seconds of load at the scenario's highest concurrency right after a target starts (a JVM needs 10-15 s
    before its JIT has compiled the hot path), before the first point's own warm-up."""


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU counters at one moment: the whole machine's busy seconds, ours (this process and its waited-for
    children, such as wrk), and each server process's."""

    wall: float
    machine: float
    client: float
    servers: dict[str, float | None]
    servers_system: dict[str, float | None] = field(default_factory=dict)
    """The system (kernel) part of each server process's seconds: what its sockets and other system calls cost,
    which no code of the server's own can lower below what the same calls cost a minimal program."""

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSnapshot:
        times = os.times()
        client = times.user + times.system + times.children_user + times.children_system
        per_pid = {role: cpu_times(pid) for role, pid in pids.items()}
        servers = {role: None if t is None else t[0] + t[1] for role, t in per_pid.items()}
        system = {role: None if t is None else t[1] for role, t in per_pid.items()}
        return cls(time.perf_counter(), machine_busy_seconds(), client, servers, system)


def machine_busy_seconds() -> float:
    """Busy time of all CPUs from /proc/stat: user, nice, system, irq, softirq and steal (not idle or iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def cpu_between(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, Any]:
    """Each server process's CPU seconds over the interval, and as % of one core; the rest of the machine's %."""
    wall = max(after.wall - before.wall, 1e-9)
    seconds = _differences(before.servers, after.servers)
    ours = sum(v for v in seconds.values() if v is not None) + (after.client - before.client)
    other = 100 * ((after.machine - before.machine) - ours) / wall
    return {
        "server_cpu_s": seconds,
        "server_system_s": _differences(before.servers_system, after.servers_system),
        "server_cpu_pct": {role: None if s is None else round(100 * s / wall, 1) for role, s in seconds.items()},
        "other_cpu_pct": round(max(other, 0.0), 1),
    }


def _differences(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float | None]:
    seconds: dict[str, float | None] = {}
    for role, start in before.items():
        end = after.get(role)
        seconds[role] = None if start is None or end is None else round(end - start, 4)
    return seconds


def median_index(values: Sequence[float]) -> int:
    """The index of the median value; for an even count, the lower of the two middle ones (the cautious choice)."""
    if not values:
        raise ValueError("no values")
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(values) - 1) // 2]


def cpu_per_request(
    runs: list[dict[str, Any]], served: Callable[[dict[str, Any]], int], key: str = "server_cpu_s"
) -> dict[str, float | None]:
    """Microseconds of CPU per answered request, by server role, over all runs (``key``: the runs' seconds of all
    CPU, ``server_cpu_s``, or of the system part, ``server_system_s``)."""
    requests = sum(served(run) for run in runs)
    roles = {role for run in runs for role in run.get(key, {})}
    result: dict[str, float | None] = {}
    for role in sorted(roles):
        values = [run[key].get(role) for run in runs]
        ok = requests > 0 and all(v is not None for v in values)
        result[role] = round(1e6 * sum(v for v in values if v is not None) / requests, 1) if ok else None
    return result


SETTLE_TIMEOUT_S = 120.0
SETTLE_PAUSE_S = 0.2


def settle(target: Target, scenario: Scenario) -> None:
    """Wait until the target has worked off what the last run left behind, so it does not spill into the next run.

    A load client stops with requests in flight and closes their connections. TorchServe still runs those requests
    (64 of them fill most of its default queue of 100, and the next run's first requests get 503); this server
    drops them. One request answered after a short pause means the queue ahead of it is empty."""
    time.sleep(SETTLE_PAUSE_S)
    if scenario.is_grpc:
        grpc_probe.settle(target.url, scenario.body(), SETTLE_TIMEOUT_S)
        return
    with contextlib.suppress(OSError, urllib.error.URLError):
        post(target.url, scenario.body(), scenario.content_type, SETTLE_TIMEOUT_S, scenario.headers)


def _repeat(
    target: Target,
    scenario: Scenario,
    repeats: int,
    once: Callable[[], dict[str, Any]],
    key: Callable[[dict[str, Any]], float],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    runs = []
    for _ in range(repeats):
        settle(target, scenario)
        before = CpuSnapshot.take(target.pids)
        result = once()
        runs.append({**result, **cpu_between(before, CpuSnapshot.take(target.pids))})
    return runs[median_index([key(run) for run in runs])], runs


def _load_spec(target: Target, scenario: Scenario, concurrency: int, settings: Settings) -> LoadSpec:
    return LoadSpec(
        url=target.url,
        body=scenario.body(),
        content_type=scenario.content_type,
        concurrency=concurrency,
        duration=settings.duration,
        warmup=0.0,
        check=scenario.check,
        headers=scenario.headers,
        header_check=scenario.header_check,
    )


def load_point(
    target: Target, scenario: Scenario, client: Client, concurrency: int, settings: Settings
) -> dict[str, Any]:
    """Warm up once, measure ``settings.repeats`` times; the median run by requests/s, with every run kept."""
    spec = _load_spec(target, scenario, concurrency, settings)
    if settings.warmup > 0:
        client.measure(replace(spec, duration=settings.warmup))
    median, runs = _repeat(
        target, scenario, settings.repeats, lambda: asdict(client.measure(spec)), lambda run: run["requests_per_s"]
    )
    return _load_result(target, scenario, client, median, runs)


def paired_load_point(
    target: Target,
    scenario: Scenario,
    base_target: Target,
    base: Scenario,
    client: Client,
    concurrency: int,
    settings: Settings,
) -> dict[str, Any]:
    """``target`` on ``scenario`` in rounds alternating with ``base_target`` on ``base`` (both running, one loaded
    at a time): each round is a run of the base, then a run of the target, so their ratio is taken a few seconds
    apart instead of minutes. The point is the target's median run as :func:`load_point` gives it, with ``paired``:
    the base's runs and the median of the rounds' ratios of requests/s and p99."""
    spec = _load_spec(target, scenario, concurrency, settings)
    base_spec = _load_spec(base_target, base, concurrency, settings)
    if settings.warmup > 0:
        client.measure(replace(base_spec, duration=settings.warmup))
        client.measure(replace(spec, duration=settings.warmup))
    runs: list[dict[str, Any]] = []
    base_runs: list[dict[str, Any]] = []
    for _ in range(settings.repeats):
        base_runs += _repeat(base_target, base, 1, lambda: asdict(client.measure(base_spec)), lambda run: 0.0)[1]
        runs += _repeat(target, scenario, 1, lambda: asdict(client.measure(spec)), lambda run: 0.0)[1]
    rps_ratios = [ratio_of(run, base_run, "requests_per_s") for run, base_run in zip(runs, base_runs, strict=True)]
    p99_ratios = [ratio_of(run, base_run, "p99_ms") for run, base_run in zip(runs, base_runs, strict=True)]
    median = runs[median_index([run["requests_per_s"] for run in runs])]
    point = _load_result(target, scenario, client, median, runs)
    point["paired"] = {
        "scenario": base.name,
        "runs": base_runs,
        "requests_per_s_ratio": _median(rps_ratios),
        "p99_ratio": _median(p99_ratios),
        "requests_per_s_ratios": rps_ratios,
        "p99_ratios": p99_ratios,
    }
    return point


def ratio_of(run: dict[str, Any], base_run: dict[str, Any], key: str) -> float | None:
    value, base = run.get(key), base_run.get(key)
    return round(value / base, 4) if value is not None and base else None


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return known[median_index(known)] if known else None


def _load_result(
    target: Target, scenario: Scenario, client: Client, median: dict[str, Any], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    point = {
        **median,
        "scenario": scenario.name,
        "target": target.name,
        "kind": "load",
        "client": client.name,
        "cpu_us_per_request": cpu_per_request(runs, lambda run: run["requests"] + run["errors"]),
        "system_us_per_request": cpu_per_request(runs, lambda run: run["requests"] + run["errors"], "server_system_s"),
        "runs": runs,
    }
    if scenario.ideal_rps:
        point["efficiency"] = round(point["requests_per_s"] / scenario.ideal_rps, 4)
    if scenario.is_grpc:
        point["body_check"] = grpc_probe.check_sample(target.url, scenario.body(), scenario.check, SAMPLE_CHECKS)
    elif not client.checks_bodies and (scenario.check is not None or scenario.header_check is not None):
        point["body_check"] = check_sample(
            target.url,
            scenario.body(),
            scenario.content_type,
            scenario.check,
            SAMPLE_CHECKS,
            headers=scenario.headers,
            header_check=scenario.header_check,
        )
    return point


def start_warmup(target: Target, scenario: Scenario, client: Client, settings: Settings) -> None:
    """Load a freshly started target for ``settings.start_warmup`` seconds, unmeasured."""
    if settings.start_warmup <= 0:
        return
    spec = LoadSpec(
        url=target.url,
        body=scenario.body(),
        content_type=scenario.content_type,
        concurrency=max(scenario.concurrency),
        duration=settings.start_warmup,
        warmup=0.0,
        headers=scenario.headers,
    )
    client.measure(spec)


def stream_point(target: Target, scenario: Scenario, settings: Settings) -> dict[str, Any]:
    """Warm-up requests once, then the stream probe ``settings.repeats`` times (each opens its connection with one
    unrecorded request); the median run by the time to the first piece (p50)."""
    max_seconds = max(10.0, 3 * settings.duration)
    body, content_type = scenario.body(), scenario.content_type
    if settings.stream_warmup > 0:
        probe(target.url, body, content_type, 0, settings.stream_warmup, max_seconds)

    def once() -> dict[str, Any]:
        return probe(target.url, body, content_type, settings.stream_requests, 1, max_seconds)

    # negated, so that for an even count the lower middle run is the slower one, as for requests/s
    median, runs = _repeat(
        target, scenario, settings.repeats, once, lambda run: -(run["first_piece_ms"]["p50"] or float("inf"))
    )
    return {
        **median,
        "scenario": scenario.name,
        "target": target.name,
        "kind": "stream",
        "concurrency": 1,
        "cpu_us_per_request": cpu_per_request(runs, lambda run: run["requests"] + run["warmup_requests"]),
        "runs": runs,
    }
