"""The ``frontends-*`` scenarios: this server alone, with one and two frontend processes, nothing pinned."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report_points import role_us
from benchmarks.runner import UNPINNED
from benchmarks.scenarios import FRONTEND_SCENARIOS, SCENARIOS_BY_NAME
from benchmarks.targets.bare import BarePeer
from benchmarks.targets.ceilings import HopEchoPeer, RawEchoPeer, RawHopPeer
from benchmarks.targets.kserve import KServePeer
from benchmarks.targets.modelserver import ModelServerPeer, config_properties
from benchmarks.targets.modelserver_script import ModelServerScriptPeer
from benchmarks.targets.mosec import MosecPeer
from benchmarks.targets.torchserve import TorchServePeer

ADDRESSES = {key: f"http://127.0.0.1:{port}" for key, port in (("inference", 1), ("management", 2), ("metrics", 3))}


def test_two_scenarios_with_the_same_workers_and_one_or_two_frontends() -> None:
    assert FRONTEND_SCENARIOS == ("frontends-1", "frontends-2")
    one, two = (SCENARIOS_BY_NAME[name] for name in FRONTEND_SCENARIOS)
    assert (one.frontend_processes, two.frontend_processes) == (1, 2)
    assert one.workers == two.workers == 2
    assert one.unpinned and two.unpinned and not SCENARIOS_BY_NAME["echo-json"].unpinned
    assert UNPINNED.server_prefix == () and UNPINNED.client_cpus is None


def test_config_of_the_frontends_scenarios() -> None:
    for name, frontends in (("frontends-1", "1"), ("frontends-2", "2")):
        text = config_properties(SCENARIOS_BY_NAME[name], "echo", "1.0", "echo", Path("/store"), ADDRESSES)
        lines = dict(line.split("=", 1) for line in text.splitlines())
        assert lines["frontend_processes"] == frontends
        assert json.loads(lines["models"])["echo"]["1.0"]["minWorkers"] == 2
    echo = config_properties(SCENARIOS_BY_NAME["echo-json"], "echo", "1.0", "echo", Path("/store"), ADDRESSES)
    assert "frontend_processes" not in echo


def test_only_this_server_runs_them() -> None:
    for name in FRONTEND_SCENARIOS:
        scenario = SCENARIOS_BY_NAME[name]
        assert ModelServerPeer().unsupported(scenario) is None
        others = [TorchServePeer(), MosecPeer(), KServePeer(), ModelServerScriptPeer(), BarePeer()]
        others += [RawEchoPeer(), HopEchoPeer(), RawHopPeer()]
        assert all(peer.unsupported(scenario) for peer in others)


def test_cpu_per_request_adds_the_frontends_and_the_workers() -> None:
    point = {"cpu_us_per_request": {"supervisor": 0.1, "frontend 0": 60.0, "frontend 1": 55.0, "worker 0": 40.0}}
    assert role_us(point) == (115.0, 40.0)
    assert role_us({"cpu_us_per_request": {"frontend": 70.0, "worker 0": 30.0, "worker 1": 31.0}}) == (70.0, 61.0)
    assert role_us({"cpu_us_per_request": {"frontend 0": 60.0, "frontend 1": None}}) == (None, None)
