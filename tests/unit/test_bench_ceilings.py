"""The two extra ceilings (the raw httptools echo and the aiohttp -> worker hop), the log-metrics scenario, and the
request path's goals (issue 12's acceptance) computed from a run's points."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from benchmarks.clients import AIOHTTP
from benchmarks.hop_echo import frame, split_frames
from benchmarks.measure import Settings, paired_load_point
from benchmarks.procs import Managed, Pinning
from benchmarks.report import goals
from benchmarks.scenarios import SCENARIOS, SCENARIOS_BY_NAME, binary_body
from benchmarks.targets.bare import BarePeer
from benchmarks.targets.ceilings import HopEchoPeer, RawEchoPeer
from benchmarks.targets.modelserver import ModelServerPeer, config_properties
from benchmarks.targets.mosec import MosecPeer
from tests.unit.test_bench_report import load, report

NO_PINNING = Pinning((), None, "not pinned (test)")


@pytest.mark.parametrize("peer", [RawEchoPeer(), HopEchoPeer()])
def test_ceilings_run_the_echo_scenarios_only(peer: RawEchoPeer | HopEchoPeer) -> None:
    runs = {s.name for s in SCENARIOS if peer.unsupported(s) is None}
    assert runs == {s.name for s in SCENARIOS if BarePeer().unsupported(s) is None}
    assert runs == {"echo-json", "echo-binary", "echo-batch8"}


def test_the_log_metrics_scenario_runs_on_this_server_only_in_log_mode() -> None:
    scenario = SCENARIOS_BY_NAME["echo-json-logmetrics"]
    assert ModelServerPeer().unsupported(scenario) is None
    assert MosecPeer().unsupported(scenario) and BarePeer().unsupported(scenario)
    addresses = {key: f"http://127.0.0.1:{port}" for key, port in (("inference", 1), ("management", 2), ("metrics", 3))}
    text = config_properties(scenario, "echo", "1.0", "echo", Path("/store"), addresses)
    assert "metrics_mode=log\n" in text
    assert "metrics_mode=prometheus\n" in config_properties(
        SCENARIOS_BY_NAME["echo-json"], "echo", "1.0", "echo", Path("/store"), addresses
    )


def test_hop_frames_split_only_when_complete() -> None:
    wire = frame({"id": 1, "body": b"a"}) + frame({"id": 2, "body": b"b" * 300})
    buffer = bytearray(wire[:-5])
    assert split_frames(buffer) == [{"id": 1, "body": b"a"}]
    buffer += wire[-5:]
    assert split_frames(buffer) == [{"id": 2, "body": b"b" * 300}] and not buffer


def raw_exchange(url: str, requests: bytes, answers: int) -> bytes:
    """Sends ``requests`` in one write and reads until ``answers`` complete answers arrived."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(requests)
        received = b""
        while received.count(b"HTTP/1.1 200") < answers or not received.endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            received += data
    return received


@pytest.mark.parametrize("peer", [RawEchoPeer(), HopEchoPeer()])
def test_ceilings_echo_binary_and_pipelined_json(peer: RawEchoPeer | HopEchoPeer, tmp_path: Path) -> None:
    """Started as the runner starts them: they answer the scenario's own check (the start waits for it), echo two
    pipelined requests in order, and leave no process behind."""
    started: list[Managed] = []
    try:
        binary = peer.start(SCENARIOS_BY_NAME["echo-binary"], tmp_path, NO_PINNING, started, print)
        assert binary.start_s is not None and len(binary_body()) == 100 * 1024
        path = binary.url.split("/", 3)[3]
        one = b'POST /%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{"n": %d}'
        answer = raw_exchange(binary.url, one % (path.encode(), 1) + one % (path.encode(), 2), 2)
        assert answer.index(b'{"n": 1}') < answer.index(b'{"n": 2}')
        if isinstance(peer, HopEchoPeer):
            assert set(binary.pids) == {"frontend", "worker"} and binary.pids["worker"] != binary.pids["frontend"]
        else:
            assert set(binary.pids) == {"server"}
    finally:
        for managed in started:
            managed.stop()
    for pid in binary.pids.values():
        assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def path_points() -> list[dict]:
    return [
        load("modelserver", "echo-json", 64, 6000.0, p99=9.0, cpu_us_per_request={"frontend": 28.0, "worker": 9.0}),
        load("mosec", "echo-json", 64, 5000.0, p99=10.0),
        load("modelserver", "echo-batch8", 64, 30000.0, cpu_us_per_request={"frontend": 16.0, "worker": 3.0}),
        load("mosec", "echo-batch8", 64, 19000.0),
        load("modelserver", "echo-binary", 16, 7000.0),
        load("mosec", "echo-binary", 16, 6000.0),
        load("modelserver", "echo-json-logmetrics", 64, 5500.0, p99=11.0),
    ]


