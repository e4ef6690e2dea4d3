"""``frontend_processes`` and TorchServe's ``number_of_netty_threads``: how many frontend processes, clamped to the
CPUs; and each frontend's share of a model's workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelserver.config import CliOptions, ConfigError, load_config
from modelserver.frontend_plan import cpu_limit, frontend_count, worker_share


def test_one_frontend_unless_configured() -> None:
    count = frontend_count({}, cpus=8)
    assert (count.count, count.source) == (1, "default")
    assert frontend_count({"number_of_netty_threads": "0"}, cpus=8).count == 1  # TorchServe's default: not a choice


def test_frontend_processes_is_clamped_to_the_cpus() -> None:
    assert frontend_count({"frontend_processes": "2"}, cpus=8).count == 2
    clamped = frontend_count({"frontend_processes": "16"}, cpus=4)
    assert clamped.count == 4
    assert "clamped to the 4 CPU(s)" in clamped.describe()


def test_netty_threads_map_onto_frontend_processes_only_when_it_is_not_set() -> None:
    mapped = frontend_count({"number_of_netty_threads": "32"}, cpus=2)
    assert (mapped.count, mapped.source, mapped.asked) == (2, "number_of_netty_threads", 32)
    assert "TorchServe's frontend threads" in mapped.describe()
    both = {"number_of_netty_threads": "32", "frontend_processes": "1"}
    assert frontend_count(both, cpus=8).count == 1


@pytest.mark.parametrize(
    "properties",
    [{"frontend_processes": "0"}, {"frontend_processes": "two"}, {"number_of_netty_threads": "many"}],
)
def test_malformed_counts_name_their_key(properties: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(properties))):
        frontend_count(properties, cpus=4)


def test_cpu_limit_follows_the_cgroup_quota(tmp_path: Path) -> None:
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # a container limited to 1.5 CPUs may keep 2 busy at times
    assert cpu_limit(quota) == min(2, cpu_limit(tmp_path / "missing"))
    quota.write_text("max 100000\n")
    assert cpu_limit(quota) == cpu_limit(tmp_path / "missing")


@pytest.mark.parametrize(
    ("count", "frontends", "shares"),
    [(0, 2, [0, 0]), (1, 2, [1, 1]), (2, 2, [1, 1]), (3, 2, [2, 1]), (5, 3, [2, 2, 1]), (4, 1, [4])],
)
def test_worker_share(count: int, frontends: int, shares: list[int]) -> None:
    assert [worker_share(count, index, frontends) for index in range(frontends)] == shares


def test_config_key_and_flag(tmp_path: Path) -> None:
    (tmp_path / "config.properties").write_text("frontend_processes=1\n")
    cwd = str(tmp_path)
    assert load_config(CliOptions(), {}, cwd=cwd).frontend_processes == 1
    flagged = load_config(CliOptions(frontend_processes=2), {}, cwd=cwd)
    assert flagged.frontend_processes == min(2, cpu_limit())
    assert flagged.properties["frontend_processes"] == "2"
    (tmp_path / "config.properties").write_text("enable_envvars_config=true\n")
    from_env = load_config(CliOptions(), {"TS_FRONTEND_PROCESSES": "2"}, cwd=cwd)
    assert from_env.frontend_processes == min(2, cpu_limit())
