"""The results of a run: ``latest.json`` (everything), ``latest.md`` (the tables, with the project's targets as
computed ratios) and ``latest.png`` (the plot, see :mod:`benchmarks.plot`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .report_grpc import grpc_goals
from .report_path import path_goals
from .report_points import (
    CEILING,
    KSERVE,
    KSERVE_OURS,
    MOSEC,
    NOISY_OTHER_CPU_PCT,
    OURS,
    TARGET_ORDER,
    TORCHSERVE,
    Goal,
    Point,
    add_ceiling_shares,
    failed_requests,
    find_point,
    goal,
    ratio,
    role_us,
    times,
    why_absent,
)
from .scenarios import SCENARIOS_BY_NAME

__all__ = ["TARGET_ORDER", "add_ceiling_shares", "failed_requests", "goals", "render_markdown", "write"]


def goals(report: dict[str, Any]) -> list[Goal]:
    """The project's goals that this run's scenarios bear on, each computed from the run's points."""
    selected = set(report.get("settings", {}).get("scenarios", []))
    found = [*_torchserve_api_goals(report), *path_goals(report), *kserve_goals(report), *grpc_goals(report)]
    return [g for g in found if not g.scenarios or selected & set(g.scenarios)]


def _torchserve_api_goals(report: dict[str, Any]) -> list[Goal]:
    """Against TorchServe, Mosec and the ceiling (the TorchServe API scenarios)."""
    points = report["points"]

    def at(scenario: str, target: str, concurrency: int | None = 64) -> tuple[Point | None, list[str]]:
        point = find_point(points, scenario, target, concurrency)
        return point, [] if point else [why_absent(report, target, scenario)]

    def rps(point: Point | None) -> float | None:
        return point["requests_per_s"] if point else None

    def p99(point: Point | None) -> float | None:
        return point["p99_ms"] if point else None

    times, pct, ms = (lambda v: f"{v:.2f}x"), (lambda v: f"{100 * v:.0f}%"), (lambda v: f"{v:.3f} ms")
    ours, ours_missing = at("echo-json", OURS)
    ts, ts_missing = at("echo-json", TORCHSERVE)
    mosec, mosec_missing = at("echo-json", MOSEC)
    bare, bare_missing = at("echo-json", CEILING)
    cost, cost_missing = at("cost10ms-batch8", OURS)
    ideal = SCENARIOS_BY_NAME["cost10ms-batch8"].ideal_rps
    binary_shares = []
    binary_missing: list[str] = []
    for concurrency in SCENARIOS_BY_NAME["echo-binary"].concurrency:
        mine, mine_missing = at("echo-binary", OURS, concurrency)
        ceiling, ceiling_missing = at("echo-binary", CEILING, concurrency)
        share = ratio(rps(mine), rps(ceiling))
        if share is None:
            binary_missing += mine_missing + ceiling_missing
        else:
            binary_shares.append(share)
    binary = min(binary_shares) if binary_shares and not binary_missing else None
    stream, stream_missing = at("stream", OURS, None)
    first_delay = stream["first_piece_delay_ms"]["p50"] if stream else None
    return [
        goal(
            "echo JSON, batch 1, c=64: req/s, ours / TorchServe",
            ">= 6x",
            ratio(rps(ours), rps(ts)),
            lambda v: v >= 6,
            times,
            ours_missing + ts_missing,
            ("echo-json",),
        ),
        goal(
            "echo JSON, batch 1, c=64: req/s, ours / Mosec",
            "> 1x",
            ratio(rps(ours), rps(mosec)),
            lambda v: v > 1,
            times,
            ours_missing + mosec_missing,
            ("echo-json",),
        ),
        goal(
            "echo JSON, batch 1, c=64: req/s, ours / bare aiohttp",
            ">= 70%",
            ratio(rps(ours), rps(bare)),
            lambda v: v >= 0.7,
            pct,
            ours_missing + bare_missing,
            ("echo-json",),
        ),
        goal(
            "echo JSON, batch 1, c=64: p99, ours / TorchServe",
            "< 1x",
            ratio(p99(ours), p99(ts)),
            lambda v: v < 1,
            times,
            ours_missing + ts_missing,
            ("echo-json",),
        ),
        goal(
            "echo JSON, batch 1, c=64: errors + non-2xx, ours",
            "0",
            None if ours is None else float(failed_requests(ours)),
            lambda v: v == 0,
            lambda v: f"{v:.0f}",
            ours_missing,
            ("echo-json",),
        ),
        goal(
            f"10 ms handler, batch 8, c=64: req/s / ideal {ideal:.0f}",
            ">= 95%",
            ratio(rps(cost), ideal),
            lambda v: v >= 0.95,
            pct,
            cost_missing,
            ("cost10ms-batch8",),
        ),
        goal(
            "100 KiB binary echo: req/s, ours / bare aiohttp, lowest over c=1,16,64",
            ">= 50%",
            binary,
            lambda v: v >= 0.5,
            pct,
            binary_missing,
            ("echo-binary",),
        ),
        goal(
            "streaming: first piece, handler to client, p50",
            "<= 2 ms",
            first_delay,
            lambda v: v <= 2.0,
            ms,
            stream_missing,
            ("stream",),
        ),
    ]