def test_path_goals_are_ratios_of_the_measured_points() -> None:
    rep = report(path_points())
    rep["settings"]["scenarios"] = ["echo-json", "echo-batch8", "echo-binary", "echo-json-logmetrics"]
    found = {goal.label: goal for goal in goals(rep)}
    batch8 = found["echo JSON, batch 8, c=64: req/s, ours / Mosec"]
    assert batch8.value == 30000 / 19000 and batch8.passed
    binary = found["100 KiB binary echo, c=16: req/s, ours / Mosec"]
    assert binary.value == 7000 / 6000 and binary.passed is False
    assert found["echo JSON, batch 1, c=64: p99, ours / Mosec"].value == 0.9
    one = found["echo JSON, batch 1, c=64: frontend CPU per request, ours"]
    assert one.value == 28.0 and one.passed and one.shown == "28.0 us"
    eight = found["echo JSON, batch 8, c=64: frontend CPU per request, ours"]
    assert eight.value == 16.0 and eight.passed is False
    log_rps = found["echo JSON, batch 1, c=64: req/s, log metrics mode / prometheus"]
    assert log_rps.value == 5500 / 6000 and log_rps.passed
    log_p99 = found["echo JSON, batch 1, c=64: p99, log metrics mode / prometheus"]
    assert log_p99.value == 11 / 9 and log_p99.passed is False
    assert found["echo JSON (batch 1, 8, log mode) and 100 KiB echo, every load point: errors + non-2xx, ours"].passed


def test_frontend_cpu_goals_name_their_system_part_and_the_floor_of_the_same_run() -> None:
    points = path_points()
    points[2]["system_us_per_request"] = {"frontend": 7.5, "worker": 0.5}
    points.append(
        load(
            "raw hop",
            "echo-batch8",
            64,
            60000.0,
            cpu_us_per_request={"frontend": 13.2, "worker": 3.1},
            system_us_per_request={"frontend": 7.2, "worker": 0.9},
        )
    )
    rep = report(points)
    rep["settings"]["scenarios"] = ["echo-json", "echo-batch8"]
    found = {goal.label: goal for goal in goals(rep)}
    eight = found["echo JSON, batch 8, c=64: frontend CPU per request, ours"]
    assert eight.value == 16.0 and eight.passed is False
    assert eight.note == "system 7.5 us of it; floor, the raw hop's frontend in this run: 13.2 us, system 7.2"
    one = found["echo JSON, batch 1, c=64: frontend CPU per request, ours"]
    assert one.note == ""  # neither a system part recorded nor a raw hop point at batch 1 in this report


def test_path_goals_say_what_is_missing() -> None:
    points = [p for p in path_points() if p["target"] != "mosec" and p["scenario"] != "echo-json-logmetrics"]
    points[0]["errors"] = 2
    rep = report(points)
    rep["settings"]["scenarios"] = ["echo-json", "echo-batch8"]
    found = {goal.label: goal for goal in goals(rep)}
    batch8 = found["echo JSON, batch 8, c=64: req/s, ours / Mosec"]
    assert batch8.passed is None and "mosec" in batch8.note
    assert "echo JSON, batch 1, c=64: req/s, log metrics mode / prometheus" not in found  # not selected
    errors = found["echo JSON (batch 1, 8, log mode) and 100 KiB echo, every load point: errors + non-2xx, ours"]
    assert errors.value == 2 and errors.passed is False


def test_log_mode_goals_take_the_paired_rounds_when_there_are_some() -> None:
    points = path_points()
    points[-1]["paired"] = {"scenario": "echo-json", "requests_per_s_ratio": 0.95, "p99_ratio": 1.1}
    rep = report(points)
    rep["settings"]["scenarios"] = ["echo-json", "echo-json-logmetrics"]
    found = {goal.label: goal for goal in goals(rep)}
    log_rps = found["echo JSON, batch 1, c=64: req/s, log metrics mode / prometheus"]
    assert log_rps.value == 0.95 and log_rps.passed  # not 5500 / 6000, the two points' ratio
    assert found["echo JSON, batch 1, c=64: p99, log metrics mode / prometheus"].value == 1.1


def test_a_paired_point_alternates_rounds_between_two_running_targets(tmp_path: Path) -> None:
    """Two raw echo servers started as the runner starts them, loaded in turn by the aiohttp client: each round has a
    run of each, and the ratios are those runs' ratios."""
    scenario = SCENARIOS_BY_NAME["echo-json"]
    settings = Settings(duration=0.3, warmup=0.0, repeats=3, stream_requests=0, stream_warmup=0)
    started: list[Managed] = []
    (tmp_path / "base").mkdir()
    (tmp_path / "other").mkdir()
    try:
        base = RawEchoPeer().start(scenario, tmp_path / "base", NO_PINNING, started, print)
        other = RawEchoPeer().start(scenario, tmp_path / "other", NO_PINNING, started, print)
        point = paired_load_point(other, scenario, base, scenario, AIOHTTP, 4, settings)
    finally:
        for managed in started:
            managed.stop()
    paired = point["paired"]
    assert len(point["runs"]) == len(paired["runs"]) == len(paired["requests_per_s_ratios"]) == 3
    assert all(run["requests"] > 0 and run["errors"] == 0 for run in point["runs"] + paired["runs"])
    expected = [
        round(a["requests_per_s"] / b["requests_per_s"], 4) for a, b in zip(point["runs"], paired["runs"], strict=True)
    ]
    assert paired["requests_per_s_ratios"] == expected
    assert paired["requests_per_s_ratio"] == sorted(expected)[1]
    assert point["scenario"] == "echo-json" and point["target"] == other.name and point["kind"] == "load"
