"""The benchmark's point arithmetic: the median run, CPU per request, and the CPU shares between two snapshots."""

from __future__ import annotations

import pytest

from benchmarks.measure import CpuSnapshot, cpu_between, cpu_per_request, median_index


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([5.0], 0),
        ([3.0, 1.0, 2.0], 2),
        ([10.0, 30.0, 20.0], 2),
        ([4.0, 1.0, 3.0, 2.0], 3),  # even count: the lower middle value (2.0)
        ([7.0, 7.0, 7.0], 1),  # ties keep their order
    ],
)
def test_median_index_picks_the_median_run(values: list[float], expected: int) -> None:
    assert median_index(values) == expected


def test_median_index_needs_values() -> None:
    with pytest.raises(ValueError):
        median_index([])


def test_cpu_per_request_sums_runs_by_role() -> None:
    runs = [
        {"requests": 1000, "server_cpu_s": {"frontend": 0.1, "worker": 0.05}},
        {"requests": 3000, "server_cpu_s": {"frontend": 0.3, "worker": 0.15}},
    ]
    assert cpu_per_request(runs, lambda run: run["requests"]) == {"frontend": 100.0, "worker": 50.0}


def test_cpu_per_request_is_unknown_when_a_process_vanished_or_nothing_was_served() -> None:
    runs = [{"requests": 10, "server_cpu_s": {"frontend": 0.1, "worker": None}}]
    assert cpu_per_request(runs, lambda run: run["requests"]) == {"frontend": 10000.0, "worker": None}
    assert cpu_per_request(runs, lambda run: 0) == {"frontend": None, "worker": None}


def test_cpu_between_splits_the_machine_into_servers_client_and_other() -> None:
    before = CpuSnapshot(wall=0.0, machine=100.0, client=1.0, servers={"frontend": 2.0, "worker": 3.0})
    after = CpuSnapshot(wall=2.0, machine=103.0, client=1.5, servers={"frontend": 3.0, "worker": 3.5})
    shares = cpu_between(before, after)
    assert shares["server_cpu_s"] == {"frontend": 1.0, "worker": 0.5}
    assert shares["server_cpu_pct"] == {"frontend": 50.0, "worker": 25.0}
    assert shares["other_cpu_pct"] == 50.0  # 3 s busy - 1.5 s servers - 0.5 s client = 1 s over 2 s


def test_cpu_between_keeps_the_system_part_apart() -> None:
    before = CpuSnapshot(0.0, 0.0, 0.0, {"frontend": 2.0, "worker": 3.0}, {"frontend": 0.5, "worker": 1.0})
    after = CpuSnapshot(2.0, 3.0, 0.0, {"frontend": 3.0, "worker": None}, {"frontend": 0.9, "worker": None})
    shares = cpu_between(before, after)
    assert shares["server_system_s"] == {"frontend": 0.4, "worker": None}  # a process gone: unknown, not zero
    runs = [{**shares, "requests": 4000}]
    assert cpu_per_request(runs, lambda run: run["requests"], "server_system_s") == {"frontend": 100.0, "worker": None}
    assert cpu_per_request(runs, lambda run: run["requests"])["frontend"] == 250.0


def test_system_time_of_a_live_process_is_part_of_its_cpu_time() -> None:
    import os

    snapshot = CpuSnapshot.take({"me": os.getpid()})
    total, system = snapshot.servers["me"], snapshot.servers_system["me"]
    assert total is not None and system is not None and 0 <= system <= total
    gone = CpuSnapshot.take({"gone": 2**22 + 7})  # above any pid_max: no such process
    assert gone.servers == {"gone": None} and gone.servers_system == {"gone": None}


def test_cpu_between_never_reports_negative_other_cpu() -> None:
    before = CpuSnapshot(wall=0.0, machine=0.0, client=0.0, servers={"server": 0.0})
    after = CpuSnapshot(wall=1.0, machine=0.5, client=0.4, servers={"server": 0.4})
    assert cpu_between(before, after)["other_cpu_pct"] == 0.0
