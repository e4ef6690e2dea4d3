"""The request path's goals (issue 12's acceptance), computed from one run's points: ours against Mosec at batch 8
and on the 100 KiB echo, p99 against Mosec, the frontend's CPU per request at batch 1 and 8, what TorchServe's ``log``
metrics mode costs beside Prometheus, and no errors in any of our load points. The ceilings (the raw httptools echo,
the aiohttp hop and the raw hop) are not goals: their rows in the tables show what the parser, a process hop and the
floor of a Python frontend with a hop cost."""

from __future__ import annotations

import dataclasses
from typing import Any

from .report_points import (
    MOSEC,
    OURS,
    RAW_HOP,
    Goal,
    Point,
    failed_requests,
    find_point,
    goal,
    ratio,
    role_us,
    times,
    why_absent,
)

FRONTEND_US_GOALS = (("echo-json", "batch 1", 30.0), ("echo-batch8", "batch 8", 15.0))
LOG_MODE = "echo-json-logmetrics"
PATH_SCENARIOS = ("echo-json", "echo-batch8", "echo-binary", LOG_MODE)


def _us(value: float) -> str:
    return f"{value:.1f} us"


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _frontend_system_us(point: Point) -> float | None:
    """The system part of a point's frontend CPU per request (None for a run that did not record it)."""
    per_role = point.get("system_us_per_request", {})
    values = [v for role, v in per_role.items() if role.startswith("frontend")]
    return None if not values or any(v is None for v in values) else sum(values)


def with_floor(found: Goal, ours: Point | None, floor: Point | None) -> Goal:
    """A frontend CPU goal with what it is made of: its system part (the sockets' cost, which no code of ours can
    lower below what the same system calls cost a minimal program), and the floor measured in the same run, the
    raw hop (parser, one msgpack frame each way, one write: callbacks only, no router, queue, metrics or log)."""
    parts = []
    system = _frontend_system_us(ours) if ours else None
    if system is not None:
        parts.append(f"system {system:.1f} us of it")
    if floor is not None:
        floor_us = role_us(floor)[0]
        floor_system = _frontend_system_us(floor)
        if floor_us is not None:
            shown = f"{floor_us:.1f} us" + (f", system {floor_system:.1f}" if floor_system is not None else "")
            parts.append(f"floor, the raw hop's frontend in this run: {shown}")
    if not parts or found.value is None:
        return found
    return dataclasses.replace(found, note="; ".join(parts))


def path_goals(report: dict[str, Any]) -> list[Goal]:
    points = report["points"]

    def at(scenario: str, target: str, concurrency: int) -> tuple[Point | None, list[str]]:
        point = find_point(points, scenario, target, concurrency)
        return point, [] if point else [why_absent(report, target, scenario)]

    def compare(scenario: str, concurrency: int, key: str) -> tuple[float | None, list[str]]:
        mine, mine_missing = at(scenario, OURS, concurrency)
        theirs, theirs_missing = at(scenario, MOSEC, concurrency)
        value = ratio(mine[key] if mine else None, theirs[key] if theirs else None)
        return value, mine_missing + theirs_missing

    found: list[Goal] = []
    value, missing = compare("echo-batch8", 64, "requests_per_s")
    found.append(
        goal(
            "echo JSON, batch 8, c=64: req/s, ours / Mosec",
            ">= 1.5x",
            value,
            lambda v: v >= 1.5,
            times,
            missing,
            ("echo-batch8",),
        )
    )
    value, missing = compare("echo-binary", 16, "requests_per_s")
    found.append(
        goal(
            "100 KiB binary echo, c=16: req/s, ours / Mosec",
            ">= 1.2x",
            value,
            lambda v: v >= 1.2,
            times,
            missing,
            ("echo-binary",),
        )
    )
    value, missing = compare("echo-json", 64, "p99_ms")
    found.append(
        goal(
            "echo JSON, batch 1, c=64: p99, ours / Mosec",
            "<= 1x",
            value,
            lambda v: v <= 1,
            times,
            missing,
            ("echo-json",),
        )
    )
    for scenario, label, budget in FRONTEND_US_GOALS:
        point, missing = at(scenario, OURS, 64)
        frontend = role_us(point)[0] if point else None
        if point is not None and frontend is None:
            missing = ["no frontend CPU measured"]
        found.append(
            with_floor(
                goal(
                    f"echo JSON, {label}, c=64: frontend CPU per request, ours",
                    f"<= {budget:.0f} us",
                    frontend,
                    lambda v, budget=budget: v <= budget,
                    _us,
                    missing,
                    (scenario,),
                ),
                point,
                find_point(points, scenario, RAW_HOP, 64),
            )
        )
    value, missing = _own_ratio(report, "requests_per_s")
    found.append(
        goal(
            "echo JSON, batch 1, c=64: req/s, log metrics mode / prometheus",
            ">= 90%",
            value,
            lambda v: v >= 0.9,
            _pct,
            missing,
            (LOG_MODE,),
        )
    )
    value, missing = _own_ratio(report, "p99_ms")
    found.append(
        goal(
            "echo JSON, batch 1, c=64: p99, log metrics mode / prometheus",
            "<= 1.2x",
            value,
            lambda v: v <= 1.2,
            times,
            missing,
            (LOG_MODE,),
        )
    )
    ours = [p for p in points if p["target"] == OURS and p.get("kind") == "load" and p["scenario"] in PATH_SCENARIOS]
    errors = sum(failed_requests(p) for p in ours) if ours else None
    found.append(
        goal(
            "echo JSON (batch 1, 8, log mode) and 100 KiB echo, every load point: errors + non-2xx, ours",
            "0",
            None if errors is None else float(errors),
            lambda v: v == 0,
            lambda v: f"{v:.0f}",
            [] if ours else ["no load point of ours"],
            PATH_SCENARIOS,
        )
    )
    return found


def _own_ratio(report: dict[str, Any], key: str) -> tuple[float | None, list[str]]:
    """Ours in the ``log`` metrics mode against ours in Prometheus mode (``echo-json``), at c=64: the median of the
    rounds that alternated the two servers when the point was measured so, else the two points' ratio."""
    points = report["points"]
    log_point = find_point(points, LOG_MODE, OURS, 64)
    paired = log_point.get("paired") if log_point else None
    if paired is not None:
        value = paired["requests_per_s_ratio" if key == "requests_per_s" else "p99_ratio"]
        return value, [] if value is not None else ["no paired round measured"]
    prom_point = find_point(points, "echo-json", OURS, 64)
    missing = [why_absent(report, OURS, s) for s, p in ((LOG_MODE, log_point), ("echo-json", prom_point)) if not p]
    value = ratio(log_point[key] if log_point else None, prom_point[key] if prom_point else None)
    return value, missing
