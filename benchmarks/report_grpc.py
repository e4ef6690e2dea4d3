"""The gRPC goals (issue 17's acceptance), computed from one run's points: the Open Inference Protocol's
``ModelInfer`` over gRPC, for each of our two ways of serving the KServe echo model (a model store with a worker
process, and a KServe script with our ``ModelServer``), against KServe 0.21's own gRPC server with the same model
file: at least 2x its calls per second on the small tensor and on the 1 MiB one, each at the highest concurrency
measured. The ``grpc.aio echo`` rows are a ceiling to read beside them (what grpc.aio and protobuf cost alone),
not a goal."""

from __future__ import annotations

from typing import Any

from .report_points import KSERVE, KSERVE_OURS, Goal, find_point, goal, ratio, times, why_absent
from .scenarios import SCENARIOS_BY_NAME

GRPC_GOALS = (("grpc-small", "gRPC ModelInfer, small FP32"), ("grpc-1mb", "gRPC ModelInfer, 1 MiB FP32"))
GRPC_RATIO = 2.0


def grpc_goals(report: dict[str, Any]) -> list[Goal]:
    points = report["points"]
    found: list[Goal] = []
    for ours in KSERVE_OURS:
        for scenario, label in GRPC_GOALS:
            concurrency = max(SCENARIOS_BY_NAME[scenario].concurrency)
            mine = find_point(points, scenario, ours, concurrency)
            theirs = find_point(points, scenario, KSERVE, concurrency)
            missing = [why_absent(report, target, scenario) for target, p in ((ours, mine), (KSERVE, theirs)) if not p]
            value = ratio(mine["requests_per_s"] if mine else None, theirs["requests_per_s"] if theirs else None)
            found.append(
                goal(
                    f"{label}, c={concurrency}: calls/s, {ours} / KServe",
                    f">= {GRPC_RATIO:g}x",
                    value,
                    lambda v: v >= GRPC_RATIO,
                    times,
                    missing,
                    (scenario,),
                )
            )
    return found