def lowest_common_concurrency(points: list[Point], scenario: str, targets: tuple[str, ...]) -> int | None:
    """The lowest concurrency at which every one of ``targets`` has a load point of ``scenario``."""
    levels = [
        {p["concurrency"] for p in points if p["scenario"] == scenario and p["target"] == t and p["kind"] == "load"}
        for t in targets
    ]
    common = set.intersection(*levels) if levels else set()
    return min(common) if common else None


KSERVE_JSON_GOALS = (("kserve-v1-json", "KServe V1 JSON"), ("kserve-v2-json", "KServe V2 JSON"))
KSERVE_BINARY, KSERVE_BINARY_LABEL = "kserve-v2-binary", "KServe V2 binary 1 MiB"
KSERVE_P99_CONCURRENCY = {"kserve-v1-json": 64, "kserve-v2-json": 64, KSERVE_BINARY: 16}


def kserve_goals(report: dict[str, Any]) -> list[Goal]:
    """Against KServe 0.21 with the same model file, for each of our two ways of serving it: at least 3x KServe's
    req/s on V1 and V2 JSON at c=64, at least KServe's on the 1 MiB binary tensor at the lowest concurrency both
    measured, and a lower p99 (c=64; c=16 for binary)."""
    points = report["points"]

    def at(scenario: str, target: str, concurrency: int | None) -> tuple[Point | None, list[str]]:
        point = None if concurrency is None else find_point(points, scenario, target, concurrency)
        return point, [] if point else [why_absent(report, target, scenario)]

    def compare(scenario: str, ours: str, concurrency: int | None, key: str) -> tuple[float | None, list[str]]:
        mine, mine_missing = at(scenario, ours, concurrency)
        theirs, theirs_missing = at(scenario, KSERVE, concurrency)
        value = ratio(mine[key] if mine else None, theirs[key] if theirs else None)
        return value, mine_missing + theirs_missing

    found: list[Goal] = []
    for ours in KSERVE_OURS:
        for scenario, label in KSERVE_JSON_GOALS:
            value, missing = compare(scenario, ours, 64, "requests_per_s")
            found.append(
                goal(
                    f"{label}, c=64: req/s, {ours} / KServe",
                    ">= 3x",
                    value,
                    lambda v: v >= 3,
                    times,
                    missing,
                    (scenario,),
                )
            )
        lowest = lowest_common_concurrency(points, KSERVE_BINARY, (ours, KSERVE))
        value, missing = compare(KSERVE_BINARY, ours, lowest, "requests_per_s")
        level = f"c={lowest}" if lowest is not None else "c=lowest"
        found.append(
            goal(
                f"{KSERVE_BINARY_LABEL}, {level} (lowest measured): req/s, {ours} / KServe",
                ">= 1x",
                value,
                lambda v: v >= 1,
                times,
                missing,
                (KSERVE_BINARY,),
            )
        )
        for scenario, label in (*KSERVE_JSON_GOALS, (KSERVE_BINARY, KSERVE_BINARY_LABEL)):
            concurrency = KSERVE_P99_CONCURRENCY[scenario]
            value, missing = compare(scenario, ours, concurrency, "p99_ms")
            found.append(
                goal(
                    f"{label}, c={concurrency}: p99, {ours} / KServe",
                    "< 1x",
                    value,
                    lambda v: v < 1,
                    times,
                    missing,
                    (scenario,),
                )
            )
    return found


# -- Markdown -------------------------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _other(value: float) -> str:
    return f"**{value:.0f}%**" if value > NOISY_OTHER_CPU_PCT else f"{value:.0f}%"


def _noise_line(report: dict[str, Any]) -> str:
    points = report["points"]
    noisy = [p for p in points if p.get("other_cpu_pct", 0) > NOISY_OTHER_CPU_PCT]
    if not noisy:
        return f"- Noise: no row ran with other CPU above {NOISY_OTHER_CPU_PCT:.0f}% of a core"
    return (
        f"- Noise: **{len(noisy)} of {len(points)} rows ran with other CPU above {NOISY_OTHER_CPU_PCT:.0f}% of a "
        "core** (bold in the tables): other processes took CPU meanwhile; run again on a quiet machine"
    )


