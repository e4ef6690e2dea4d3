"""Config snapshot names: sorted by name they are in the order they were written, and name the right second."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from modelserver import snapshot
from modelserver.config import ServerConfig
from modelserver.properties import parse_properties
from modelserver.registry import ModelRegistry


def _config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(log_location=str(tmp_path), config_snapshots=True)


def test_a_stop_in_the_same_millisecond_as_a_snapshot_still_sorts_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = 1_767_268_800.123
    monkeypatch.setattr(time, "time", lambda: frozen)
    config, registry = _config(tmp_path), ModelRegistry()
    written = [snapshot.save_snapshot(config, registry, kind) for kind in ("startup", "snapshot", "shutdown")]
    assert all(path is not None for path in written)
    by_name = sorted(written, key=lambda path: path.name)  # type: ignore[union-attr]
    assert by_name == written
    assert len({path.name[:17] for path in written}) == 3  # type: ignore[union-attr]


def test_names_only_grow_when_the_clock_steps_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1_767_268_805.0, 1_767_268_800.0])
    monkeypatch.setattr(time, "time", lambda: next(clock))
    config, registry = _config(tmp_path), ModelRegistry()
    first = snapshot.save_snapshot(config, registry, "snapshot")
    second = snapshot.save_snapshot(config, registry, "shutdown")
    assert first is not None and second is not None
    assert first.name < second.name


@pytest.mark.parametrize("millis", [1_767_268_800_999, 1_767_268_801_000, 1_767_268_801_001, 0])
def test_the_name_holds_the_seconds_and_milliseconds_of_one_count(millis: int) -> None:
    name = snapshot.snapshot_name("snapshot", millis)
    match = re.fullmatch(r"(\d{14})(\d{3})-snapshot\.cfg", name)
    assert match is not None
    assert match[1] == time.strftime("%Y%m%d%H%M%S", time.localtime(millis // 1000))
    assert int(match[2]) == millis % 1000


def test_the_snapshot_records_the_time_its_name_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_767_268_800.9999999)
    path = snapshot.save_snapshot(_config(tmp_path), ModelRegistry(), "startup")
    assert path is not None
    saved = json.loads(parse_properties(path.read_text(encoding="utf-8"))["model_snapshot"])
    assert saved["name"] == path.name
    assert snapshot.snapshot_name("startup", saved["created"]) == path.name
