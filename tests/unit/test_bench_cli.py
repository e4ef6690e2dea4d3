"""The benchmark's command line, the targets' pure parts, and the bench extra's pin."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest

from benchmarks.cli import DEFAULTS, QUICK, parse_args
from benchmarks.install import BENCH_REQUIREMENTS
from benchmarks.scenarios import JSON_BODY, SCENARIOS, SCENARIOS_BY_NAME, digit_answer
from benchmarks.targets.bare import BarePeer
from benchmarks.targets.modelserver import config_properties

ROOT = Path(__file__).resolve().parents[2]


def test_no_subcommand_means_run_with_the_defaults() -> None:
    args = parse_args([])
    assert args.command == "run" and args.scenario == SCENARIOS and args.peers == () and args.client == "auto"
    assert (args.duration, args.warmup, args.repeats) == (DEFAULTS["duration"], DEFAULTS["warmup"], DEFAULTS["repeats"])


def test_quick_sets_short_defaults_but_explicit_options_win() -> None:
    args = parse_args(["run", "--quick", "--repeats", "2", "--scenario", "echo-json,stream", "--peers", "all"])
    assert args.duration == QUICK["duration"] and args.repeats == 2
    assert [s.name for s in args.scenario] == ["echo-json", "stream"]
    assert args.peers == ("torchserve", "mosec", "kserve")
    assert parse_args(["--peers", "none"]).peers == ()


@pytest.mark.parametrize("argv", [["--scenario", "nope"], ["--peers", "triton"], ["--repeats", "0"]])
def test_bad_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_the_bench_extra_pins_what_the_runner_installs() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    extra = [line.strip() for line in config["options.extras_require"]["bench"].splitlines() if line.strip()]
    assert tuple(extra) == BENCH_REQUIREMENTS


def test_bare_echo_runs_only_the_echo_scenarios() -> None:
    peer = BarePeer()
    runs = {s.name for s in SCENARIOS if peer.unsupported(s) is None}
    assert runs == {"echo-json", "echo-binary", "echo-batch8"}


def test_modelserver_config_has_the_scenario_batching_and_the_bundled_settings() -> None:
    scenario = SCENARIOS_BY_NAME["cost10ms-batch8"]
    addresses = {key: f"http://127.0.0.1:{port}" for key, port in (("inference", 1), ("management", 2), ("metrics", 3))}
    text = config_properties(scenario, "cost", "1.0", "cost", Path("/store"), addresses)
    properties = dict(line.split("=", 1) for line in text.splitlines())
    assert properties["disable_token_authorization"] == "true"
    assert properties["metrics_mode"] == "prometheus"
    assert properties["load_models"] == "cost=cost"
    models = json.loads(properties["models"])
    assert models == {"cost": {"1.0": {"minWorkers": 1, "maxWorkers": 1, "batchSize": 8, "maxBatchDelay": 5}}}


def test_digit_answers_are_keyed_by_class_name() -> None:
    assert digit_answer(b'{"eight": 0.99, "six": 0.01}')
    assert digit_answer(b'{"8": 1.0}')
    assert not digit_answer(b'{"cat": 0.5}')
    assert not digit_answer(JSON_BODY)
    assert not digit_answer(b"not json")


def test_a_peer_that_cannot_be_imported_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import runner
    from benchmarks.targets.base import Unavailable

    monkeypatch.setitem(runner.OPTIONAL_PEERS, "nothing", ("benchmarks.targets.no_such_peer", "NoPeer"))
    with pytest.raises(Unavailable, match="no_such_peer"):
        runner.load_peer("nothing")