def _git_line(git: dict[str, Any] | None) -> str:
    if not git:
        return "unknown (no git)"
    changed = git["changed_server_files"]
    dirty = f", plus uncommitted changes to {', '.join(changed)}" if changed else ""
    return f"commit {git['commit'][:12]}{dirty}"


def _facts(facts: dict[str, Any]) -> str:
    return ", ".join(f"{key} {str(value)[:60]}" for key, value in facts.items()) or "-"


def _ordered_targets(names: set[str]) -> list[str]:
    return sorted(names, key=lambda n: (TARGET_ORDER.index(n) if n in TARGET_ORDER else len(TARGET_ORDER), n))


def _header(report: dict[str, Any]) -> list[str]:
    machine, settings, packages = report["machine"], report["settings"], report.get("packages", {})
    lines = [
        f"# Benchmark results ({report['generated_at']})",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores ({machine['cores_usable']} usable); "
        f"Python {machine['python']}; {machine['platform']}",
        "- Packages: " + ", ".join(f"{name} {version}" for name, version in packages.items()),
        f"- Server code: {_git_line(report.get('git'))}",
        f"- Pinning: {report['pinning']}",
        f"- Load generator: {report['client']['description']} ({report['client']['note']})",
        *_grpc_client_line(report.get("grpc_client")),
        f"- Each point: {settings['warmup']:g} s warm-up, then {settings['repeats']} run(s) of "
        f"{settings['duration']:g} s; a row is the median run by req/s (every run is in latest.json)"
        + (" — quick run, not for comparison" if settings.get("quick") else ""),
        _noise_line(report),
    ]
    for name in _ordered_targets(set(report["targets"])):
        entry = report["targets"][name]
        if "unavailable" in entry:
            lines.append(f"- {name}: **not run**: {entry['unavailable']}")
        elif "not_needed" in entry:
            lines.append(f"- {name}: not prepared: {entry['not_needed']}")
        else:
            lines.append(f"- {name}: {_facts(entry.get('prepared', {}))}")
    return lines


def _grpc_client_line(client: dict[str, str] | None) -> list[str]:
    if not client:
        return []
    return [f"- gRPC load generator: {client['description']} ({client['note']})"]


def _goals_table(report: dict[str, Any]) -> list[str]:
    lines = ["", "## Targets", "", "| target | goal | measured | result |", "|---|---|---:|---|"]
    for item in goals(report):
        result = "n/a" if item.passed is None else ("pass" if item.passed else "**miss**")
        note = f" ({item.note})" if item.note else ""
        lines.append(f"| {item.label} | {item.goal} | {item.shown} | {result}{note} |")
    return lines


def _not_run(report: dict[str, Any], scenario: str) -> list[str]:
    skipped = [s for s in report.get("skipped", []) if s["scenario"] in (None, scenario)]
    if not skipped:
        return []
    return ["", "Not run: " + "; ".join(f"{s['target']} ({s['reason']})" for s in skipped) + "."]


def _load_table(report: dict[str, Any], scenario: str) -> list[str]:
    spec = SCENARIOS_BY_NAME.get(scenario)
    title = spec.title if spec else scenario
    points = [p for p in report["points"] if p["scenario"] == scenario and p["kind"] == "load"]
    efficiency = spec is not None and spec.ideal_rps is not None
    lines = ["", f"## {title} (`{scenario}`)", ""]
    if not points:
        return lines + ["No results.", *_not_run(report, scenario)]
    if efficiency and spec is not None:
        lines += [f"Ideal: {spec.ideal_rps:.0f} req/s (batch size / handler cost).", ""]
    head = "| target | conc. | req/s | % of ceiling |" + (" efficiency |" if efficiency else "")
    head += " p50 ms | p90 ms | p99 ms | errors | non-2xx | frontend µs/req | worker µs/req | client CPU | other CPU |"
    lines += [head, "|---|" + "---:|" * (head.count("|") - 2)]
    order = {name: i for i, name in enumerate(TARGET_ORDER)}
    for point in sorted(points, key=lambda p: (order.get(p["target"], 99), p["concurrency"])):
        frontend, worker = role_us(point)
        row = f"| {point['target']} | {point['concurrency']} | {point['requests_per_s']:.0f} "
        row += f"| {_pct(point.get('ceiling_share'))} |"
        if efficiency:
            row += f" {_pct(point.get('efficiency'))} |"
        row += (
            f" {_f(point['p50_ms'])} | {_f(point['p90_ms'])} | {_f(point['p99_ms'])} | {failed_requests(point)} "
            f"| {point['non_2xx']} | {_f(frontend, 0)} | {_f(worker, 0)} | {point['client_cpu_pct']:.0f}% "
            f"| {_other(point['other_cpu_pct'])} |"
        )
        lines.append(row)
    return lines + _not_run(report, scenario)


