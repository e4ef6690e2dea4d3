"""``latest.png``: for each load scenario (the ``kserve-*`` ones included), throughput and p99 latency by concurrency,
one bar colour per target (this server, as a KServe script too, TorchServe, Mosec, KServe, the bare aiohttp ceiling);
then start time and memory with the echo model. matplotlib with the Agg backend (no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import TARGET_ORDER
from .scenarios import SCENARIOS_BY_NAME

COLOURS = {
    "modelserver": "#1f77b4",
    "modelserver-script": "#17becf",
    "torchserve": "#d62728",
    "mosec": "#2ca02c",
    "kserve": "#ff7f0e",
    "bare aiohttp": "#7f7f7f",
    "grpc.aio echo": "#8c564b",
    "native h2 echo": "#e377c2",
    "aiohttp hop": "#bcbd22",
    "raw httptools": "#c7c7c7",
    "raw hop": "#8c8c8c",
}
OTHER_COLOUR = "#9467bd"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in report["points"] if p["kind"] == "load"]
    scenarios = [s for s in report["settings"]["scenarios"] if any(p["scenario"] == s for p in points)]
    if not scenarios:
        scenarios = ["(no load results)"]
    starts = footprints(report)
    rows = len(scenarios) + (1 if starts else 0)
    figure, axes = plt.subplots(rows, 2, figsize=(12, 3.2 * rows), squeeze=False)
    for row, scenario in enumerate(scenarios):
        mine = [p for p in points if p["scenario"] == scenario]
        targets = sorted({p["target"] for p in mine}, key=lambda t: TARGET_ORDER.index(t) if t in TARGET_ORDER else 9)
        levels = sorted({p["concurrency"] for p in mine})
        width = 0.8 / max(len(targets), 1)
        spec = SCENARIOS_BY_NAME.get(scenario)
        for column, (key, label) in enumerate((("requests_per_s", "req/s"), ("p99_ms", "p99 ms"))):
            axis = axes[row][column]
            if log_scale([p.get(key) for p in mine]):
                axis.set_yscale("log")
                label += ", log scale"
            for index, target in enumerate(targets):
                by_level = {p["concurrency"]: p.get(key) or 0 for p in mine if p["target"] == target}
                xs = [i + (index - (len(targets) - 1) / 2) * width for i in range(len(levels))]
                axis.bar(
                    xs,
                    [by_level.get(level, 0) for level in levels],
                    width,
                    label=target,
                    color=COLOURS.get(target, OTHER_COLOUR),
                )
            if key == "requests_per_s" and spec is not None and spec.ideal_rps:
                axis.axhline(spec.ideal_rps, color="black", linestyle="--", linewidth=1, label="ideal")
            axis.set_xticks(range(len(levels)), [f"c={level}" for level in levels])
            axis.set_ylabel(label)
            axis.set_title(f"{scenario}: {label}", fontsize=9)
            axis.grid(axis="y", alpha=0.3)
            if targets:
                axis.legend(fontsize=7)
    if starts:
        plot_footprint(axes[-1], starts)
    figure.suptitle(f"Benchmark {report['generated_at']} (scenarios: see latest.md)", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.985))
    figure.savefig(path, dpi=90)
    plt.close(figure)


LOG_SCALE_SPREAD = 50.0


def log_scale(values: list[float | None]) -> bool:
    """A logarithmic axis when the bars differ more than :data:`LOG_SCALE_SPREAD` times (KServe's binary tensor
    against ours): on a linear one the small bars would not show."""
    shown = [v for v in values if v]
    return bool(shown) and max(shown) / min(shown) > LOG_SCALE_SPREAD


FOOTPRINT_SCENARIO = "echo-json"


def footprints(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The start records of the echo scenario, one per target that started, in the report's target order."""
    records = [s for s in report.get("starts", []) if s.get("scenario") == FOOTPRINT_SCENARIO and s.get("start_s")]
    return sorted(records, key=lambda s: TARGET_ORDER.index(s["target"]) if s["target"] in TARGET_ORDER else 9)


def plot_footprint(axes: Any, starts: list[dict[str, Any]]) -> None:
    """Start to first answer (s) and resident memory when idle (MB, stacked by process) per target."""
    names = [s["target"] for s in starts]
    colours = [COLOURS.get(name, OTHER_COLOUR) for name in names]
    left, right = axes
    left.bar(range(len(names)), [s["start_s"] for s in starts], color=colours)
    left.set_title(f"{FOOTPRINT_SCENARIO}: start to first answer", fontsize=9)
    left.set_ylabel("s")
    bottoms = [0.0] * len(names)
    for process in ("frontend", "server", "worker", "launcher"):
        heights = [float((s.get("rss_idle_mb") or {}).get(process) or 0) for s in starts]
        if any(heights):
            hatch = {"worker": "//", "launcher": ".."}.get(process)
            right.bar(range(len(names)), heights, bottom=bottoms, color=colours, hatch=hatch, edgecolor="white")
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    legend = "plain: frontend or server, //: worker, ..: launcher"
    right.set_title(f"{FOOTPRINT_SCENARIO}: idle memory, RSS ({legend})", fontsize=9)
    right.set_ylabel("MB")
    for axis in axes:
        axis.set_xticks(range(len(names)), names)
        axis.grid(axis="y", alpha=0.3)
