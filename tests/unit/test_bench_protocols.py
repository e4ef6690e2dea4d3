"""The MindSpore and Angel benchmark scenarios: who runs them, their bodies beside echo-json, their checks, and the
model they archive."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from benchmarks.scenarios import (
    JSON_BODY,
    MINDSPORE_TEXT,
    PROTOCOL_SCENARIOS,
    SCENARIOS_BY_NAME,
    angel_answer,
    mindspore_answer,
)
from benchmarks.targets.bare import BarePeer
from benchmarks.targets.kserve import KServePeer
from benchmarks.targets.modelserver import ModelServerPeer, build_store
from benchmarks.targets.modelserver_script import ModelServerScriptPeer
from benchmarks.targets.mosec import MosecPeer
from benchmarks.targets.torchserve import TorchServePeer


def test_protocol_scenarios_run_on_this_server_only() -> None:
    assert PROTOCOL_SCENARIOS == ("mindspore-json", "angel-json")
    for name in PROTOCOL_SCENARIOS:
        scenario = SCENARIOS_BY_NAME[name]
        assert ModelServerPeer().unsupported(scenario) is None
        for peer in (TorchServePeer(), MosecPeer(), BarePeer(), KServePeer(), ModelServerScriptPeer()):
            assert peer.unsupported(scenario)


def test_bodies_are_echo_json_s_size() -> None:
    for name in PROTOCOL_SCENARIOS:
        assert len(SCENARIOS_BY_NAME[name].body()) == len(JSON_BODY) == 109


def test_checks_accept_the_right_answers_only() -> None:
    assert mindspore_answer(json.dumps({"instances": [{"data": MINDSPORE_TEXT}]}).encode())
    assert not mindspore_answer(b'{"error_msg": "x"}')
    assert angel_answer(b'{"predictions":[{"sid":"u1","pred":"1.0","proba":"0.7","predLabel":"1"}]}')
    assert not angel_answer(b'{"error": "Missing \'instances\' key"}')
    assert not angel_answer(b'{"predictions": []}')


def test_the_store_archives_the_example_s_model_config(tmp_path: Path) -> None:
    name, version, entry = build_store(SCENARIOS_BY_NAME["angel-json"], tmp_path / "store")
    assert (name, entry) == ("lr", "lr")
    config = yaml.safe_load((tmp_path / "store" / "lr" / "model-config.yaml").read_text())
    assert config["protocol"] == "angel" and config["workerRuntime"] == "servable"
