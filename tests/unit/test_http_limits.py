"""Tests for modelserver/http_limits.py and modelserver/worker_limits.py: configured limits and worker caps."""

from __future__ import annotations

import resource

import pytest

from modelserver.config import ConfigError
from modelserver.http_limits import FD_RESERVE, HttpLimits, connection_cap, from_properties
from modelserver.worker_limits import TooManyWorkers, available_memory, check_worker_count


def test_defaults_apply_when_nothing_is_configured() -> None:
    assert from_properties({}) == HttpLimits()
    assert HttpLimits().header_read_timeout == 30.0 and HttpLimits().listen_backlog == 2048


def test_configured_values_are_read_with_their_types() -> None:
    limits = from_properties({"header_read_timeout": "2.5", "max_connections": "100", "stream_buffer_size": " 4096 "})
    assert limits.header_read_timeout == 2.5
    assert limits.max_connections == 100
    assert limits.stream_buffer_size == 4096


@pytest.mark.parametrize(
    ("key", "value"),
    [("keep_alive_timeout", "soon"), ("write_timeout", "0"), ("listen_backlog", "-1"), ("max_connections", "1.5")],
)
def test_bad_values_are_configuration_errors(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        from_properties({key: value})


def test_the_connection_cap_leaves_room_for_other_descriptors() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap(HttpLimits()) <= max(16, soft - FD_RESERVE)
    assert connection_cap(HttpLimits(max_connections=10)) == 10


def test_worker_counts_above_the_cap_are_refused() -> None:
    check_worker_count("m", 4, 0, cap=4)
    with pytest.raises(TooManyWorkers, match="at most 4"):
        check_worker_count("m", 5, 0, cap=4)
    assert TooManyWorkers("x").status == 400


def test_worker_counts_beyond_memory_are_refused() -> None:
    if available_memory() is None:
        pytest.skip("no /proc/meminfo")
    with pytest.raises(TooManyWorkers, match="available"):
        check_worker_count("m", 10**6, 0, cap=10**7)
    check_worker_count("m", 10**6, 10**6, cap=10**7)  # no new worker: nothing to fit