def _stream_table(report: dict[str, Any], scenario: str) -> list[str]:
    spec = SCENARIOS_BY_NAME.get(scenario)
    title = spec.title if spec else scenario
    points = [p for p in report["points"] if p["scenario"] == scenario and p["kind"] == "stream"]
    lines = [
        "",
        f"## {title} (`{scenario}`)",
        "",
        "| target | requests | first piece ms p50 / p99 | handler→client, first piece, ms p50 / p99 "
        "| handler→client, mean of pieces, ms p50 | gap between arrivals ms (handler's gap) | chunks/answer "
        "| first before last sent | errors | frontend µs/req | worker µs/req | other CPU |",
        "|---|" + "---:|" * 11,
    ]
    if not points:
        return [*lines[:3], "No results.", *_not_run(report, scenario)]
    for point in sorted(points, key=lambda p: TARGET_ORDER.index(p["target"]) if p["target"] in TARGET_ORDER else 9):
        first, delay, mean = point["first_piece_ms"], point["first_piece_delay_ms"], point["piece_delay_mean_ms"]
        frontend, worker = role_us(point)
        lines.append(
            f"| {point['target']} | {point['complete']}/{point['requests']} | {_f(first['p50'], 3)} / "
            f"{_f(first['p99'], 3)} | {_f(delay['p50'], 3)} / {_f(delay['p99'], 3)} | {_f(mean['p50'], 3)} "
            f"| {_f(point['arrival_gap_mean_ms'], 3)} ({_f(point['handler_gap_mean_ms'], 3)}) "
            f"| {_f(point['chunks_mean'], 1)} | {_pct(point['separate_share'])} | {point['errors']} "
            f"| {_f(frontend, 0)} | {_f(worker, 0)} | {_other(point['other_cpu_pct'])} |"
        )
    return lines + _not_run(report, scenario)


def _mb(values: dict[str, float | None] | None) -> str:
    if not values:
        return "-"
    return " + ".join(f"{role} {_f(mb, 1)}" for role, mb in values.items())


def _batching(start: dict[str, Any]) -> str:
    """The batching the target applied, when it reports it, marked when it is not the scenario's."""
    applied = start.get("batching")
    if not applied:
        return "-"
    shown = f"{applied['batch_size']} / {applied['max_batch_delay_ms']}"
    spec = SCENARIOS_BY_NAME.get(start["scenario"])
    if spec and (applied["batch_size"], applied["max_batch_delay_ms"]) != (spec.batch_size, spec.max_batch_delay_ms):
        shown += f" (scenario: {spec.batch_size} / {spec.max_batch_delay_ms})"
    return shown


def _starts_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Start time and memory",
        "",
        "| target | scenario | batch / delay ms | start s | RSS idle MB | RSS after load MB |",
        "|---|---|---|---:|---|---|",
    ]
    order = {name: i for i, name in enumerate(TARGET_ORDER)}
    for start in sorted(report.get("starts", []), key=lambda s: order.get(s["target"], 99)):
        lines.append(
            f"| {start['target']} | {start['scenario']} | {_batching(start)} | {_f(start.get('start_s'))} "
            f"| {_mb(start.get('rss_idle_mb'))} | {_mb(start.get('rss_after_load_mb'))} |"
        )
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    lines = _header(report) + _goals_table(report)
    for scenario in report["settings"]["scenarios"]:
        spec = SCENARIOS_BY_NAME.get(scenario)
        lines += _stream_table(report, scenario) if spec and spec.kind == "stream" else _load_table(report, scenario)
    lines += _starts_table(report)
    lines += [
        "",
        "Start: from spawning the server to the first good answer to the scenario's request (the worker loaded). "
        "CPU µs/req: the process's CPU time over all measured runs divided by the requests answered (TorchServe's "
        "frontend is the JVM). client CPU and other CPU: % of one core during the reported run. How to read every "
        "column: [benchmarks/README.md](../README.md).",
    ]
    return "\n".join(lines) + "\n"


# -- files ----------------------------------------------------------------------------------------------------------


def write(report: dict[str, Any], out: Path, plot: Callable[[dict[str, Any], Path], None] | None) -> list[Path]:
    """``latest.json``, ``latest.md`` and, when ``plot`` is given, ``latest.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    add_ceiling_shares(report["points"])
    report["goals"] = [goal.__dict__ for goal in goals(report)]
    written = [out / "latest.md", out / "latest.json"]
    if plot is not None:
        plot(report, out / "latest.png")
        written.append(out / "latest.png")
    written[0].write_text(render_markdown(report))
    written[1].write_text(json.dumps(report, indent=2) + "\n")
    return written
