"""What the report reads from a run's points, and the shape of a goal: shared by the Markdown (``report.py``) and
the goal modules (``report.py``'s own, ``report_path.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OURS, OURS_SCRIPT, CEILING = "modelserver", "modelserver-script", "bare aiohttp"
RAW, HOP, RAW_HOP, GRPC_CEILING = "raw httptools", "aiohttp hop", "raw hop", "grpc.aio echo"
NATIVE_CEILING = "native h2 echo"
TORCHSERVE, MOSEC, KSERVE = "torchserve", "mosec", "kserve"
TARGET_ORDER = (OURS, OURS_SCRIPT, TORCHSERVE, MOSEC, KSERVE, CEILING, GRPC_CEILING, NATIVE_CEILING, HOP, RAW_HOP, RAW)
KSERVE_OURS = (OURS, OURS_SCRIPT)
"""Both ways of serving a KServe model here get their own rows of KServe targets: from a model store (worker
process) and as a script with our ``ModelServer`` (in-process); a user picks one, so neither may hide the other."""
NOISY_OTHER_CPU_PCT = 10.0
"""A row during which the rest of the machine used more than this (% of one core) is marked as disturbed."""
Point = dict[str, Any]


# -- reading points -------------------------------------------------------------------------------------------------


def failed_requests(point: Point) -> int:
    """Errors, non-2xx answers and bad bodies in a point's reported run (and in the sample checked after wrk)."""
    check = point.get("body_check", {})
    sample = check.get("mismatches", 0) + check.get("non_2xx", 0) + check.get("failures", 0)
    return point.get("errors", 0) + point.get("non_2xx", 0) + sample


def find_point(points: list[Point], scenario: str, target: str, concurrency: int | None = None) -> Point | None:
    for point in points:
        same = point["scenario"] == scenario and point["target"] == target
        if same and (concurrency is None or point.get("concurrency") == concurrency):
            return point
    return None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def ceiling_of(scenario: str) -> str:
    """The ceiling a scenario's rows are a share of: the grpc.aio echo for the gRPC scenarios, else the bare
    aiohttp echo."""
    return GRPC_CEILING if scenario.startswith("grpc-") else CEILING


def add_ceiling_shares(points: list[Point]) -> None:
    """Each load point's requests/s as a share of its ceiling's (:func:`ceiling_of`) in the same scenario at the same
    concurrency."""
    for point in points:
        if point.get("kind") != "load":
            continue
        ceiling = find_point(points, point["scenario"], ceiling_of(point["scenario"]), point["concurrency"])
        share = ratio(point["requests_per_s"], ceiling["requests_per_s"] if ceiling else None)
        point["ceiling_share"] = None if share is None else round(share, 4)


def role_us(point: Point) -> tuple[float | None, float | None]:
    """Frontend (or the bare server) and worker CPU microseconds per request; frontends and workers summed."""
    per_role = point.get("cpu_us_per_request", {})
    frontends = [v for role, v in per_role.items() if role.startswith("frontend")]  # "frontend", or "frontend 0", ...
    frontend = per_role.get("server") if not frontends or any(v is None for v in frontends) else sum(frontends)
    workers = [v for role, v in per_role.items() if role.startswith("worker")]
    worker = None if not workers or any(v is None for v in workers) else sum(workers)
    return frontend, worker


def why_absent(report: dict[str, Any], target: str, scenario: str) -> str:
    """The recorded reason a target has no result for a scenario."""
    for skip in report.get("skipped", []):
        if skip["target"] == target and skip["scenario"] in (None, scenario):
            return f"{target} not run: {skip['reason']}"
    if target not in report.get("targets", {}):
        return f"{target} not requested"
    if scenario not in report.get("settings", {}).get("scenarios", []):
        return f"scenario {scenario} not run"
    return f"no {target} result"


# -- the project's targets, as computed ratios ---------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    label: str
    goal: str
    value: float | None
    shown: str
    passed: bool | None
    """None when a needed result is missing (``note`` says why)."""
    note: str = ""
    scenarios: tuple[str, ...] = ()
    """The scenarios it is computed from: a goal is listed only when one of them was selected for the run."""


def goal(
    label: str,
    goal: str,
    value: float | None,
    test: Callable[[float], bool],
    fmt: Callable[[float], str],
    missing: list[str],
    scenarios: tuple[str, ...] = (),
) -> Goal:
    if value is None:
        return Goal(label, goal, None, "-", None, "; ".join(dict.fromkeys(missing)) or "no result", scenarios)
    return Goal(label, goal, value, fmt(value), test(value), scenarios=scenarios)


def times(value: float) -> str:
    return f"{value:.2f}x"
