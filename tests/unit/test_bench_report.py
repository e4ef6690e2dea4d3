"""The benchmark report: the targets computed as ratios from the points, and the Markdown with targets missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.report import add_ceiling_shares, failed_requests, goals, render_markdown, write


def load(target: str, scenario: str, concurrency: int, rps: float, p99: float = 10.0, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "load",
        "target": target,
        "scenario": scenario,
        "concurrency": concurrency,
        "requests_per_s": rps,
        "p50_ms": p99 / 2,
        "p90_ms": p99 * 0.9,
        "p99_ms": p99,
        "errors": 0,
        "non_2xx": 0,
        "client_cpu_pct": 40.0,
        "other_cpu_pct": 1.0,
        "cpu_us_per_request": {"frontend": 90.0, "worker": 40.0} if target != "bare aiohttp" else {"server": 30.0},
        **extra,
    }


def stream(target: str, first_delay_p50: float) -> dict[str, Any]:
    stats = {"p50": first_delay_p50, "p99": first_delay_p50 * 3, "mean": first_delay_p50}
    return {
        "kind": "stream",
        "target": target,
        "scenario": "stream",
        "concurrency": 1,
        "requests": 200,
        "complete": 200,
        "errors": 0,
        "first_piece_ms": stats,
        "first_piece_delay_ms": stats,
        "piece_delay_mean_ms": stats,
        "arrival_gap_mean_ms": 0.01,
        "handler_gap_mean_ms": 0.02,
        "separate_share": 0.0,
        "chunks_mean": 10.0,
        "other_cpu_pct": 0.0,
        "cpu_us_per_request": {"frontend": 300.0, "worker": 150.0},
    }


def report(points: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "generated_at": "2026-01-01 00:00:00 UTC",
        "machine": {"cpu_model": "Test CPU", "cores": 2, "cores_usable": 2, "python": "3.11", "platform": "Linux"},
        "packages": {"aiohttp": "3"},
        "git": {"commit": "0" * 40, "changed_server_files": []},
        "pinning": "not pinned (test)",
        "client": {"name": "aiohttp", "description": "aiohttp client", "note": "requested"},
        "settings": {
            "duration": 5.0,
            "warmup": 2.0,
            "repeats": 3,
            "stream_requests": 200,
            "stream_warmup": 20,
            "scenarios": ["echo-json", "echo-binary", "cost10ms-batch8", "stream", "digits"],
            "peers": ["torchserve", "mosec"],
            "quick": False,
        },
        "targets": {"modelserver": {"prepared": {"version": "0.1.0"}}, "bare aiohttp": {"prepared": {}}},
        "skipped": [],
        "starts": [],
        "points": points,
    }
    base.update(changes)
    return base


def full_points() -> list[dict[str, Any]]:
    return [
        load("modelserver", "echo-json", 64, 6000.0, p99=20.0),
        load("torchserve", "echo-json", 64, 900.0, p99=80.0),
        load("mosec", "echo-json", 64, 5000.0),
        load("bare aiohttp", "echo-json", 64, 8000.0),
        load("modelserver", "cost10ms-batch8", 64, 780.0, efficiency=0.975),
        *(load("modelserver", "echo-binary", c, rps) for c, rps in ((1, 900.0), (16, 1800.0), (64, 1900.0))),
        *(load("bare aiohttp", "echo-binary", c, rps) for c, rps in ((1, 1500.0), (16, 4000.0), (64, 3000.0))),
        stream("modelserver", 0.4),
    ]


def by_label(report_: dict[str, Any]) -> dict[str, Any]:
    return {goal.label: goal for goal in goals(report_)}


def test_goals_are_ratios_of_the_measured_points() -> None:
    found = by_label(report(full_points()))
    vs_torchserve = found["echo JSON, batch 1, c=64: req/s, ours / TorchServe"]
    assert abs(vs_torchserve.value - 6000 / 900) < 1e-9 and vs_torchserve.passed and vs_torchserve.shown == "6.67x"
    assert found["echo JSON, batch 1, c=64: req/s, ours / Mosec"].passed
    ceiling = found["echo JSON, batch 1, c=64: req/s, ours / bare aiohttp"]
    assert ceiling.value == 6000 / 8000 and ceiling.passed and ceiling.goal == ">= 70%"
    assert found["echo JSON, batch 1, c=64: p99, ours / TorchServe"].value == 0.25
    assert found["echo JSON, batch 1, c=64: errors + non-2xx, ours"].passed
    assert found["10 ms handler, batch 8, c=64: req/s / ideal 800"].value == 780 / 800
    assert found["10 ms handler, batch 8, c=64: req/s / ideal 800"].passed
    binary = found["100 KiB binary echo: req/s, ours / bare aiohttp, lowest over c=1,16,64"]
    assert binary.value == 1800 / 4000 and binary.passed is False  # the lowest share decides
    assert found["streaming: first piece, handler to client, p50"].passed


def test_a_miss_is_computed_not_assumed() -> None:
    points = full_points()
    points[1]["requests_per_s"] = 2000.0  # ours is only 3x TorchServe
    points[0]["errors"] = 1
    found = by_label(report(points))
    assert found["echo JSON, batch 1, c=64: req/s, ours / TorchServe"].passed is False
    assert found["echo JSON, batch 1, c=64: errors + non-2xx, ours"].passed is False


def test_a_missing_peer_is_not_applicable_with_its_reason() -> None:
    points = [p for p in full_points() if p["target"] != "torchserve"]
    skipped = [{"target": "torchserve", "scenario": None, "reason": "java not found"}]
    targets = {"modelserver": {"prepared": {}}, "torchserve": {"unavailable": "java not found"}}
    found = by_label(report(points, skipped=skipped, targets=targets))
    goal = found["echo JSON, batch 1, c=64: req/s, ours / TorchServe"]
    assert goal.passed is None and goal.value is None and "java not found" in goal.note


def test_failed_requests_include_the_checked_sample() -> None:
    point = load("modelserver", "echo-json", 1, 100.0, errors=1, non_2xx=2)
    point["body_check"] = {"checked": 20, "mismatches": 3, "non_2xx": 0, "failures": 1}
    assert failed_requests(point) == 7


def test_ceiling_shares_match_scenario_and_concurrency() -> None:
    points = full_points()
    add_ceiling_shares(points)
    shares = {(p["target"], p["scenario"], p["concurrency"]): p.get("ceiling_share") for p in points}
    assert shares[("modelserver", "echo-binary", 16)] == 0.45
    assert shares[("bare aiohttp", "echo-json", 64)] == 1.0
    assert shares[("modelserver", "cost10ms-batch8", 64)] is None


def test_markdown_renders_with_peers_missing_and_scenarios_skipped(tmp_path: Path) -> None:
    points = [p for p in full_points() if p["target"] in ("modelserver", "bare aiohttp")]
    rep = report(
        points,
        targets={
            "modelserver": {"prepared": {"version": "0.1.0"}},
            "torchserve": {"unavailable": "java not found"},
            "mosec": {"unavailable": "cannot load benchmarks.targets.mosec.MosecPeer"},
            "bare aiohttp": {"prepared": {}},
        },
        skipped=[
            {"target": "torchserve", "scenario": None, "reason": "java not found"},
            {"target": "modelserver", "scenario": "digits", "reason": "digits model unavailable: no torch"},
        ],
        starts=[{"target": "modelserver", "scenario": "digits", "start_s": None, "batching": None}],
    )
    text = render_markdown(rep)
    assert "torchserve: **not run**: java not found" in text
    assert "n/a (torchserve not run: java not found)" in text
    assert "digits model unavailable: no torch" in text
    assert "| modelserver | 64 | 6000 | 75% |" in render_markdown({**rep, "points": _shared(points)})
    written = write(rep, tmp_path, plot=None)
    assert [path.name for path in written] == ["latest.md", "latest.json"]
    assert json.loads((tmp_path / "latest.json").read_text())["goals"][0]["passed"] is None


def _shared(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    add_ceiling_shares(points)
    return points


def test_footprint_row_takes_the_echo_starts_in_target_order() -> None:
    from benchmarks.plot import footprints

    starts = [
        {"target": "torchserve", "scenario": "echo-json", "start_s": 2.6, "rss_idle_mb": {"frontend": 185.0}},
        {"target": "modelserver", "scenario": "digits", "start_s": 0.9},
        {"target": "modelserver", "scenario": "echo-json", "start_s": 0.3, "rss_idle_mb": {"frontend": 45.0}},
        {"target": "mosec", "scenario": "echo-json", "start_s": None},  # did not start: no bar
    ]
    assert [(s["target"], s["start_s"]) for s in footprints({"starts": starts})] == [
        ("modelserver", 0.3),
        ("torchserve", 2.6),
    ]
